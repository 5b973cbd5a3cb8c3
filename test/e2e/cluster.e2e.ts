// End to end against a real Kubernetes API server (scripts/cluster.sh: kube-apiserver, etcd, the
// controller manager, the scheduler and kwok's fake nodes), with the real Kubernetes provider: its
// Deployment await, its ordering, its recovery. Istio's, cert-manager's and the Gateway API's CRDs are
// applied by the test (the installs are off here; test/e2e/charts.e2e.ts installs Istio's charts), so the server
// validates every object against the real schemas and CEL rules. Assertions read what the API
// server returns, not what the program meant to send, and where traffic goes is what istiod (a plain
// process beside the API server) pushes to the ingress gateway and to a client sidecar: after every
// step the suite waits, bounded, for the route table istiod pushes, and the stand-in gateway routes
// the gate's and curl's requests with it. One control plane serves the suites that need one (each
// stack in namespaces of its own), started by the first of them. The verbs both routing APIs share
// (up with v1, the switch and the rollback, v3 refused) are written once and run for each row of
// SERVER_APIS; each API's own tests follow on the same stack. Each test brings its stack to the
// state it starts from (EngineStack.deploy), so any one of them runs alone.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { tlsSecretName } from "../../components/tls";
import { LocalCluster } from "../support/cluster";
import { APP_NAMESPACE as APP, configKey, GATEWAY_SELECTOR, HOST, INGRESS_NAMESPACE, NO_INSTALLS, ROOT, URN, VERSIONS } from "../support/constants";
import { EngineStack, liveWeights, plannedChanges, requirePulumi, replicasByVersion } from "../support/engine";
import { fetchPage, type StandInGateway, type KubeObject } from "../support/gateway";
import {
    CLIENT_NAMESPACE,
    createGatewayService,
    createTlsSecret,
    expectCertificateFor,
    IstioRoutes,
    istioTable,
    testRouteLines,
} from "../support/istio-routes";
import { processesMentioning } from "../support/processes";
import { runBlock, storyBlocks } from "../support/readme";

const BASE = { ...NO_INSTALLS, smokeCheckTimeout: "30", activeVersion: "v1" };

type Meta = { uid: string; generation?: number; resourceVersion: string };
const meta = (o: KubeObject) => o.metadata as KubeObject["metadata"] & Meta;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(requirePulumi);

// Starting a control plane takes seconds; the suites below share one, with the CRDs and istiod.
let shared: Promise<LocalCluster> | undefined;
const sharedCluster = (): Promise<LocalCluster> =>
    (shared ??= (async () => {
        const cluster = await LocalCluster.up({ crds: true, istiod: true, namespaces: [CLIENT_NAMESPACE] });
        for (const [ns, host] of [
            [INGRESS_NAMESPACE, HOST],
            [`${INGRESS_NAMESPACE}-gateway-api`, GATEWAY_API_HOST],
        ]) {
            await createGatewayService(cluster, ns, GATEWAY_SELECTOR);
            await createTlsSecret(cluster, ns, host);
        }
        return cluster;
    })());
// The Gateway API suite's host: istiod gives a gateway proxy every Gateway that selects it, the Istio suite's included.
const GATEWAY_API_HOST = "gateway-api.example.com";
/** A one-object program: a VirtualService for the live host whose uri regex Istio cannot compile. */
function refusedRouteProgram(): Record<string, string> {
    const route = {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { name: "cowsay-refused", namespace: APP },
        spec: {
            hosts: [HOST],
            gateways: [`${APP}/cowsay-nginx-gateway`],
            http: [{ match: [{ uri: { regex: "/(unclosed" } }], route: [{ destination: { host: "cowsay-nginx" } }] }],
        },
    };
    return {
        "Pulumi.yaml": "name: refused\nruntime:\n  name: nodejs\n",
        "package.json": JSON.stringify({ name: "refused", main: "index.ts" }),
        "tsconfig.json": JSON.stringify({
            compilerOptions: { strict: true, target: "ES2022", module: "node20", moduleResolution: "node16", types: ["node"] },
            files: ["index.ts"],
        }),
        "index.ts": `import * as k8s from "@pulumi/kubernetes";\nnew k8s.apiextensions.CustomResource("refused", ${JSON.stringify(route)});\n`,
    };
}

