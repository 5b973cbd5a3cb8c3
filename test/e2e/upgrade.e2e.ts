// No stack is disturbed by a change of the program's resource tree. A resource's URN holds its type,
// its name and its parents' types, so moving it under a new component (or renaming it) makes the
// engine see a new resource, and the old one deleted, unless it has an alias. This suite deploys a
// stack with the program as it was at a fixed commit (taken from git, beside the tree), against the
// local API server, then previews and updates it with the program as it is now: no Kubernetes object
// may be created, deleted or replaced, and the gate may not be recreated (a new gate would fetch
// every live version again). istiod runs beside the API server: the route it pushes to the gateway
// is the same after the upgrade, and follows the next switch.
//
// KEEP THIS TEST for every later change of the resource tree (a new component, a resource moved to
// another parent, a renamed resource or type): it is what proves the aliases right. FROM is the last
// commit before issue 16 moved the routing objects, the mesh security objects and the gate; move it
// forward only to a commit whose resource tree the aliases of that time still have to reach, and
// keep the old one as a second case while stacks deployed with it may exist.
//
// Each test starts from the stack as the program at FROM deployed it (deployedAtFrom), so any one of
// them runs alone; run in order, the first deploys it and the others find it there.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";

import { LocalCluster } from "../support/cluster";
import { configKey, GATEWAY_SELECTOR, NO_INSTALLS } from "../support/constants";
import { EngineStack, PROGRAM_FILES, ROOT, requirePulumi, type PreviewStep } from "../support/engine";
import type { StandInGateway, KubeObject } from "../support/gateway";
import { createGatewayService, createTlsSecret, IstioRoutes } from "../support/istio-routes";

const FROM = "39520e0";
/** The program's wait for Istio's verdict on HTTPRoutes (dynamic/route-status.ts), new since FROM. */
const ROUTE_STATUS_TYPE = "pulumi-nodejs:dynamic/cowsay-bluegreen:RouteStatus";
/** Operations that would disturb a running object: a new one, a deleted one, a replacement. */
const DISTURBING = ["create", "delete", "replace", "create-replacement", "delete-replaced", "discard", "import"];

/** The program's files as they were at `commit`, read from git (CI clones the full history). */
function programAt(commit: string): Record<string, string> {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const files = git("ls-tree", "-r", "--name-only", commit, "--", ...PROGRAM_FILES)
        .split("\n")
        .filter((f) => f !== "");
    return Object.fromEntries(files.map((file) => [file, git("show", `${commit}:${file}`)]));
}

const typeOf = (urn: string) => (urn.split("::")[2] ?? "").split("$").pop() ?? "";
const nameOf = (urn: string) => urn.split("::").pop() ?? "";
const isKubernetesObject = (urn: string) => typeOf(urn).startsWith("kubernetes:") && !typeOf(urn).startsWith("kubernetes:helm.sh");
const GATE_TYPES = ["pulumi-nodejs:dynamic/cowsay-bluegreen:SmokeCheck", "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate"];

interface StateResource {
    readonly urn: string;
    readonly type: string;
    readonly custom?: boolean;
    readonly external?: boolean;
    readonly outputs?: { metadata?: { uid?: string; name?: string; namespace?: string } };
}

before(requirePulumi);

// [routing API, app namespace, ingress namespace]: one stack each, side by side on one API server.
const STACKS: [string, string, string][] = [
    ["istio", "cowsay", "istio-ingress"],
    ["gateway-api", "cowsay-ga", "istio-ingress-ga"],
];

