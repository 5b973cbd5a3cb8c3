// Beyond the seed, under mocks: test routes to every version, weighted steps, idle capacity, and
// the gate that must pass before the live route sends traffic to a version.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DEPLOYMENT, UNRESOLVED, VS, byKey, find, keyOf, metadataOf, ofType, runProgram, spec, type Run, type Spec } from "./support/helpers";

const GATE = "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate";
const liveRoute = (run: Run) => find(run, VS, "cowsay-nginx");
const testRoute = (run: Run) => find(run, VS, "cowsay-nginx-test");
const split = (run: Run) => Object.fromEntries(spec(liveRoute(run)).http[0].route.map((r: Spec) => [r.destination.subset, r.weight]));
const gated = { gatewayUrl: "https://203.0.113.10" };

describe("test routes", () => {
    it("send a request carrying the header to that version, for every version, whatever is live", async () => {
        for (const active of ["v1", "v2"]) {
            const run = await runProgram({ activeVersion: active });
            const rules: Spec[] = spec(testRoute(run)).http;
            assert.deepEqual(
                rules.map((r) => [r.match[0].headers["x-cowsay-version"].exact, r.route[0].destination.subset]),
                [
                    ["v1", "v1"],
                    ["v2", "v2"],
                ],
            );
            // No catch-all: requests without the header fall through to the live route.
            assert.ok(rules.every((r) => r.match !== undefined && r.route.length === 1));
            assert.deepEqual(
                spec(testRoute(run)).gateways,
                spec(liveRoute(run)).gateways.filter((g: string) => g !== "mesh"),
            );
            assert.deepEqual(spec(testRoute(run)).hosts, ["cowsay.example.com"]);
        }
    });

    it("are created before the live route, because Istio evaluates merged routes in creation order", async () => {
        const run = await runProgram({});
        assert.ok(liveRoute(run).dependsOn.includes(keyOf(testRoute(run))));
    });

    it("use the configured header and can be turned off", async () => {
        const custom = await runProgram({ testRouteHeader: "x-canary" });
        assert.deepEqual(Object.keys(spec(testRoute(custom)).http[0].match[0].headers), ["x-canary"]);
        const off = await runProgram({ testRouteHeader: "", smokeCheck: "false" });
        assert.deepEqual(
            ofType(off, VS).map((r) => metadataOf(r).name),
            ["cowsay-nginx"],
        );
    });
});

describe("weighted steps", () => {
    it("split the live route between versions by the configured percentages", async () => {
        const run = await runProgram({ trafficSplit: '{"v1":90,"v2":10}' });
        assert.deepEqual(split(run), { v1: 90, v2: 10 });
        assert.deepEqual(run.outputs.trafficSplit, { v1: 90, v2: 10 });
    });

    it("moving between any two splits changes only the routing object, and the gate when a version gains traffic", async () => {
        // [config of the step, does the set of versions taking traffic change on the way to it?]
        const steps: [Record<string, string>, boolean][] = [
            [{}, false],
            [{ trafficSplit: '{"v1":90,"v2":10}' }, true],
            [{ trafficSplit: '{"v1":50,"v2":50}' }, false],
            [{ activeVersion: "v2", trafficSplit: '{"v1":10,"v2":90}' }, false],
            [{ activeVersion: "v2" }, true],
            [{ activeVersion: "v1" }, true],
        ];
        for (let i = 0; i + 1 < steps.length; i++) {
            const before = byKey(await runProgram({ ...gated, ...steps[i][0] }));
            const afterRun = await runProgram({ ...gated, ...steps[i + 1][0] });
            const after = byKey(afterRun);
            assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
            const changed = [...after.keys()].filter((k) => after.get(k) !== before.get(k)).sort();
            const expected = [keyOf(liveRoute(afterRun)), ...(steps[i + 1][1] ? [`${GATE}::cowsay-gate`] : [])];
            assert.deepEqual(changed, expected.sort(), JSON.stringify(steps[i + 1][0]));
        }
    });
});