/** The app's Service port, as the program gave it (in-mesh callers use it). */
const servicePort = async (cluster: LocalCluster, namespace: string): Promise<number> =>
    Number(((await cluster.get("services", namespace)).find((s) => s.metadata.name === "cowsay-nginx")?.spec?.ports as { port: number }[])[0].port);
after(async () => {
    await shared?.then(
        (cluster) => cluster.down(),
        () => undefined,
    );
});

/** What differs between the routing APIs for the suites against the API server; the verbs both share are written once, below. */
interface ServerApi {
    /** routingApi's value, also which plain-HTTP redirect istiod pushes. */
    readonly routingApi: "istio" | "gateway-api";
    /** What the suite's title starts with: nothing for the Istio APIs, the default. */
    readonly prefix: string;
    /** The app's and the ingress gateway's namespaces: each API's stack has its own, beside the other's on the same control plane. */
    readonly ns: { readonly app: string; readonly ingress: string };
    /** The host the stack serves: istiod gives a gateway proxy every Gateway that selects it, so each API's host differs. */
    readonly host: string;
    /** The stack's config beyond BASE and the gateway's address (with ns and host when they are not the defaults). */
    readonly config: Readonly<Record<string, string>>;
    /** The app's objects, as `kubectl get` names them: what a refused update must leave alone. */
    readonly objects: string;
    /** The live routes on the server, by name: each backend with its weight. */
    readonly liveRoutes: (objects: readonly KubeObject[]) => Record<string, Record<string, number>>;
    /** The names of the live routes. */
    readonly routes: readonly string[];
    /** How a route names `version` (and istiod's push its cluster): a subset (Istio), the version's Service (Gateway API). */
    readonly backend: (version: string) => string;
    /** What a switch's preview plans, by Pulumi name, sorted, every one an update. */
    readonly switchPlan: readonly string[];
    /** The URNs of the switched routes among them. */
    readonly routeUrns: readonly RegExp[];
    /** The HTTPS route table istiod pushes to the gateway for the host with `live` the live route's line. */
    readonly gatewayTable: (live: string) => string[];
    /** The titles' words for what differs. */
    readonly words: { readonly up: string; readonly plan: string };
    /** That API's own tests, after the verbs, on the same stack: `suite`'s fields are set by the time they run. */
    readonly ownTests: (suite: ServerSuite) => void;
}

/** What a suite's tests use: the fields are set by its before() (a test run alone runs it too). */
class ServerSuite {
    cluster!: LocalCluster;
    stack!: EngineStack;
    gateway!: StandInGateway;
    istio!: IstioRoutes;

    constructor(readonly api: ServerApi) {}

    /** The app's objects on the server (ServerApi.objects). */
    app(): Promise<KubeObject[]> {
        return this.cluster.get(this.api.objects, this.api.ns.app);
    }

    /** The route istiod pushes for `live`: to the gateway (HTTPS, and HTTP redirected) and to a client sidecar. */
    async expectIstio(live: string): Promise<void> {
        const { ns } = this.api;
        await this.istio.expectGateway(this.api.gatewayTable(live));
        await this.istio.expectRedirect(this.gateway, this.api.routingApi);
        await this.istio.expectClient(`cowsay-nginx.${ns.app}.svc.cluster.local`, await servicePort(this.cluster, ns.app), [`/ -> ${live}`]);
    }
}

type HttpRouteSpec = { rules: { backendRefs: { name: string; weight: number }[] }[] };