describe(`a stack deployed by the program at ${FROM}, updated by the program as it is now (API server)`, () => {
    let cluster: LocalCluster;
    const old = programAt(FROM);

    before(async () => {
        cluster = await LocalCluster.up({ crds: true, istiod: true });
    });
    after(async () => {
        await cluster?.down();
    });

    for (const [routingApi, appNamespace, ingressNamespace] of STACKS) {
        describe(`routingApi ${routingApi}`, () => {
            let stack: EngineStack;
            let gateway: StandInGateway;
            let istio: IstioRoutes;
            /** The live version's cluster as the gateway's route names it: a subset, or its own Service. */
            const liveCluster = (version: string) => (routingApi === "istio" ? version : `cowsay-nginx-${version}`);
            /** The state the program at FROM left, read when it deployed the stack. */
            let oldState: StateResource[] = [];
            const objects = async (): Promise<KubeObject[]> => [
                ...(await cluster.get(
                    "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,httproutes.gateway.networking.k8s.io",
                    appNamespace,
                )),
                ...(await cluster.get("gateways.gateway.networking.k8s.io", ingressNamespace)),
            ];
            const exported = async (): Promise<StateResource[]> =>
                // A stack that was never deployed exports no resources list at all.
                (
                    (JSON.parse((await stack.pulumi("stack", "export")).stdout) as { deployment: { resources?: StateResource[] } }).deployment.resources ?? []
                ).filter((r) => r.external !== true);
            const uids = (state: StateResource[]) =>
                Object.fromEntries(
                    state
                        .filter((r) => isKubernetesObject(r.urn))
                        .map((r) => [`${typeOf(r.urn)} ${r.outputs?.metadata?.namespace ?? ""}/${r.outputs?.metadata?.name ?? ""}`, r.outputs?.metadata?.uid]),
                );

            /**
             * The stack as the program at FROM deploys it, unless it is still as it left it (an
             * upgraded stack is destroyed first: the old program deploys it afresh).
             */
            const DEPLOYED_AT_FROM = `deployed by the program at ${FROM}`;
            const deployedAtFrom = () =>
                stack.reach(DEPLOYED_AT_FROM, async () => {
                    if ((await exported()).length > 0) await stack.pulumi("destroy", "--yes", "--skip-preview");
                    stack.useProgram(old);
                    await stack.up();
                    oldState = await exported();
                });

            before(async () => {
                // A cluster that already runs a mesh has its ingress namespace, gateway Service and cert-manager (whose Secret the suite makes); the TLS Certificate goes there.
                await createGatewayService(cluster, ingressNamespace, GATEWAY_SELECTOR);
                await createTlsSecret(cluster, ingressNamespace, `${appNamespace}.example.com`);
                istio = new IstioRoutes(cluster, { ingressNamespace, selector: GATEWAY_SELECTOR, host: `${appNamespace}.example.com` });
                gateway = await istio.startGateway();
                stack = await EngineStack.create({
                    files: old,
                    target: "cluster",
                    env: cluster.env,
                    config: {
                        routingApi,
                        appNamespace,
                        ingressNamespace,
                        hostname: `${appNamespace}.example.com`,
                        ...NO_INSTALLS,
                        gatewayApiCrds: "none",
                        smokeCheckTimeout: "30",
                        gatewayUrl: `https://${gateway.address}`,
                    },
                });
            });
            after(async () => {
                await gateway?.stop().catch(() => undefined);
                stack?.dispose();
            });

            /**
             * The program as it is now, on this stack. The program at FROM refuses keys it does not know,
             * so the wait for Istio's route status (no istiod here writes it) is turned off only now.
             */
            it(`the program at ${FROM} deploys the stack, its gate fetching v1`, async () => {
                await deployedAtFrom();
                assert.ok(oldState.filter((r) => isKubernetesObject(r.urn)).length >= 10, "the stack runs its objects");
                assert.ok(
                    oldState.some((r) => GATE_TYPES.includes(r.type)),
                    "the stack has a gate",
                );
                assert.ok(gateway.routedTo("v1") >= 1, "the gate fetched v1 through the stand-in");
                await istio.expectGatewayLive(liveCluster("v1"));
            });

            it("the program as it is now previews no Kubernetes object created, deleted or replaced, and no new gate", async () => {
                await deployedAtFrom();
                // istiod writes the HTTPRoutes' status here: the program's wait for it stays on.
                stack.useCurrentProgram();
                const { steps, result } = await stack.preview();
                assert.equal(result.code, 0, result.stdout + result.stderr);
                // `preview --json` lists the steps that do something; an object matched by its alias and
                // unchanged is only counted as "same".
                const disturbing = steps.filter(
                    (s: PreviewStep) => (isKubernetesObject(s.urn) || GATE_TYPES.includes(typeOf(s.urn))) && DISTURBING.includes(s.op),
                );
                assert.deepEqual(
                    disturbing.map((s) => `${s.op} ${typeOf(s.urn)}::${nameOf(s.urn)}`),
                    [],
                );
                // What is new is the components that hold what moved and, with the Gateway API, the
                // wait for Istio's verdict on the routes (it writes nothing on the server); nothing else.
                const created = steps.filter((s) => s.op === "create").map((s) => typeOf(s.urn));
                const expectedNew = (t: string) => t.startsWith("cowsay-bluegreen:") || (routingApi === "gateway-api" && t === ROUTE_STATUS_TYPE);
                assert.ok(created.every(expectedNew), `only components (and the route-status wait) are new: ${created.join(", ")}`);
                if (routingApi === "gateway-api")
                    assert.ok(created.includes(ROUTE_STATUS_TYPE), "istiod writes the HTTPRoutes' status here: the program's wait for it is on");
                const summary = (JSON.parse(result.stdout) as { changeSummary: Record<string, number> }).changeSummary;
                assert.deepEqual(
                    Object.keys(summary).filter((op) => DISTURBING.includes(op) && op !== "create"),
                    [],
                    JSON.stringify(summary),
                );
            });

            it("pulumi up with it keeps every object on the server (same uid), fetches nothing, and a second preview plans nothing", async () => {
                await deployedAtFrom();
                stack.useCurrentProgram();
                const requestsBefore = gateway.requests.length;
                await istio.expectGatewayLive(liveCluster("v1"));
                const routes = await istio.gatewayTable();
                await stack.up();
                const newState = await exported();
                assert.deepEqual(uids(newState), uids(oldState), "every Kubernetes object keeps its uid: none was recreated");
                // The objects that moved are known by their new URNs now: their aliases matched them.
                const moved = newState.filter((r) => isKubernetesObject(r.urn) && /[:$]cowsay-bluegreen:(routing|security):[A-Za-z]+\$/.test(r.urn));
                assert.ok(moved.length >= 6, `moved: ${moved.map((r) => r.urn).join(", ")}`);
                assert.deepEqual(
                    newState.filter((r) => GATE_TYPES.includes(r.type)).map((r) => `${r.type}::${nameOf(r.urn)}`),
                    [`${GATE_TYPES[1]}::cowsay-gate`],
                );
                assert.equal(gateway.requests.length, requestsBefore, "the gate was not recreated, so it fetched nothing");
                const onServer = await objects();
                assert.ok(onServer.some((o) => o.kind === "Deployment" && o.metadata.name === "cowsay-nginx-v1"));
                assert.deepEqual(await istio.gatewayTable(), routes, "istiod pushes the gateway the same route after the upgrade");
                const { steps } = await stack.preview();
                assert.deepEqual(
                    steps.filter((s) => s.op !== "same" && s.op !== "read").map((s) => `${s.op} ${s.urn}`),
                    [],
                );
                await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
                await stack.up();
                assert.ok(gateway.routedTo("v2") >= 1, "the gate, carried over, checks the next switch");
                await istio.expectGatewayLive(liveCluster("v2"));
            });
        });
    }
});