describe("idle capacity", () => {
    const replicas = (run: Run) => Object.fromEntries(ofType(run, DEPLOYMENT).map((d) => [metadataOf(d).name, spec(d).replicas]));

    it("keeps idle versions as large as the live one by default, so rollback needs no scale-up", async () => {
        assert.deepEqual(replicas(await runProgram({})), { "cowsay-nginx-v1": 2, "cowsay-nginx-v2": 2 });
    });

    it("scales idle versions to idleReplicas, marks an explicit zero, and warns", async () => {
        const one = await runProgram({ idleReplicas: "1", activeVersion: "v2" });
        assert.deepEqual(replicas(one), { "cowsay-nginx-v1": 1, "cowsay-nginx-v2": 2 });
        const zero = await runProgram({ idleReplicas: "0" });
        assert.deepEqual(replicas(zero), { "cowsay-nginx-v1": 2, "cowsay-nginx-v2": 0 });
        const idle = find(zero, DEPLOYMENT, "cowsay-nginx-v2");
        assert.deepEqual(metadataOf(idle).annotations, { "cowsay-bluegreen.io/allow-zero-replicas": "true" });
        assert.equal(metadataOf(find(zero, DEPLOYMENT, "cowsay-nginx-v1")).annotations, undefined);
    });

    it("serves every version in a split with its full replicas", async () => {
        const run = await runProgram({ idleReplicas: "0", trafficSplit: '{"v1":90,"v2":10}' });
        assert.deepEqual(replicas(run), { "cowsay-nginx-v1": 2, "cowsay-nginx-v2": 2 });
    });
});

describe("the gate before a switch", () => {
    it("checks each version about to take traffic, through its test route, after its pods are ready", async () => {
        const run = await runProgram({ ...gated, trafficSplit: '{"v1":90,"v2":10}' });
        const gate = find(run, GATE);
        assert.deepEqual(gate.inputs.checks, [
            { version: "v1", image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            { version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
        ]);
        assert.equal(gate.inputs.gatewayUrl, "https://203.0.113.10");
        assert.equal(gate.inputs.header, "x-cowsay-version");
        assert.equal(gate.inputs.host, "cowsay.example.com");
        for (const version of ["v1", "v2"]) {
            assert.ok(gate.dependsOn.includes(keyOf(find(run, DEPLOYMENT, `cowsay-nginx-${version}`))), `gate waits for ${version}'s pods`);
        }
        assert.ok(gate.dependsOn.includes(keyOf(testRoute(run))), "gate goes through the test route");
        assert.ok(liveRoute(run).dependsOn.includes(keyOf(gate)), "the live route waits for the gate");
    });

    it("leaves the live route, the version going idle and the outputs untouched when the check fails", async () => {
        const run = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "0" }, { fails: (type) => type === GATE });
        assert.ok(
            run.failures.some((f) => f.includes("mock failure of " + GATE)),
            run.failures.join("; "),
        );
        assert.deepEqual(
            ofType(run, VS).map((r) => metadataOf(r).name),
            ["cowsay-nginx-test"],
        );
        // v2 scales up before the gate; v1, still live, is scaled to 0 only after the route left it.
        assert.deepEqual(
            ofType(run, DEPLOYMENT).map((d) => metadataOf(d).name),
            ["cowsay-nginx-v2"],
        );
        assert.equal(run.outputs.activeVersion, UNRESOLVED, "the stack output does not claim v2 is live");
        assert.equal(run.outputs.trafficSplit, UNRESOLVED);
    });

    it("scales a version that goes idle only after the live route has left it", async () => {
        const run = await runProgram({ ...gated, activeVersion: "v2", idleReplicas: "0" });
        const v1 = find(run, DEPLOYMENT, "cowsay-nginx-v1");
        assert.equal(spec(v1).replicas, 0);
        assert.ok(v1.dependsOn.includes(keyOf(liveRoute(run))), "v1 waits for the route");
        assert.ok(liveRoute(run).dependsOn.includes(keyOf(find(run, DEPLOYMENT, "cowsay-nginx-v2"))), "the route waits for v2");
    });

    it("is replaced by a readiness-only gate and a warning when the gateway URL is not known yet", async () => {
        const run = await runProgram({});
        assert.deepEqual(ofType(run, GATE), []);
        assert.ok(liveRoute(run).dependsOn.includes(keyOf(find(run, DEPLOYMENT, "cowsay-nginx-v1"))));
    });
});