const SERVER_APIS: readonly ServerApi[] = [
    {
        routingApi: "istio",
        prefix: "",
        ns: { app: APP, ingress: INGRESS_NAMESPACE },
        host: HOST,
        config: {},
        objects:
            "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io,poddisruptionbudgets.policy",
        liveRoutes: (objects) => ({ "cowsay-nginx": liveWeights(objects) }),
        routes: ["cowsay-nginx"],
        backend: (version) => version,
        switchPlan: ["cowsay-gate", "cowsay-route"],
        routeUrns: [URN.istioRoute],
        gatewayTable: istioTable,
        words: { up: "the route on the server goes to v1", plan: "the route and the gate" },
        ownTests: istioOnTheServer,
    },
    {
        routingApi: "gateway-api",
        prefix: "routingApi gateway-api ",
        ns: { app: `${APP}-gateway-api`, ingress: `${INGRESS_NAMESPACE}-gateway-api` },
        host: GATEWAY_API_HOST,
        // The cluster has the Gateway API CRDs (applied by sharedCluster), as a cluster with a mesh would.
        config: {
            routingApi: "gateway-api",
            gatewayApiCrds: "none",
            appNamespace: `${APP}-gateway-api`,
            ingressNamespace: `${INGRESS_NAMESPACE}-gateway-api`,
            hostname: GATEWAY_API_HOST,
        },
        objects: "deployments.apps,services,httproutes.gateway.networking.k8s.io,poddisruptionbudgets.policy",
        liveRoutes: (objects) =>
            Object.fromEntries(
                objects
                    .filter((o) => o.kind === "HTTPRoute" && ["cowsay-nginx", "cowsay-nginx-mesh"].includes(o.metadata.name))
                    .map((r) => [r.metadata.name, Object.fromEntries((r.spec as HttpRouteSpec).rules[0].backendRefs.map((b) => [b.name, b.weight]))]),
            ),
        routes: ["cowsay-nginx", "cowsay-nginx-mesh"],
        backend: (version) => `cowsay-nginx-${version}`,
        // With istiod writing the HTTPRoutes' status, the program waits for its verdict on the new routes too.
        switchPlan: ["cowsay-gate", "cowsay-mesh-route", "cowsay-route", "cowsay-route-status"],
        routeUrns: [URN.httpRoute, URN.meshRoute],
        gatewayTable: (live) => [...testRouteLines(["cowsay-nginx-v1", "cowsay-nginx-v2"]), `/ -> ${live}`],
        words: {
            up: "the HTTPRoutes on the server (gateway and mesh) send everything to v1's Service",
            plan: "the two live HTTPRoutes, the gate and the wait for Istio's verdict",
        },
        ownTests: gatewayApiOnTheServer,
    },
];

