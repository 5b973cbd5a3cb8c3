// routingApi gateway-api under Pulumi mocks: a Service per version, the Gateway bound to the
// Helm-installed gateway, the test and live HTTPRoutes and the mesh route; which pods each object
// reaches, what a switch changes, in which order things are created, and the CRD install.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import versions from "../versions.json";
import type { KubeObject } from "./support/gateway";
import { routeWithHttpRoutes } from "./support/rendered-routes";
import {
    DEPLOYMENT,
    HTTPROUTE,
    K8S_GATEWAY,
    SERVICE,
    VS,
    byKey,
    find,
    keyOf,
    metadataOf,
    ofType,
    podLabels,
    runProgram,
    selects,
    spec,
    type Registered,
    type Run,
    type Spec,
} from "./support/helpers";

const GA = { routingApi: "gateway-api" };
const gated = { ...GA, gatewayUrl: "https://203.0.113.10" };
const CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile";
const GATE = "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate";
const ROUTE_STATUS = "pulumi-nodejs:dynamic/cowsay-bluegreen:RouteStatus";
const liveRoute = (run: Run) => find(run, HTTPROUTE, "cowsay-nginx");
const meshRoute = (run: Run) => find(run, HTTPROUTE, "cowsay-nginx-mesh");
const testRoute = (run: Run) => find(run, HTTPROUTE, "cowsay-nginx-test");
const backends = (route: Registered) => Object.fromEntries(spec(route).rules[0].backendRefs.map((b: Spec) => [b.name, b.weight]));

/** The program's objects as the stand-in gateway reads them from rendered YAML. */
const kubeObjects = (run: Run): KubeObject[] =>
    run.resources
        .filter((r) => r.type.startsWith("kubernetes:") && r.custom)
        .map((r) => ({ kind: r.type.split(":")[2], metadata: metadataOf(r) as KubeObject["metadata"], spec: spec(r) }));
/** The version a request reaches through the program's HTTPRoutes, as a Gateway API implementation routes it. */
const routedVersion = (run: Run, headers: Record<string, string> = {}) => {
    const answer = routeWithHttpRoutes(kubeObjects(run), { host: "cowsay.example.com", headers, method: "GET", url: "/" });
    assert.ok(answer !== undefined && !("status" in answer), JSON.stringify(answer));
    return answer.version;
};

