// End to end with what the program installs: `installIstio true`, Istio's own charts (base, istiod,
// gateway from the istio.io/istio module the control plane builds istiod from, laid out as the
// program's istioCharts directory by `scripts/cluster.sh istio-charts`), on a real API server with
// no load-balancer controller (kind's case), the real engine and Kubernetes provider. The chart's
// istiod is served by the real pilot-discovery (scripts/istiod.sh `chart`), so the chart's own
// webhooks answer: its sidecar injector injects the app's and the gateway's pods (kwok runs them as
// fake-Ready), and its validator judges the Istio objects. Then the usual checks on that mesh: the
// route istiod pushes to the gateway after deploy, switch and rollback; the gateway Service's type
// switched in place; a second stack sharing the mesh, switched and destroyed on its own; and `pulumi
// destroy` removing the releases. cert-manager is not installed (its component's plugin is not served
// here): a suite-made Secret stands in for the Certificate's. The tests run in order, each on the
// state the one before leaves.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { LocalCluster } from "../support/cluster";
import { APP_NAMESPACE as APP, COW, configKey, GATEWAY_SELECTOR, HOST, HOTDOG, INGRESS_NAMESPACE } from "../support/constants";
import { EngineStack, liveWeights, plannedChanges, requirePulumi } from "../support/engine";
import { fetchPage, type KubeObject, type StandInGateway } from "../support/gateway";
import { createTlsSecret, IstioRoutes, istioTable } from "../support/istio-routes";

const SYSTEM = "istio-system";
/** Pulumi's names of the mesh's resources (components/mesh.ts). */
const URNS = { gatewayRelease: /::istio-gateway$/, gatewayReady: /::istio-gateway-ready$/ };
const SECOND = { app: "cowsay-b", host: "b.example.com" };

type Pod = { metadata: { name: string; annotations?: Record<string, string> }; spec: { containers: { name: string; image: string }[] } };
const pods = async (cluster: LocalCluster, namespace: string) => (await cluster.get("pods", namespace)) as unknown as Pod[];
/** Whether the chart's injector injected the pod: the proxy container, with the image it fills in, and its status annotation. */
const injected = (pod: Pod) =>
    pod.spec.containers.some((c) => c.name === "istio-proxy" && /proxyv2/.test(c.image)) && pod.metadata.annotations?.["sidecar.istio.io/status"] !== undefined;

/** The Helm releases on the server, each at its latest revision (Helm keeps one labelled Secret per revision). */
async function releases(cluster: LocalCluster): Promise<{ namespace: string; name: string; status: string; revision: number }[]> {
    const result = await cluster.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "json");
    assert.equal(result.code, 0, result.stderr);
    const latest = new Map<string, { namespace: string; name: string; status: string; revision: number }>();
    for (const s of (JSON.parse(result.stdout) as { items: KubeObject[] }).items) {
        const labels = s.metadata.labels ?? {};
        const release = { namespace: String(s.metadata.namespace), name: labels.name, status: labels.status, revision: Number(labels.version) };
        const key = `${release.namespace}/${release.name}`;
        if ((latest.get(key)?.revision ?? 0) < release.revision) latest.set(key, release);
    }
    return [...latest.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, release]) => release);
}

type ClusterObject = KubeObject & {
    metadata: { annotations?: Record<string, string> };
    webhooks?: { clientConfig: { service?: { name: string; namespace: string }; url?: string } }[];
};

/** A cluster-scoped object, or undefined. */
async function clusterObject(cluster: LocalCluster, kind: string, name: string): Promise<ClusterObject | undefined> {
    const result = await cluster.kubectl("get", kind, name, "--ignore-not-found", "-o", "json");
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim() === "" ? undefined : (JSON.parse(result.stdout) as ClusterObject);
}