for (const api of SERVER_APIS) {
    describe(`${api.prefix}against the API server (real engine, real Kubernetes provider, kwok nodes)`, () => {
        const { ns } = api;
        const suite = new ServerSuite(api);
        /** What liveRoutes reads when every route sends everything to `version`. */
        const allTo = (version: string) => Object.fromEntries(api.routes.map((name) => [name, { [api.backend(version)]: 100 }]));
        const pods = async () => (await suite.cluster.get("pods", ns.app)).filter((p) => (p.metadata.labels ?? {}).service === "cowsay-nginx");
        const generations = (objects: readonly KubeObject[]) =>
            Object.fromEntries(objects.filter((o) => o.kind === "Deployment").map((d) => [d.metadata.name, meta(d).generation]));
        const resourceVersions = async () => (await suite.app()).map((o) => `${o.kind}/${o.metadata.name}@${meta(o).resourceVersion}`).sort();

        before(async () => {
            // A cluster that already runs a mesh has its ingress namespace (sharedCluster makes it, with its gateway Service); the TLS Certificate goes there.
            suite.cluster = await sharedCluster();
            suite.istio = new IstioRoutes(suite.cluster, { ingressNamespace: ns.ingress, selector: GATEWAY_SELECTOR, host: api.host });
            suite.gateway = await suite.istio.startGateway();
            suite.stack = await EngineStack.create({
                config: { ...BASE, ...api.config, gatewayUrl: `https://${suite.gateway.address}` },
                target: "cluster",
                env: suite.cluster.env,
            });
        });
        after(async () => {
            await suite.gateway?.stop().catch(() => undefined);
            suite.stack?.dispose();
        });

        it(`pulumi up with v1: both Deployments become Ready through the provider's await, ${api.words.up}, every declared object exists`, async () => {
            const { stack, cluster } = suite;
            stack.configure();
            await stack.up();
            const objects = await suite.app();
            assert.deepEqual(api.liveRoutes(objects), allTo("v1"));
            for (const d of objects.filter((o) => o.kind === "Deployment")) {
                const status = (d as unknown as { status: { readyReplicas?: number; availableReplicas?: number } }).status;
                assert.equal(status.readyReplicas, 2, `${d.metadata.name} ready`);
            }
            assert.deepEqual(replicasByVersion(objects), { v1: 2, v2: 2 });
            await expectCertificateFor(cluster, ns.ingress, tlsSecretName(api.host));
            await suite.expectIstio(api.backend("v1"));
            // Every Kubernetes object in the stack's state is on the server.
            const exported = JSON.parse((await stack.pulumi("stack", "export")).stdout) as {
                deployment: { resources: { type: string; custom?: boolean; outputs?: { kind?: string; metadata?: { name: string; namespace?: string } } }[] };
            };
            const declared = exported.deployment.resources.filter(
                (r) => r.type.startsWith("kubernetes:") && r.custom === true && r.outputs?.metadata !== undefined,
            );
            assert.ok(declared.length >= 14, `${declared.length} objects`);
            // One `kubectl get` per namespace (`-o name` prints <resource>.<group>/<name>, as built here).
            const byNamespace = new Map<string | undefined, string[]>();
            for (const r of declared) {
                const { name, namespace } = r.outputs?.metadata ?? { name: "" };
                const kind = r.type.split(":")[2];
                const group = r.type
                    .split(":")[1]
                    .split("/")[0]
                    .replace(/^core$/, "");
                byNamespace.set(namespace, [...(byNamespace.get(namespace) ?? []), `${kind.toLowerCase()}${group === "" ? "" : `.${group}`}/${name}`]);
            }
            for (const [namespace, names] of byNamespace) {
                const got = await cluster.kubectl("get", ...names, ...(namespace === undefined ? [] : ["-n", namespace]), "-o", "name", "--ignore-not-found");
                assert.equal(got.code, 0, got.stderr);
                const found = new Set(got.stdout.trim().split("\n"));
                assert.deepEqual(
                    names.filter((o) => !found.has(o)),
                    [],
                    `not on the server (namespace ${namespace ?? "none"}): ${got.stderr}`,
                );
            }
        });

        for (const [from, to] of [
            ["v1", "v2"],
            ["v2", "v1"],
        ]) {
            it(`switching ${from} -> ${to}: the preview plans ${api.words.plan} only; the server routes to ${to}; no pod restarted, no Deployment changed`, async () => {
                const { stack, gateway } = suite;
                // v2 live after v1, so that the way back is a rollback.
                await stack.deploy(...(from === "v1" ? [{}] : [{}, { activeVersion: "v2" }]));
                const podsBefore = (await pods()).map((p) => meta(p).uid).sort();
                const generationsBefore = generations(await suite.app());
                await stack.pulumi("config", "set", configKey("activeVersion"), to);
                const { steps, result } = await stack.preview();
                assert.equal(result.code, 0, result.stderr);
                const planned = plannedChanges(steps);
                assert.deepEqual(planned.map((s) => s.urn.split("::").pop()).sort(), api.switchPlan, JSON.stringify(planned));
                assert.ok(
                    planned.every((s) => s.op === "update"),
                    JSON.stringify(planned),
                );
                assert.ok(
                    [URN.gate, ...api.routeUrns].every((urn) => planned.some((s) => urn.test(s.urn))),
                    JSON.stringify(planned),
                );
                const requestsBefore = gateway.requests.length;
                await stack.up();
                const objects = await suite.app();
                assert.deepEqual(api.liveRoutes(objects), allTo(to));
                await suite.expectIstio(api.backend(to));
                assert.deepEqual((await pods()).map((p) => meta(p).uid).sort(), podsBefore, "the same pods, none restarted or rescheduled");
                assert.deepEqual(generations(objects), generationsBefore);
                // The gate checked v2 through the header rule on the way there, and trusted v1 on the way back.
                assert.equal(gateway.requests.slice(requestsBefore).filter((r) => r.header === to).length, to === "v2" ? 1 : 0);
            });
        }

        it("activeVersion=v3 is refused; the server's objects and the stack state are unchanged", async () => {
            const { stack } = suite;
            await stack.deploy();
            const versions = await resourceVersions();
            const state = await stack.state();
            await stack.pulumi("config", "set", configKey("activeVersion"), "v3");
            const up = await stack.run("up", "--yes", "--skip-preview");
            assert.notEqual(up.code, 0);
            assert.match(up.stdout + up.stderr, /error: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2\. Nothing was changed\./);
            assert.deepEqual(await resourceVersions(), versions);
            assert.deepEqual(await stack.state(), state);
            await suite.expectIstio(api.backend("v1"));
        });

        api.ownTests(suite);
    });
}