describe("routingApi gateway-api: the objects", () => {
    it("gives every version a Service that selects exactly that version's pods, and keeps the shared one over all", async () => {
        const run = await runProgram(GA);
        assert.equal(run.error, undefined);
        const deployments = ofType(run, DEPLOYMENT);
        for (const version of ["v1", "v2"]) {
            const service = find(run, SERVICE, `cowsay-nginx-${version}`);
            assert.deepEqual(
                deployments.filter((d) => selects(spec(service).selector, podLabels(d))).map((d) => podLabels(d).version),
                [version],
            );
            assert.deepEqual(spec(service).ports, [{ name: "http", port: 9080, targetPort: 80, appProtocol: "http" }]);
        }
        const shared = find(run, SERVICE, "cowsay-nginx");
        assert.deepEqual(deployments.filter((d) => selects(spec(shared).selector, podLabels(d))).length, 2);
        assert.deepEqual(ofType(run, VS), [], "no Istio routing objects");
    });

    it("binds the Gateway to the Helm-installed ingress gateway, next to the TLS Secret, serving it over HTTPS", async () => {
        const run = await runProgram(GA);
        const gateway = find(run, K8S_GATEWAY);
        const certificate = find(run, "kubernetes:cert-manager.io/v1:Certificate");
        assert.equal(spec(gateway).gatewayClassName, "istio");
        assert.equal(metadataOf(gateway).namespace, "istio-ingress");
        // One Hostname address: Istio configures that Service's pods and deploys no gateway of its own.
        assert.deepEqual(spec(gateway).addresses, [{ type: "Hostname", value: "istio-ingressgateway.istio-ingress.svc.cluster.local" }]);
        const [http, https] = spec(gateway).listeners;
        assert.deepEqual([http.name, http.port, http.protocol, https.name, https.port, https.protocol], ["http", 80, "HTTP", "https", 443, "HTTPS"]);
        assert.deepEqual([http.hostname, https.hostname], ["cowsay.example.com", "cowsay.example.com"]);
        // The Secret is in the Gateway's own namespace: no ReferenceGrant needed.
        assert.deepEqual(https.tls, { mode: "Terminate", certificateRefs: [{ group: "", kind: "Secret", name: spec(certificate).secretName }] });
        assert.equal(metadataOf(certificate).namespace, metadataOf(gateway).namespace);
        assert.deepEqual(https.allowedRoutes, { namespaces: { from: "Selector", selector: { matchLabels: { "kubernetes.io/metadata.name": "cowsay" } } } });
        // The same address, so the same command finds it.
        assert.equal(run.outputs.gatewayAddressCommand, (await runProgram({})).outputs.gatewayAddressCommand);
    });

    it("redirects plain HTTP to HTTPS with an HTTPRoute filter on the HTTP listener, unless httpsRedirect is false", async () => {
        const run = await runProgram(GA);
        const redirect = find(run, HTTPROUTE, "cowsay-nginx-redirect");
        const gateway = find(run, K8S_GATEWAY);
        assert.equal(metadataOf(redirect).namespace, metadataOf(gateway).namespace);
        assert.deepEqual(spec(redirect).parentRefs, [
            { group: "gateway.networking.k8s.io", kind: "Gateway", name: metadataOf(gateway).name, sectionName: "http" },
        ]);
        assert.deepEqual(spec(redirect).rules, [{ filters: [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }] }]);
        assert.deepEqual(spec(gateway).listeners[0].allowedRoutes, { namespaces: { from: "Same" } }, "only the redirect may serve plain HTTP");
        for (const route of [liveRoute(run), testRoute(run)]) assert.equal(spec(route).parentRefs[0].sectionName, "https");

        const plain = await runProgram({ ...GA, httpsRedirect: "false" });
        assert.deepEqual(
            ofType(plain, HTTPROUTE)
                .map((r) => metadataOf(r).name)
                .sort(),
            ["cowsay-nginx", "cowsay-nginx-mesh", "cowsay-nginx-test"],
        );
        assert.deepEqual(spec(find(plain, K8S_GATEWAY)).listeners[0].allowedRoutes, spec(find(plain, K8S_GATEWAY)).listeners[1].allowedRoutes);
        assert.equal(spec(liveRoute(plain)).parentRefs[0].sectionName, undefined, "both listeners");
    });

    it("hangs the live route off the Gateway's HTTPS listener and sends 100% to the active version's Service", async () => {
        for (const active of ["v1", "v2"]) {
            const run = await runProgram({ ...GA, activeVersion: active });
            const gateway = find(run, K8S_GATEWAY);
            const [parent] = spec(liveRoute(run)).parentRefs;
            assert.deepEqual([parent.kind, parent.name, parent.namespace], ["Gateway", metadataOf(gateway).name, metadataOf(gateway).namespace]);
            assert.ok(spec(gateway).listeners.some((l: Spec) => l.name === parent.sectionName));
            assert.deepEqual(spec(liveRoute(run)).hostnames, ["cowsay.example.com"]);
            assert.deepEqual(spec(liveRoute(run)).rules, [
                {
                    matches: [{ path: { type: "PathPrefix", value: "/" } }],
                    backendRefs: [{ group: "", kind: "Service", name: `cowsay-nginx-${active}`, port: 9080, weight: 100 }],
                },
            ]);
            assert.equal(routedVersion(run), active);
            assert.equal(run.outputs.activeVersion, active);
        }
    });

    it("weights the live backends by trafficSplit", async () => {
        const run = await runProgram({ ...GA, trafficSplit: '{"v1":90,"v2":10}' });
        assert.deepEqual(backends(liveRoute(run)), { "cowsay-nginx-v1": 90, "cowsay-nginx-v2": 10 });
        assert.deepEqual(backends(meshRoute(run)), backends(liveRoute(run)));
    });

    it("routes in-mesh callers of the shared Service the same way, with a route whose parent is that Service", async () => {
        const run = await runProgram({ ...GA, activeVersion: "v2" });
        assert.deepEqual(spec(meshRoute(run)).parentRefs, [{ group: "", kind: "Service", name: "cowsay-nginx", port: 9080 }]);
        find(run, SERVICE, spec(meshRoute(run)).parentRefs[0].name);
        assert.equal(spec(meshRoute(run)).hostnames, undefined, "mesh routes ignore hostnames");
        assert.deepEqual(spec(meshRoute(run)).rules, spec(liveRoute(run)).rules);
    });
});

