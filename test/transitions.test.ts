// Nothing the user already runs is deleted or replaced by a config change: across every transition
// between valid configs, each Deployment, Service, DestinationRule and Gateway keeps its resource
// and every field whose change makes the Kubernetes provider replace the object.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DEPLOYMENT, DR, GW, SERVICE, keyOf, runProgram, type Registered } from "./helpers";

const KEPT = [DEPLOYMENT, SERVICE, DR, GW];
const gated = { gatewayUrl: "https://203.0.113.10" };
const withV3 = JSON.stringify({
    v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
    v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
    v3: { image: "dougbtv/nginx-cowsay:v3", expect: "v3" },
});

const CONFIGS: Record<string, Record<string, string>> = {
    "v1 live": { ...gated },
    "v2 live": { ...gated, activeVersion: "v2" },
    "v1 90 / v2 10": { ...gated, trafficSplit: '{"v1":90,"v2":10}' },
    "v2 70 / v1 30": { ...gated, activeVersion: "v2", trafficSplit: '{"v1":30,"v2":70}' },
    "v3 added, v1 live": { ...gated, versions: withV3 },
    "v3 live": { ...gated, versions: withV3, activeVersion: "v3" },
    "idle versions scaled to 1": { ...gated, idleReplicas: "1" },
};

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
        const targets = names.filter((to) => to !== from && declares(CONFIGS[from]).every((v) => declares(CONFIGS[to]).includes(v)));
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