/** The Istio APIs' own tests against the API server, after the verbs, on the same stack. */
function istioOnTheServer(suite: ServerSuite): void {
    let cluster: LocalCluster;
    let stack: EngineStack;
    let gateway: StandInGateway;
    let istio: IstioRoutes;
    before(() => {
        ({ cluster, stack, gateway, istio } = suite);
    });
    const app = () => suite.app();
    const expectIstio = (live: string) => suite.expectIstio(live);
    const set = (key: string, value: string) => stack.pulumi("config", "set", configKey(key), "--", value);
    /** Stops kwok for `body` (new pods then never become ready) and starts it again whatever happens. */
    const withoutKwok = async <T>(body: () => Promise<T>): Promise<T> => {
        await cluster.script("stop", "kwok");
        try {
            return await body();
        } finally {
            await cluster.script("start", "kwok");
        }
    };

    it("a 90/10 split: istiod pushes the weights, and the gateway's plain requests follow them", async () => {
        await stack.deploy({ trafficSplit: '{"v1":90,"v2":10}' });
        await expectIstio("v1:90 v2:10");
        // The stand-in's pick by weight is unit-tested (test/xds.test.ts); here: each plain request is
        // served by one of the two, and not all by the 10 % one (1 in 10^10).
        const from = gateway.requests.length;
        for (let i = 0; i < 10; i++) assert.equal((await fetchPage(gateway)).status, 200);
        assert.equal(gateway.routedTo("v1", from) + gateway.routedTo("v2", from), 10);
        assert.ok(gateway.routedTo("v2", from) < 10, "the weights hold");
    });

    it("a VirtualService the CRD schema accepts and Istio's webhook refuses fails pulumi up with Istio's message; nothing is created and istiod's route stays", async () => {
        await stack.deploy();
        await istio.expectGateway(istioTable("v1"));
        // A program of one test object (the app's program emits none Istio refuses): a header route
        // for the live host with an unclosed regex, which the CRD's schema lets through.
        const refused = await EngineStack.create({ config: {}, files: refusedRouteProgram(), target: "cluster", env: cluster.env });
        try {
            const up = await refused.run("up", "--yes", "--skip-preview");
            assert.notEqual(up.code, 0, up.stdout);
            assert.match(up.stdout + up.stderr, /admission webhook "rev\.validation\.istio\.io" denied the request: .*missing closing \)/);
            const left = await cluster.kubectl("-n", APP, "get", "virtualservices.networking.istio.io", "cowsay-refused", "--ignore-not-found", "-o", "name");
            assert.equal(left.stdout.trim(), "", "the refused object is not on the server");
            assert.deepEqual(await istio.gatewayTable(), istioTable("v1"), "the route istiod pushes is the one before");
        } finally {
            refused.dispose();
        }
    });

    it("pulumi refresh shows a route edited by hand; pulumi up puts it back", async () => {
        await stack.deploy();
        const patch = JSON.stringify([{ op: "replace", path: "/spec/http/0/route/0/destination/subset", value: "v2" }]);
        assert.equal((await cluster.kubectl("-n", APP, "patch", "virtualservices.networking.istio.io", "cowsay-nginx", "--type", "json", "-p", patch)).code, 0);
        assert.deepEqual(liveWeights(await app()), { v2: 100 });
        await istio.expectGateway(istioTable("v2")); // istiod follows the hand edit
        const refresh = await stack.pulumi("refresh", "--yes", "--diff");
        assert.match(
            refresh.stdout,
            /~ kubernetes:networking\.istio\.io\/v1:VirtualService: \(update\)\s+\[id=cowsay\/cowsay-nginx\][\s\S]*~ subset: "v1" => "v2"/,
        );
        const { steps } = await stack.preview();
        assert.deepEqual(
            plannedChanges(steps).map((s) => s.urn.split("::").pop()),
            ["cowsay-route"],
        );
        await stack.up();
        assert.deepEqual(liveWeights(await app()), { v1: 100 });
        await expectIstio("v1");
    });

    it("a pulumi killed while it waits on a Deployment: the documented recovery converges and loses nothing", async () => {
        await stack.deploy();
        // Without kwok the new pods never become ready, so the provider's await keeps pulumi busy.
        await withoutKwok(async () => {
            await set("replicas", "3");
            const up = await stack.runUntil(/Deployment +cowsay-v[12] +updating/, "up", "--yes", "--skip-preview");
            await sleep(2000);
            await up.stop("SIGKILL");
        });

        const recovery = storyBlocks().find((b) => b.id === "recovery");
        assert.ok(recovery !== undefined, "the recovery block (docs/operations.md)");
        const result = await runBlock(recovery, stack.dir, stack.env);
        assert.equal(result.code, 0, result.output);
        const objects = await app();
        assert.deepEqual(replicasByVersion(objects), { v1: 3, v2: 3 });
        for (const d of objects.filter((o) => o.kind === "Deployment")) {
            assert.equal((d as unknown as { status: { readyReplicas?: number } }).status.readyReplicas, 3, `${d.metadata.name} ready`);
        }
        assert.deepEqual(liveWeights(objects), { v1: 100 });
        await expectIstio("v1");
        assert.deepEqual(stack.locks(), []);
        const again = await stack.preview();
        assert.deepEqual(plannedChanges(again.steps), [], "converged: nothing left to do");
    });

    it("an API server restarted while an update waits on a Deployment: the next pulumi up converges", async () => {
        // Three pods per version, as the recovery above leaves them: this update changes both.
        await stack.deploy({ replicas: "3" });
        const up = await withoutKwok(async () => {
            await set("replicas", "2");
            await set("versions", JSON.stringify({ v1: { ...VERSIONS.v1, replicas: 4 }, v2: VERSIONS.v2 }));
            const running = await stack.runUntil(/Deployment +cowsay-v1 +updating/, "up", "--yes", "--skip-preview");
            await cluster.script("restart", "apiserver");
            return running;
        });
        // The provider's await may not notice that the pods became ready across the restart (its
        // watch broke); a user who sees the pods ready and pulumi still waiting gives it a while,
        // presses Ctrl-C, and runs pulumi up again. At most 90 s in all, as before the pods are seen.
        const v1Ready = async () =>
            (await app().catch(() => [])).some(
                (d) => d.metadata.name === "cowsay-nginx-v1" && (d as unknown as { status?: { readyReplicas?: number } }).status?.readyReplicas === 4,
            );
        const deadline = Date.now() + 90_000;
        let readySince: number | undefined;
        while (!up.ended() && Date.now() < deadline && (readySince === undefined || Date.now() - readySince < 20_000)) {
            if (readySince === undefined && (await v1Ready())) readySince = Date.now();
            await sleep(1000);
        }
        const code = up.ended() ? await up.exited : await up.stop("SIGINT");
        if (code !== 0) await stack.up();
        const objects = await app();
        assert.deepEqual(replicasByVersion(objects), { v1: 4, v2: 2 });
        assert.equal((objects.find((d) => d.metadata.name === "cowsay-nginx-v1") as unknown as { status: { readyReplicas?: number } }).status.readyReplicas, 4);
        assert.deepEqual(plannedChanges((await stack.preview()).steps), [], "converged");
        await expectIstio("v1"); // istiod's watches survived the API server's restart
    });

    it("pulumi destroy leaves nothing of the app behind", async () => {
        // Any deployed state will do; one is made only when there is none.
        if (((await stack.state()) as unknown[]).length === 0) await stack.deploy();
        await stack.pulumi("destroy", "--yes");
        const gone = async () => (await cluster.kubectl("get", "namespace", APP, "--ignore-not-found", "-o", "name")).stdout.trim() === "";
        for (let i = 0; i < 120 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 500));
        assert.ok(await gone(), "the app namespace is gone");
        const labelled = await cluster.kubectl(
            "get",
            "deployments,replicasets,pods,services,poddisruptionbudgets",
            "-A",
            "-l",
            "service=cowsay-nginx",
            "-o",
            "name",
        );
        assert.equal(labelled.stdout.trim(), "", labelled.stdout);
        const routing = await cluster.kubectl(
            "get",
            "virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io,certificates.cert-manager.io,issuers.cert-manager.io",
            "-A",
            "-o",
            "name",
        );
        assert.equal(routing.stdout.trim(), "", routing.stdout);
        // istiod no longer routes the host at the gateway, nor the Service for a client.
        await istio.expectGateway([]);
        await istio.expectClient(`cowsay-nginx.${APP}.svc.cluster.local`, 9080, []);
    });
}