describe("routingApi gateway-api: test routes", () => {
    it("send a request with the header to that version, idle or not, and leave every other request to the live route", async () => {
        for (const active of ["v1", "v2"]) {
            const run = await runProgram({ ...GA, activeVersion: active });
            assert.deepEqual(
                spec(testRoute(run)).rules.map((r: Spec) => [r.matches[0].headers[0].value, r.backendRefs[0].name]),
                [
                    ["v1", "cowsay-nginx-v1"],
                    ["v2", "cowsay-nginx-v2"],
                ],
            );
            assert.deepEqual(spec(testRoute(run)).parentRefs, spec(liveRoute(run)).parentRefs);
            assert.deepEqual(spec(testRoute(run)).hostnames, spec(liveRoute(run)).hostnames);
            // Same path as the live rule, one header more: the header rule wins by match precedence.
            for (const rule of spec(testRoute(run)).rules) {
                assert.deepEqual(rule.matches[0].path, spec(liveRoute(run)).rules[0].matches[0].path);
                assert.equal(rule.matches[0].headers.length, 1);
            }
            assert.equal(routedVersion(run, { "x-cowsay-version": "v1" }), "v1");
            assert.equal(routedVersion(run, { "x-cowsay-version": "v2" }), "v2");
            assert.equal(routedVersion(run, { "x-cowsay-version": "v9" }), active);
            assert.equal(routedVersion(run), active);
        }
    });

    it("use the configured header and can be turned off", async () => {
        const custom = await runProgram({ ...GA, testRouteHeader: "x-canary" });
        assert.equal(spec(testRoute(custom)).rules[0].matches[0].headers[0].name, "x-canary");
        const off = await runProgram({ ...GA, testRouteHeader: "", smokeCheck: "false" });
        assert.deepEqual(
            ofType(off, HTTPROUTE)
                .map((r) => metadataOf(r).name)
                .sort(),
            ["cowsay-nginx", "cowsay-nginx-mesh", "cowsay-nginx-redirect"],
        );
    });
});

describe("routingApi gateway-api: order", () => {
    it("checks through the test route after the serving pods are ready, and moves the live routes only after the gate", async () => {
        const run = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "1" });
        const gate = find(run, GATE);
        assert.ok(gate.dependsOn.includes(keyOf(testRoute(run))), "the gate goes through the test route");
        assert.ok(gate.dependsOn.includes(keyOf(find(run, SERVICE, "cowsay-nginx-v2"))), "and through v2's Service");
        assert.ok(gate.dependsOn.includes(keyOf(find(run, DEPLOYMENT, "cowsay-nginx-v2"))), "after v2's pods");
        assert.ok(!gate.dependsOn.includes(keyOf(find(run, DEPLOYMENT, "cowsay-nginx-v1"))), "not after the version going idle");
        assert.ok(liveRoute(run).dependsOn.includes(keyOf(gate)));
        assert.ok(meshRoute(run).dependsOn.includes(keyOf(liveRoute(run))), "the mesh route follows the ingress route");
        // The version going idle is scaled down only once both live routes have left it and Istio took them.
        const status = find(run, ROUTE_STATUS);
        assert.ok(status.dependsOn.includes(keyOf(meshRoute(run))), "Istio's verdict is read after the last route is written");
        assert.ok(find(run, DEPLOYMENT, "cowsay-nginx-v1").dependsOn.includes(keyOf(status)));
        assert.deepEqual(
            (status.inputs.routes as { namespace: string; name: string }[]).map((r) => `${r.namespace}/${r.name}`),
            ["istio-ingress/cowsay-nginx-redirect", "cowsay/cowsay-nginx-test", "cowsay/cowsay-nginx", "cowsay/cowsay-nginx-mesh"],
            "every HTTPRoute the program writes is waited for",
        );
        assert.equal(status.inputs.timeoutSeconds, 60);
    });

    it("waits for no route status with routeStatusTimeout 0, nor with the Istio APIs: idle versions follow the written route", async () => {
        const off = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "1", routeStatusTimeout: "0" });
        assert.deepEqual(ofType(off, ROUTE_STATUS), []);
        assert.ok(find(off, DEPLOYMENT, "cowsay-nginx-v1").dependsOn.includes(keyOf(meshRoute(off))));
        const istio = await runProgram({ gatewayUrl: "https://203.0.113.10", activeVersion: "v2", idleReplicas: "1" });
        assert.deepEqual(ofType(istio, ROUTE_STATUS), []);
    });

    it("leaves the version going idle untouched when Istio does not accept the routes", async () => {
        const run = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "0" }, { fails: (type) => type === ROUTE_STATUS });
        assert.ok(
            run.failures.some((f) => f.includes(`mock failure of ${ROUTE_STATUS}`)),
            run.failures.join("; "),
        );
        assert.deepEqual(
            ofType(run, DEPLOYMENT).map((d) => metadataOf(d).name),
            ["cowsay-nginx-v2"],
            "v1 keeps its pods",
        );
    });

    it("leaves both live routes and the version going idle untouched when the gate fails", async () => {
        const run = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "0" }, { fails: (type) => type === GATE });
        assert.ok(
            run.failures.some((f) => f.includes(`mock failure of ${GATE}`)),
            run.failures.join("; "),
        );
        assert.deepEqual(
            ofType(run, HTTPROUTE)
                .map((r) => metadataOf(r).name)
                .sort(),
            ["cowsay-nginx-redirect", "cowsay-nginx-test"],
        );
        assert.deepEqual(
            ofType(run, DEPLOYMENT).map((d) => metadataOf(d).name),
            ["cowsay-nginx-v2"],
        );
    });
});