/** Runs a stack output command as a user pastes it into a shell. */
function shell(command: string, env: NodeJS.ProcessEnv): { code: number | null; stdout: string; stderr: string } {
    const result = spawnSync("sh", ["-c", command], { env, encoding: "utf8", timeout: 30_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

before(requirePulumi);

describe("installIstio true: Istio from its own charts, installed by the program (real engine, the chart's istiod served by pilot-discovery)", () => {
    let cluster: LocalCluster;
    let charts: string;
    let stack: EngineStack;
    let istio: IstioRoutes;
    let gateway: StandInGateway;
    const expectIstio = async (live: string) => {
        await istio.expectGateway(istioTable(live));
        await istio.expectRedirect(gateway, "istio");
    };

    before(async () => {
        cluster = await LocalCluster.up({ istiod: "chart" });
        charts = mkdtempSync(path.join(tmpdir(), "cowsay-istio-charts-"));
        await cluster.script("istio-charts", charts);
        istio = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR });
        gateway = await istio.startGateway();
        // The gate is off for the first up: the TLS Secret cert-manager would issue can only be made
        // once the program has created the ingress namespace.
        stack = await EngineStack.create({
            config: { installCertManager: "false", istioCharts: charts, activeVersion: "v1", smokeCheckTimeout: "30" },
            target: "cluster",
            env: cluster.env,
        });
    });
    after(async () => {
        await gateway?.stop().catch(() => undefined);
        stack?.dispose();
        await cluster?.down();
        if (charts !== undefined) rmSync(charts, { recursive: true, force: true });
    });

    it("the first pulumi up installs base, istiod and gateway from the charts and finishes, with a LoadBalancer Service that never gets an address", async () => {
        assert.deepEqual(await releases(cluster), [], "nothing of Istio before the program");
        assert.notEqual((await cluster.kubectl("get", "crd", "virtualservices.networking.istio.io")).code, 0, "not even its CRDs");
        stack.configure();
        const up = await stack.up();
        assert.match(up.stdout + up.stderr, /gateway: Deployment istio-ingress\/istio-ingressgateway rolled out after \d+\.\d s/);

        const installed = await releases(cluster);
        assert.deepEqual(
            installed.map((r) => [r.namespace, r.status]),
            [
                [INGRESS_NAMESPACE, "deployed"],
                [SYSTEM, "deployed"],
                [SYSTEM, "deployed"],
            ],
            JSON.stringify(installed),
        );
        assert.ok(
            installed.some((r) => r.name === "istio-ingressgateway"),
            JSON.stringify(installed),
        );
        // The CRDs are the base chart's, installed by its release.
        const crd = await clusterObject(cluster, "crd", "virtualservices.networking.istio.io");
        const base = installed.find((r) => r.namespace === SYSTEM && /base/.test(r.name));
        assert.equal(crd?.metadata.annotations?.["meta.helm.sh/release-name"], base?.name, JSON.stringify(crd?.metadata));

        const service = (await cluster.get("services", INGRESS_NAMESPACE)).find((s) => s.metadata.name === "istio-ingressgateway");
        assert.equal(service?.spec?.type, "LoadBalancer");
        assert.deepEqual(
            (service as unknown as { status?: { loadBalancer?: { ingress?: unknown[] } } }).status?.loadBalancer?.ingress ?? [],
            [],
            "no load-balancer controller here",
        );
        const address = shell((await stack.pulumi("stack", "output", "gatewayAddressCommand")).stdout.trim(), cluster.env);
        assert.equal(address.code, 1, address.stdout);
        assert.match(address.stderr, /has no load-balancer address yet .*pulumi config set gatewayServiceType NodePort/);

        // The chart's injector injected the gateway's pod and every pod of the app (the namespace asks for it).
        const gatewayPods = await pods(cluster, INGRESS_NAMESPACE);
        assert.equal(gatewayPods.length, 1);
        assert.ok(gatewayPods.every(injected), JSON.stringify(gatewayPods.map((p) => p.spec.containers)));
        const appPods = await pods(cluster, APP);
        assert.equal(appPods.length, 4);
        assert.ok(appPods.every(injected), JSON.stringify(appPods.map((p) => p.spec.containers.map((c) => c.name))));
    });

    it("the chart's validator, called by the API server through the chart's Service, refuses what the CRD schema lets through", async () => {
        const validator = await clusterObject(cluster, "validatingwebhookconfiguration", `istio-validator-${SYSTEM}`);
        assert.deepEqual(
            validator?.webhooks?.map((w) => w.clientConfig.service?.name),
            ["istiod"],
        );
        const file = path.join(cluster.state, "invalid.json");
        writeFileSync(
            file,
            JSON.stringify({
                apiVersion: "networking.istio.io/v1",
                kind: "VirtualService",
                metadata: { name: "cowsay-bad-regex", namespace: APP },
                spec: { hosts: [HOST], http: [{ match: [{ uri: { regex: "/(unclosed" } }], route: [{ destination: { host: "cowsay-nginx" } }] }] },
            }),
        );
        const refused = await cluster.kubectl("apply", "-f", file);
        assert.equal(refused.code, 1, refused.stdout);
        assert.match(refused.stderr, /admission webhook "(rev\.)?validation\.istio\.io" denied the request: .*missing closing \)/);
    });

    it("deploy, switch to v2 and roll back: the route istiod pushes to the gateway follows, and a visitor sees each version", async () => {
        await createTlsSecret(cluster, INGRESS_NAMESPACE, HOST);
        await stack.deploy({ gatewayUrl: `https://${gateway.address}` });
        await expectIstio("v1");
        assert.ok((await fetchPage(gateway)).body.includes(COW));
        await stack.deploy({ gatewayUrl: `https://${gateway.address}` }, { gatewayUrl: `https://${gateway.address}`, activeVersion: "v2" });
        assert.deepEqual(liveWeights(await cluster.get("virtualservices.networking.istio.io", APP)), { v2: 100 });
        await expectIstio("v2");
        assert.ok((await fetchPage(gateway)).body.includes(HOTDOG));
        await stack.deploy({ gatewayUrl: `https://${gateway.address}` });
        await expectIstio("v1");
        assert.ok((await fetchPage(gateway)).body.includes(COW));
    });

    it("gatewayServiceType NodePort: the gateway release is updated in place (its pod kept), and gatewayAddressCommand prints a node's address and the node port", async () => {
        const before = (await pods(cluster, INGRESS_NAMESPACE)).map((p) => p.metadata.name);
        await stack.pulumi("config", "set", configKey("gatewayServiceType"), "NodePort");
        const { steps } = await stack.preview();
        const planned = plannedChanges(steps);
        assert.deepEqual(planned.map((s) => s.op).sort(), ["update", "update"], JSON.stringify(planned));
        assert.ok(planned.some((s) => URNS.gatewayRelease.test(s.urn)) && planned.some((s) => URNS.gatewayReady.test(s.urn)), JSON.stringify(planned));
        await stack.up();
        assert.deepEqual(
            (await releases(cluster)).map((r) => [r.name, r.revision]).filter(([name]) => name === "istio-ingressgateway"),
            [["istio-ingressgateway", 2]],
            "an upgrade of the same release",
        );
        const service = (await cluster.get("services", INGRESS_NAMESPACE)).find((s) => s.metadata.name === "istio-ingressgateway");
        assert.equal(service?.spec?.type, "NodePort");
        const nodePort = (service?.spec?.ports as { port: number; nodePort?: number }[]).find((p) => p.port === 443)?.nodePort;
        const address = shell((await stack.pulumi("stack", "output", "gatewayAddressCommand")).stdout.trim(), cluster.env);
        assert.equal(address.code, 0, address.stderr);
        assert.match(address.stdout.trim(), new RegExp(`^\\d+\\.\\d+\\.\\d+\\.\\d+:${nodePort}$`));
        assert.deepEqual(
            (await pods(cluster, INGRESS_NAMESPACE)).map((p) => p.metadata.name),
            before,
            "the gateway's pod was not restarted",
        );
        await expectIstio("v1");
    });

    it("a second stack shares the mesh (installIstio false, installCertManager false, an app namespace and host of its own): it deploys and switches on its own, and its destroy leaves the first serving", async () => {
        const second = await EngineStack.create({
            config: {
                installIstio: "false",
                installCertManager: "false",
                appNamespace: SECOND.app,
                hostname: SECOND.host,
                activeVersion: "v1",
                smokeCheckTimeout: "30",
                gatewayUrl: `https://${gateway.address}`,
            },
            target: "cluster",
            env: cluster.env,
        });
        const routes = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR, host: SECOND.host });
        /** The cert-manager objects in the shared ingress namespace: each stack's own. */
        const issuance = async () =>
            (await cluster.get("issuers.cert-manager.io,certificates.cert-manager.io", INGRESS_NAMESPACE)).map((o) => `${o.kind}/${o.metadata.name}`).sort();
        const firstIssuance = await issuance();
        try {
            await createTlsSecret(cluster, INGRESS_NAMESPACE, SECOND.host);
            await second.deploy();
            const both = await issuance();
            assert.equal(both.length, firstIssuance.length * 2, `no object of the first stack's taken over by the second: ${both.join(", ")}`);
            await routes.expectGateway(istioTable("v1"));
            assert.ok((await pods(cluster, SECOND.app)).every(injected));
            await second.deploy({}, { activeVersion: "v2" });
            await routes.expectGateway(istioTable("v2"));
            assert.ok((await fetchPage(gateway, undefined, SECOND.host)).body.includes(HOTDOG));
            // The first stack did not move.
            await istio.expectGateway(istioTable("v1"));
            assert.deepEqual(plannedChanges((await stack.preview()).steps), [], "the first stack sees nothing to do");

            await second.pulumi("destroy", "--yes");
            await routes.expectGateway([]);
            await expectIstio("v1");
            assert.ok((await fetchPage(gateway)).body.includes(COW));
            assert.equal((await releases(cluster)).length, 3, "the mesh is the first stack's, and stays");
            assert.deepEqual(await issuance(), firstIssuance, "the first stack's Issuer and Certificate stay");
        } finally {
            second.dispose();
        }
    });

    it("pulumi destroy removes the releases, their webhooks and the namespaces, and keeps Istio's CRDs as the chart asks; after the documented cleanup, a new install works", async () => {
        await stack.pulumi("destroy", "--yes");
        assert.deepEqual(await releases(cluster), []);
        const gone = async (kind: string, name: string) => (await clusterObject(cluster, kind, name)) === undefined;
        for (const [kind, name] of [
            ["namespace", SYSTEM],
            ["namespace", INGRESS_NAMESPACE],
            ["namespace", APP],
            ["mutatingwebhookconfiguration", "istio-sidecar-injector"],
            ["validatingwebhookconfiguration", `istio-validator-${SYSTEM}`],
        ]) {
            for (let i = 0; i < 120 && !(await gone(kind, name)); i++) await new Promise((r) => setTimeout(r, 500));
            assert.ok(await gone(kind, name), `${kind} ${name} is gone`);
        }
        // helm.sh/resource-policy keep: deleting a CRD deletes every object of its kind on the cluster.
        const crd = await clusterObject(cluster, "crd", "virtualservices.networking.istio.io");
        assert.equal(crd?.metadata.annotations?.["helm.sh/resource-policy"], "keep");
        // They still name the release that is gone, so a new install's base release refuses them.
        const again = await stack.upFails();
        assert.match(again, /exists and cannot be imported into the current release: invalid ownership metadata/);
        const cleanup = await cluster.kubectl("delete", "crd", "-l", "app.kubernetes.io/part-of=istio");
        assert.equal(cleanup.code, 0, cleanup.stderr);
        await stack.up();
        assert.deepEqual(
            (await releases(cluster)).map((r) => r.status),
            ["deployed", "deployed", "deployed"],
        );
        await stack.pulumi("destroy", "--yes");
    });
});