/** The Gateway API's own tests against the API server, after the verbs, on the same stack. */
function gatewayApiOnTheServer(suite: ServerSuite): void {
    const { ns, host } = suite.api;
    let cluster: LocalCluster;
    let stack: EngineStack;
    let gateway: StandInGateway;
    let istio: IstioRoutes;
    before(() => {
        ({ cluster, stack, gateway, istio } = suite);
    });
    const expectIstio = (live: string) => suite.expectIstio(live);

    it("a rollback Istio cannot program (v1's Service deleted by hand) fails pulumi up with Istio's words, v2 keeps its pods; refresh and up recover", async () => {
        // v2 live after v1, idle versions at 0 pods: a switch scales the version it leaves only after Istio's verdict.
        // The default bound (60 s): Istio's refusal ends the wait once it has held for 10 s.
        const base = { idleReplicas: "0" };
        await stack.deploy(base, { ...base, activeVersion: "v2" });
        const deleted = await cluster.kubectl("-n", ns.app, "delete", "service", "cowsay-nginx-v1");
        assert.equal(deleted.code, 0, deleted.stderr);
        // The rollback trusts v1 (it was live just before), so the gate does not fetch it: only Istio can tell.
        await stack.pulumi("config", "set", configKey("activeVersion"), "v1");
        const output = await stack.upFails();
        assert.match(
            output,
            /Istio refused HTTPRoute [^ ]+ \(generation \d+\), and still did 10 s later: .*ResolvedRefs=False \(BackendNotFound\): backend\(cowsay-nginx-v1\.[^)]*\) not found/,
        );
        assert.match(output, /the versions that went idle keep their pods/);
        assert.deepEqual(
            replicasByVersion(await cluster.get("deployments.apps", ns.app)),
            { v1: 2, v2: 2 },
            "v1 scaled up before the route, v2 not scaled down after it",
        );
        // What the message says to do: fix the cause (refresh finds the Service gone), pulumi up again.
        const refreshed = await stack.run("refresh", "--yes", "--skip-preview", "--non-interactive");
        assert.equal(refreshed.code, 0, refreshed.stdout + refreshed.stderr);
        await stack.up();
        await expectIstio("cowsay-nginx-v1");
        assert.deepEqual(replicasByVersion(await cluster.get("deployments.apps", ns.app)), { v1: 2, v2: 0 }, "v2 goes idle once Istio took the route");
    });

    it("changing routingApi to istio and back: the route istiod pushes follows each change, and the host answers through it", async () => {
        await stack.deploy();
        await stack.deploy({}, { routingApi: "istio" });
        // The Istio API's objects route the same host now: subsets of the shared Service, require_tls on HTTP.
        await istio.expectGateway(istioTable("v1"));
        await istio.expectRedirect(gateway, "istio");
        await istio.expectClient(`cowsay-nginx.${ns.app}.svc.cluster.local`, await servicePort(cluster, ns.app), ["/ -> v1"]);
        assert.equal((await fetchPage(gateway, undefined, host)).status, 200);
        await stack.deploy();
        await expectIstio("cowsay-nginx-v1");
    });
}

