// The program's wiring under Pulumi mocks: which pods each object selects, where the live route
// points, what a switch changes, and in which order things are created.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { parseDocument } from "yaml";

import versions from "../versions.json";

import {
    DEPLOYMENT,
    DR,
    GW,
    HTTPROUTE,
    K8S_GATEWAY,
    RELEASE,
    SERVICE,
    VS,
    byKey,
    find,
    keyOf,
    metadataOf,
    ofType,
    podLabels,
    programModules,
    runProgram,
    selects,
    spec,
    type Registered,
    type Run,
    type Spec,
} from "./support/helpers";
import { ROOT } from "./support/constants";
import { PROGRAM_FILES } from "./support/engine";

const liveRoute = (run: Run) => find(run, VS, "cowsay-nginx");

describe("the program with the example stack", () => {
    it("runs every version behind one Service that selects the pods of all of them", async () => {
        const run = await runProgram({});
        assert.equal(run.error, undefined);
        const deployments = ofType(run, DEPLOYMENT);
        assert.deepEqual(deployments.map((d) => spec(d).template.spec.containers[0].image).sort(), ["dougbtv/nginx-cowsay:v1", "dougbtv/nginx-cowsay:v2"]);
        const service = find(run, SERVICE, "cowsay-nginx");
        assert.deepEqual(spec(service).ports, [{ name: "http", port: 9080, targetPort: 80, appProtocol: "http" }]);
        for (const d of deployments) {
            assert.ok(selects(spec(service).selector, podLabels(d)), `Service must select ${metadataOf(d).name}`);
            assert.ok(selects(spec(d).selector.matchLabels, podLabels(d)), "a Deployment must select its own pods");
            assert.equal(spec(d).template.spec.containers[0].ports[0].containerPort, 80);
            assert.equal(spec(d).template.spec.containers[0].readinessProbe.httpGet.port, 80);
        }
    });

    it("gives each DestinationRule subset exactly one version's pods", async () => {
        const run = await runProgram({});
        const subsets: { name: string; labels: Record<string, string> }[] = spec(find(run, DR)).subsets;
        const deployments = ofType(run, DEPLOYMENT);
        for (const subset of subsets) {
            const matched = deployments.filter((d) => selects(subset.labels, podLabels(d)));
            assert.deepEqual(
                matched.map((d) => podLabels(d).version),
                [subset.name],
            );
        }
        assert.deepEqual(
            subsets.map((s) => s.name),
            ["v1", "v2"],
        );
        assert.equal(spec(find(run, DR)).host, "cowsay-nginx.cowsay.svc.cluster.local");
    });

    it("sends 100% of the gateway's traffic to the active subset, bound to the Gateway", async () => {
        const run = await runProgram({ activeVersion: "v2" });
        const route = spec(liveRoute(run));
        const gateway = find(run, GW);
        assert.ok(route.gateways.includes(`${metadataOf(gateway).namespace}/${metadataOf(gateway).name}`));
        assert.ok(route.hosts.includes("cowsay.example.com"));
        assert.deepEqual(
            spec(gateway).servers.map((s: Spec) => s.hosts),
            [["cowsay.example.com"], ["cowsay.example.com"]],
        );
        assert.deepEqual(route.http, [
            {
                name: "live",
                route: [{ destination: { host: "cowsay-nginx.cowsay.svc.cluster.local", subset: "v2", port: { number: 9080 } }, weight: 100 }],
            },
        ]);
        assert.equal(run.outputs.activeVersion, "v2");
    });

    it("serves HTTPS with the certificate's Secret and redirects plain HTTP", async () => {
        const run = await runProgram({});
        const certificate = find(run, "kubernetes:cert-manager.io/v1:Certificate");
        const [http, https] = spec(find(run, GW)).servers;
        assert.deepEqual(http.tls, { httpsRedirect: true });
        assert.equal(https.tls.credentialName, spec(certificate).secretName);
        assert.equal(metadataOf(certificate).namespace, "istio-ingress");
        assert.deepEqual(spec(certificate).dnsNames, ["cowsay.example.com"]);
        const issuer = find(run, "kubernetes:cert-manager.io/v1:Issuer");
        assert.equal(spec(certificate).issuerRef.name, metadataOf(issuer).name);
        assert.deepEqual(spec(issuer), { selfSigned: {} });
        const plain = await runProgram({ httpsRedirect: "false" });
        assert.equal(spec(find(plain, GW)).servers[0].tls, undefined);
    });

    it("installs Istio base, then istiod, then the gateway, all at one pinned version", async () => {
        const run = await runProgram({});
        const releases = ofType(run, RELEASE);
        const byChart = new Map(releases.map((r) => [r.inputs.chart as string, r]));
        const base = byChart.get("base") as Registered;
        const istiod = byChart.get("istiod") as Registered;
        const gateway = byChart.get("gateway") as Registered;
        assert.ok(istiod.dependsOn.includes(keyOf(base)), "istiod waits for base (the CRDs)");
        assert.ok(gateway.dependsOn.includes(keyOf(istiod)), "the gateway waits for istiod");
        assert.equal(new Set(releases.map((r) => r.inputs.version)).size, 1);
        assert.equal(base.inputs.version, versions.istio, "the release versions.json pins, whose CRDs the tests load");
        for (const r of releases) {
            assert.equal((r.inputs.repositoryOpts as Spec).repo, "https://istio-release.storage.googleapis.com/charts");
        }
        assert.equal(gateway.inputs.namespace, "istio-ingress");
        // Every Istio object waits for the CRDs.
        for (const r of [...ofType(run, VS), ...ofType(run, DR), ...ofType(run, GW)]) {
            assert.ok(r.dependsOn.includes(keyOf(base)), `${r.name} must wait for Istio's CRDs`);
        }
    });

    it("never waits for a load-balancer address: the gateway release skips Helm's wait, and the wait for its Deployment's rollout is wired to the release", async () => {
        const run = await runProgram({});
        const byChart = new Map(ofType(run, RELEASE).map((r) => [r.inputs.chart as string, r]));
        const gateway = byChart.get("gateway") as Registered;
        assert.equal(gateway.inputs.skipAwait, true);
        assert.deepEqual(gateway.inputs.values, { service: { type: "LoadBalancer" } });
        // base and istiod keep Helm's wait: the gateway's pods need istiod's injector serving.
        for (const chart of ["base", "istiod"]) assert.notEqual((byChart.get(chart) as Registered).inputs.skipAwait, true, chart);
        const ready = find(run, "pulumi-nodejs:dynamic/cowsay-bluegreen:DeploymentReady");
        assert.deepEqual(
            { namespace: ready.inputs.namespace, name: ready.inputs.name, revision: ready.inputs.revision, timeoutSeconds: ready.inputs.timeoutSeconds },
            { namespace: "istio-ingress", name: "istio-ingressgateway", revision: 1, timeoutSeconds: 300 },
        );
        assert.ok(ready.dependsOn.includes(keyOf(gateway)));
        // The gate (which fetches through the gateway) and the routes wait for the rollout (the mesh is their prerequisite).
        const gated = await runProgram({ gatewayUrl: "https://203.0.113.10" });
        const rollout = keyOf(find(gated, "pulumi-nodejs:dynamic/cowsay-bluegreen:DeploymentReady"));
        for (const r of [...ofType(gated, "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate"), ...ofType(gated, VS)]) {
            assert.ok(r.dependsOn.includes(rollout), `${r.name} waits for the gateway's rollout: ${JSON.stringify(r.dependsOn)}`);
        }
        const nodePort = await runProgram({ gatewayServiceType: "NodePort", ingressNamespace: "edge" });
        const moved = ofType(nodePort, RELEASE).find((r) => r.inputs.chart === "gateway") as Registered;
        assert.deepEqual(moved.inputs.values, { service: { type: "NodePort" } });
        assert.equal(find(nodePort, "pulumi-nodejs:dynamic/cowsay-bluegreen:DeploymentReady").inputs.namespace, "edge");
        assert.match(String(nodePort.outputs.gatewayAddressCommand), /^n="\$\(kubectl get nodes .*kubectl -n edge get service istio-ingressgateway /);
    });

    it("names the gateway once: the release the mesh installs is the identity the app admits, the Service the Gateway API addresses and the selector's default", async () => {
        const run = await runProgram({ routingApi: "gateway-api", ingressNamespace: "edge" });
        const release = ofType(run, RELEASE).find((r) => r.inputs.chart === "gateway") as Registered;
        const name = release.inputs.name as string;
        // The gateway chart names the ServiceAccount and the Service after the release.
        const policy = find(run, "kubernetes:security.istio.io/v1:AuthorizationPolicy");
        assert.deepEqual(spec(policy).rules[0].from[0].source.principals, [`cluster.local/ns/edge/sa/${name}`]);
        assert.deepEqual(spec(find(run, K8S_GATEWAY)).addresses, [{ type: "Hostname", value: `${name}.edge.svc.cluster.local` }]);
        assert.match(String(run.outputs.gatewayAddressCommand), new RegExp(`kubectl -n edge get service ${name} `));
        // ... and labels its pods `istio: <release without "istio-">`, which the Istio API's Gateway selects.
        assert.deepEqual(spec(find(await runProgram({}), GW)).selector, { istio: name.replace(/^istio-/, "") });
    });

    it("takes the Istio charts from a mirror or a local directory when told to (clusters without internet)", async () => {
        const mirror = await runProgram({ istioCharts: "oci://registry.example.com/istio-charts/" });
        for (const r of ofType(mirror, RELEASE)) {
            assert.deepEqual([(r.inputs.repositoryOpts as Spec).repo, r.inputs.version], ["oci://registry.example.com/istio-charts", versions.istio]);
        }
        const local = await runProgram({ istioCharts: "/srv/charts/istio-1.31.4" });
        assert.deepEqual(
            ofType(local, RELEASE).map((r) => [r.inputs.chart, r.inputs.repositoryOpts, r.inputs.version]),
            [
                ["/srv/charts/istio-1.31.4/base", undefined, undefined],
                ["/srv/charts/istio-1.31.4/istiod", undefined, undefined],
                ["/srv/charts/istio-1.31.4/gateway", undefined, undefined],
            ],
        );
    });

    it("skips the Istio and cert-manager installs when told the cluster has them, keeping the Issuer and Certificate", async () => {
        const run = await runProgram({ installIstio: "false", installCertManager: "false" });
        assert.equal(run.error, undefined);
        assert.deepEqual(ofType(run, RELEASE), []);
        assert.deepEqual(ofType(run, "kubernetes-cert-manager:index:CertManager"), []);
        find(run, "kubernetes:cert-manager.io/v1:Certificate");
        find(run, "kubernetes:cert-manager.io/v1:Issuer");
        const full = await runProgram({});
        const certManager = find(full, "kubernetes-cert-manager:index:CertManager");
        assert.equal(certManager.inputs.installCRDs, true);
        assert.match(String((certManager.inputs.helmOptions as Spec).version), /^v\d+\.\d+\.\d+$/);
        assert.ok(find(full, "kubernetes:cert-manager.io/v1:Certificate").dependsOn.includes(keyOf(certManager)));
    });
});

describe("objects that decide where traffic goes", () => {
    it("belong to the program in either routing API: a hand edit is undone by the next up, not a field conflict", async () => {
        for (const [api, types] of [
            ["istio", [VS, DR]],
            ["gateway-api", [HTTPROUTE]],
        ] as const) {
            const run = await runProgram({ routingApi: api });
            const routing = run.resources.filter((r) => (types as readonly string[]).includes(r.type));
            assert.ok(routing.length >= 2, api);
            for (const r of routing) assert.equal(metadataOf(r).annotations?.["pulumi.com/patchForce"], "true", `${api} ${metadataOf(r).name}`);
            // Deployments and Services are not forced: an operator's kubectl scale shows up as a conflict.
            for (const r of [...ofType(run, DEPLOYMENT), ...ofType(run, SERVICE)])
                assert.equal(metadataOf(r).annotations?.["pulumi.com/patchForce"], undefined);
        }
    });

    it("wait on the Deployments' await, not the Services' (which adds a fixed 10 s), in either routing API", async () => {
        for (const api of ["istio", "gateway-api"] as const) {
            const run = await runProgram({ routingApi: api });
            const services = ofType(run, SERVICE);
            assert.equal(services.length, api === "istio" ? 1 : 3, api);
            for (const r of services) assert.equal(metadataOf(r).annotations?.["pulumi.com/skipAwait"], "true", `${api} ${metadataOf(r).name}`);
            for (const r of ofType(run, DEPLOYMENT))
                assert.equal(metadataOf(r).annotations?.["pulumi.com/skipAwait"], undefined, `${api} ${metadataOf(r).name}`);
        }
    });
});

describe("switching activeVersion", () => {
    for (const [from, to] of [
        ["v1", "v2"],
        ["v2", "v1"],
    ]) {
        it(`from ${from} to ${to} changes the live route and nothing else`, async () => {
            const before = byKey(await runProgram({ activeVersion: from }));
            const afterRun = await runProgram({ activeVersion: to });
            const after = byKey(afterRun);
            assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), "no resource created or deleted");
            const changed = [...after.keys()].filter((k) => after.get(k) !== before.get(k));
            assert.deepEqual(
                changed,
                [keyOf(liveRoute(afterRun)), "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate::cowsay-gate"].filter((k) => after.has(k)),
            );
            assert.equal(spec(liveRoute(afterRun)).http[0].route[0].destination.subset, to);
        });
    }

    it("adding a v3 is a config change that adds its Deployment and subset and leaves the live route alone", async () => {
        const versions = {
            v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
            v3: { image: "example.com/cowsay:v3", expect: "v3", replicas: 3 },
        };
        const run = await runProgram({ versions: JSON.stringify(versions) });
        assert.equal(run.error, undefined);
        const v3 = find(run, DEPLOYMENT, "cowsay-nginx-v3");
        assert.equal(spec(v3).replicas, 3);
        assert.ok(spec(find(run, DR)).subsets.some((s: Spec) => s.name === "v3"));
        assert.equal(spec(liveRoute(run)).http[0].route[0].destination.subset, "v1");
    });
});

