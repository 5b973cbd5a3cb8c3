// Nothing the user already runs is deleted or replaced by a config change: across every transition
// between valid configs of one routing API, each Deployment, Service, DestinationRule, Gateway and
// HTTPRoute keeps its resource and every field whose change makes the Kubernetes provider replace the
// object. Changing the routing API itself replaces only the routing objects.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DEPLOYMENT, DR, GW, HTTPROUTE, K8S_GATEWAY, SERVICE, VS, keyOf, runProgram, type Registered } from "./support/helpers";

const KEPT = [DEPLOYMENT, SERVICE, DR, GW, K8S_GATEWAY, HTTPROUTE];
const gated = { gatewayUrl: "https://203.0.113.10" };
const withV3 = JSON.stringify({
    v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
    v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
    v3: { image: "dougbtv/nginx-cowsay:v3", expect: "v3" },
});

const ISTIO_CONFIGS: Record<string, Record<string, string>> = {
    "v1 live": { ...gated },
    "v2 live": { ...gated, activeVersion: "v2" },
    "v1 90 / v2 10": { ...gated, trafficSplit: '{"v1":90,"v2":10}' },
    "v2 70 / v1 30": { ...gated, activeVersion: "v2", trafficSplit: '{"v1":30,"v2":70}' },
    "v3 added, v1 live": { ...gated, versions: withV3 },
    "v3 live": { ...gated, versions: withV3, activeVersion: "v3" },
    "idle versions scaled to 1": { ...gated, idleReplicas: "1" },
};
// The same transitions with the Gateway API: its HTTPRoutes (live, mesh, test, redirect) all stay.
const CONFIGS: Record<string, Record<string, string>> = {
    ...ISTIO_CONFIGS,
    ...Object.fromEntries(Object.entries(ISTIO_CONFIGS).map(([label, config]) => [`gateway-api, ${label}`, { ...config, routingApi: "gateway-api" }])),
};
const routingApiOf = (config: Record<string, string>) => config.routingApi ?? "istio";

/** What decides replacement: the identity, and for a Deployment its immutable selector. */
function identity(r: Registered): string {
    const metadata = r.inputs.metadata as { name?: string; namespace?: string };
    const selector = r.type === DEPLOYMENT ? (r.inputs.spec as { selector: unknown }).selector : undefined;
    return JSON.stringify([metadata.name, metadata.namespace, selector]);
}

const declares = (config: Record<string, string>) => (config.versions === undefined ? ["v1", "v2"] : Object.keys(JSON.parse(config.versions) as object));

describe("transitions between valid configs", () => {
    const names = Object.keys(CONFIGS);
    for (const from of names) {
        // Removing a version from `versions` is the one change meant to delete its Deployment.
        const targets = names.filter(
            (to) =>
                to !== from &&
                routingApiOf(CONFIGS[to]) === routingApiOf(CONFIGS[from]) &&
                declares(CONFIGS[from]).every((v) => declares(CONFIGS[to]).includes(v)),
        );
        it(`from "${from}" to ${targets.length} other configs: nothing kept is deleted or replaced`, async () => {
            const before = (await runProgram(CONFIGS[from])).resources.filter((r) => KEPT.includes(r.type));
            assert.ok(before.length >= 5);
            assert.ok(targets.length >= 1);
            for (const to of targets) {
                const after = new Map((await runProgram(CONFIGS[to])).resources.map((r) => [keyOf(r), r]));
                for (const r of before) {
                    const next = after.get(keyOf(r));
                    assert.ok(next !== undefined, `${from} -> ${to} deletes ${keyOf(r)}`);
                    assert.equal(identity(next), identity(r), `${from} -> ${to} replaces ${keyOf(r)}`);
                }
            }
        });
    }
});

describe("changing routingApi (a migration)", () => {
    const ROUTING_TYPES: Record<string, string[]> = {
        istio: ["cowsay-bluegreen:routing:IstioRouting", VS, DR, GW],
        "gateway-api": [
            "cowsay-bluegreen:routing:GatewayApiRouting",
            K8S_GATEWAY,
            HTTPROUTE,
            "kubernetes:yaml/v2:ConfigFile",
            "cowsay-bluegreen:gateway-api:GatewayApiCrds",
            // The wait for Istio's verdict on the HTTPRoutes (dynamic/route-status.ts).
            "pulumi-nodejs:dynamic/cowsay-bluegreen:RouteStatus",
        ],
    };
    const isRouting = (r: Registered, api: string) =>
        ROUTING_TYPES[api].includes(r.type) ||
        (api === "gateway-api" && r.type === SERVICE && /^cowsay-nginx-/.test((r.inputs.metadata as { name: string }).name));

    for (const [from, to] of [
        ["istio", "gateway-api"],
        ["gateway-api", "istio"],
    ]) {
        it(`from ${from} to ${to}: creates the new API's routing objects, deletes only the old API's, and keeps the rest as it is`, async () => {
            const beforeRun = await runProgram({ ...gated, routingApi: from });
            const afterRun = await runProgram({ ...gated, routingApi: to });
            const before = new Map(beforeRun.resources.map((r) => [keyOf(r), r]));
            const after = new Map(afterRun.resources.map((r) => [keyOf(r), r]));
            const deleted = beforeRun.resources.filter((r) => !after.has(keyOf(r)));
            const created = afterRun.resources.filter((r) => !before.has(keyOf(r)));
            assert.deepEqual(deleted.filter((r) => !isRouting(r, from)).map(keyOf), [], "only routing objects go");
            assert.deepEqual(created.filter((r) => !isRouting(r, to)).map(keyOf), [], "only routing objects come");
            assert.ok(deleted.length >= 3 && created.length >= 3);
            // Everything else (Deployments, the shared Service, PDBs, mTLS, AuthorizationPolicy, the
            // gate, the installs) keeps its resource, its identity and its inputs: not even updated.
            for (const r of afterRun.resources.filter((x) => before.has(keyOf(x)))) {
                const old = before.get(keyOf(r)) as Registered;
                assert.deepEqual(r.inputs, old.inputs, `${keyOf(r)} changes`);
            }
        });
    }
});