describe("server-side validation of what the program emits (API server with the real CRDs)", () => {
    let cluster: LocalCluster;
    const STACKS: Record<string, Record<string, string>> = {
        default: {},
        "a 90/10 split": { trafficSplit: '{"v1":90,"v2":10}' },
        "v3 declared, idle at 0": {
            versions: JSON.stringify({ ...VERSIONS, v3: { image: "registry.example.com/cowsay:v3", expect: "v3" } }),
            idleReplicas: "0",
        },
        "test routes off": { testRouteHeader: "", smokeCheck: "false" },
        "the Gateway API": { routingApi: "gateway-api", gatewayApiCrds: "none" },
    };

    before(async () => {
        cluster = await sharedCluster();
        // Dry runs need the namespaces (a dry run does not create the app's own).
        for (const ns of [INGRESS_NAMESPACE, APP]) await cluster.createNamespace(ns);
    });

    for (const [name, config] of Object.entries(STACKS)) {
        it(`every object of the stack "${name}" passes kubectl apply --dry-run=server`, async () => {
            // The gate is not a Kubernetes object; with it off, up only renders.
            const stack = await EngineStack.create({ config: { ...BASE, smokeCheck: "false", ...config } });
            try {
                await stack.up();
                const files = listYaml(stack.renderDir);
                assert.ok(files.length >= 12, `${files.length} rendered files`);
                const result = await cluster.kubectl("apply", "--dry-run=server", ...files.flatMap((f) => ["-f", f]));
                assert.equal(result.code, 0, result.stderr);
                assert.equal(result.stdout.trim().split("\n").length, files.length, result.stdout);
            } finally {
                stack.dispose();
            }
        });
    }

    it("catches what the mocks cannot: a VirtualService timeout under 1 ms passes the upstream model and is rejected by the server", async () => {
        // Test-only object, never shipped: the schema test's models carry the OpenAPI types, not the CRD's CEL rules.
        const route = {
            apiVersion: "networking.istio.io/v1",
            kind: "VirtualService",
            metadata: { name: "too-fast", namespace: APP },
            spec: {
                hosts: ["cowsay.example.com"],
                http: [{ name: "live", timeout: "0.5ms", route: [{ destination: { host: "cowsay-nginx", subset: "v1" } }] }],
            },
        };
        const { VirtualService } = await import("@kubernetes-models/istio/networking.istio.io/v1/VirtualService");
        new VirtualService(route).validate();
        const result = await applyDryRun(cluster, route);
        assert.notEqual(result.code, 0);
        assert.match(result.stderr, /timeout/i);
    });
});