describe("the Node.js that pulumi starts for the program", () => {
    it("has Node's compile cache on before Pulumi's runtime loads: Pulumi.yaml's nodeargs require compile-cache.cjs", () => {
        const project = parseDocument(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")).toJS() as { runtime: { options: { nodeargs: string } } };
        const env = { ...process.env };
        delete env.NODE_COMPILE_CACHE;
        // What the language host runs, from the project directory: node <nodeargs> <its runtime>.
        const dir = execFileSync(process.execPath, [...project.runtime.options.nodeargs.split(" "), "-p", "require('node:module').getCompileCacheDir()"], {
            cwd: ROOT,
            env,
            encoding: "utf8",
        }).trim();
        // Node keeps one subdirectory per version and build of itself.
        assert.equal(path.dirname(dir), path.join(tmpdir(), "node-compile-cache"));
    });
});

describe("the copy of the program the end-to-end suites run (PROGRAM_FILES)", () => {
    const carried = (file: string) =>
        PROGRAM_FILES.some((entry) => file === entry || file === entry.replace(/\.ts$/, ".js") || file.startsWith(entry + path.sep));

    it("holds every module the program loads, so a new folder of the program is copied too", async () => {
        const run = await runProgram({});
        assert.equal(run.error, undefined);
        const loaded = programModules();
        // The run loaded the program at all: an empty list would prove nothing.
        assert.ok(loaded.includes("index.js") && loaded.some((file) => file.startsWith(`lib${path.sep}`)), loaded.join(", "));
        assert.deepEqual(
            loaded.filter((file) => !carried(file)),
            [],
        );
    });

    it("holds what Pulumi.yaml's nodeargs require before the program", () => {
        const project = parseDocument(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")).toJS() as { runtime: { options: { nodeargs: string } } };
        const required = [...project.runtime.options.nodeargs.matchAll(/--require=(\S+)/g)].map((m) => path.normalize(m[1]));
        assert.deepEqual(required, ["compile-cache.cjs"]);
        assert.deepEqual(
            required.filter((file) => !carried(file)),
            [],
        );
    });
});