describe("routingApi gateway-api: a switch", () => {
    // [from, to, does a version start taking traffic?]
    const steps: [Record<string, string>, Record<string, string>, boolean][] = [
        [{}, { activeVersion: "v2" }, true],
        [{ activeVersion: "v2" }, {}, true],
        [{}, { trafficSplit: '{"v1":90,"v2":10}' }, true],
        [{ trafficSplit: '{"v1":90,"v2":10}' }, { trafficSplit: '{"v1":50,"v2":50}' }, false],
    ];
    for (const [from, to, gateChanges] of steps) {
        it(`${JSON.stringify(from)} -> ${JSON.stringify(to)} changes the two live routes${gateChanges ? " and the gate" : ""}, nothing else`, async () => {
            const before = byKey(await runProgram({ ...gated, ...from }));
            const afterRun = await runProgram({ ...gated, ...to });
            const after = byKey(afterRun);
            assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), "nothing created or deleted");
            const changed = [...after.keys()].filter((k) => after.get(k) !== before.get(k)).sort();
            const expected = [keyOf(liveRoute(afterRun)), keyOf(meshRoute(afterRun)), ...(gateChanges ? [`${GATE}::cowsay-gate`] : [])];
            assert.deepEqual(changed, expected.sort());
        });
    }
});

describe("routingApi gateway-api: the CRDs", () => {
    it("installs the pinned release's standard channel with Istio, and every Gateway API object waits for it", async () => {
        const run = await runProgram(GA);
        const install = find(run, CONFIG_FILE);
        assert.equal(install.inputs.file, `https://github.com/kubernetes-sigs/gateway-api/releases/download/${versions.gatewayApi}/standard-install.yaml`);
        assert.equal(install.custom, false, "the provider expands it: under mocks it is one component");
        for (const r of [...ofType(run, K8S_GATEWAY), ...ofType(run, HTTPROUTE)]) {
            assert.ok(r.dependsOn.includes(keyOf(install)), `${r.name} waits for the CRDs`);
        }
    });

    it("installs nothing on a cluster that brings its own mesh, or when told the CRDs are there", async () => {
        const configs: Record<string, string>[] = [{ installIstio: "false" }, { gatewayApiCrds: "none" }, { routingApi: "istio", gatewayApiCrds: "release" }];
        for (const config of configs) {
            const run = await runProgram({ ...GA, ...config });
            assert.equal(run.error, undefined);
            assert.deepEqual(ofType(run, CONFIG_FILE), [], JSON.stringify(config));
        }
    });

    it("installs from a mirror URL or a local file when told, with or without Istio", async () => {
        const mirror = "https://mirror.example.com/gateway-api/standard-install.yaml";
        for (const [source, installIstio] of [
            [mirror, "false"],
            ["./vendor/standard-install.yaml", "true"],
        ]) {
            const run = await runProgram({ ...GA, gatewayApiCrds: source, installIstio });
            assert.equal(find(run, CONFIG_FILE).inputs.file, source);
        }
    });
});