function listYaml(dir: string): string[] {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && e.name.endsWith(".yaml"))
        .map((e) => path.join(e.parentPath, e.name))
        .sort();
}

function applyDryRun(cluster: LocalCluster, object: unknown): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
        const child = spawn("kubectl", ["apply", "--dry-run=server", "-f", "-"], { env: cluster.env, stdio: ["pipe", "pipe", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        child.on("close", (code) => resolve({ code: code ?? 1, stderr }));
        child.stdin.end(JSON.stringify(object));
    });
}

describe("scripts/cluster.sh up when a component is slow to start", () => {
    // Each component starts in a subshell that closes every descriptor it inherited, then execs. Until
    // it has, its command line is the script's: `up` took that for a component that had exited, failed,
    // and left the component running after `down` (seen once in CI). A thousand inherited descriptors
    // widen that window to tens of milliseconds, enough to fail every time before the fix.
    const script = path.join(ROOT, "scripts", "cluster.sh");
    let state: string;
    let env: NodeJS.ProcessEnv;
    before(() => {
        state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-slow-"));
        env = { ...process.env, COWSAY_CLUSTER_STATE: state };
    });
    after(() => {
        if (state === undefined) return;
        spawnSync(script, ["down"], { env, stdio: "ignore" });
        rmSync(state, { recursive: true, force: true });
    });

    it("comes up with a thousand inherited descriptors, and down leaves no process behind", () => {
        const withDescriptors = 'for ((i = 0; i < 1000; i++)); do exec {fd}</dev/null; done; exec "$0" up';
        const up = spawnSync("bash", ["-c", withDescriptors, script], { env, encoding: "utf8" });
        assert.equal(up.status, 0, `${up.stdout}\n${up.stderr}`);
        assert.ok(processesMentioning(`${state}/`).length >= 5, "etcd, the API server, the controller manager, the scheduler and kwok run");
        const down = spawnSync(script, ["down"], { env, encoding: "utf8" });
        assert.equal(down.status, 0, `${down.stdout}\n${down.stderr}`);
        assert.deepEqual(processesMentioning(`${state}/`), []);
    });
});
