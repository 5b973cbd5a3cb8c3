// Before a rollout touches anything, each stack must have a Prometheus, run one version alone (not
// the target), and pass the program's rules at every step; each refusal is one line naming the stack.
// Then the checks of each step, resolved for the new version's workload and the live one's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { rolloutRefusal, soleVersion, stackRollout, stepChecks } from "../../fleet/rollout-runner";
import type { StackView } from "../../fleet/workspace";

const VERSIONS = { v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" }, v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" } };
const ANALYSIS = {
    preSwitch: false,
    checks: [
        { name: "success-rate", metric: "success-rate", min: 99, interval: "2s", count: 2 },
        { name: "p99", metric: "request-duration", max: 500, vsLive: 50 },
    ],
};
const view = (raw: Record<string, string> = {}, extra: Partial<StackView> = {}): StackView => ({
    name: "eu",
    config: { activeVersion: "v1" },
    raw: {
        activeVersion: "v1",
        versions: JSON.stringify(VERSIONS),
        smokeCheck: "false",
        prometheusUrl: "http://prometheus.eu:9090",
        analysis: JSON.stringify(ANALYSIS),
        ...raw,
    },
    secretKeys: new Set(),
    live: { v1: 100 },
    activeVersion: "v1",
    versions: VERSIONS,
    ...extra,
});
const STEPS = [10, 50, 100];

describe("a rollout's refusals, before the first stack is touched", () => {
    it("lets a stack with a Prometheus, on v1 alone, through to v2", () => {
        assert.equal(rolloutRefusal(view(), "v2", STEPS), undefined);
    });

    it("refuses a stack without prometheusUrl, naming the stack and the key", () => {
        const without = Object.fromEntries(Object.entries(view().raw).filter(([key]) => key !== "prometheusUrl"));
        assert.equal(
            rolloutRefusal({ ...view(), raw: without }, "v2", STEPS),
            "stack eu: prometheusUrl is not set; a rollout judges every step on the stack's Prometheus (pulumi config set prometheusUrl http://prometheus:9090 --stack eu; docs/analysis.md). Nothing was changed.",
        );
    });

    it("refuses a stack that runs a split, or the target already", () => {
        assert.equal(
            rolloutRefusal(view({}, { live: { v1: 90, v2: 10 } }), "v2", STEPS),
            "stack eu runs v1 90% / v2 10%; a rollout starts from one version at 100% (npm run fleet -- rollback, or switch it to one version first). Nothing was changed.",
        );
        assert.equal(
            rolloutRefusal(view({}, { live: { v2: 100 } }), "v2", STEPS),
            "stack eu runs v2 already; a rollout to v2 starts from another version at 100%. Nothing was changed.",
        );
    });

    it("refuses a target the stack does not declare with the program's own line (the last step's config)", () => {
        assert.equal(
            rolloutRefusal(view(), "v3", STEPS),
            'stack eu: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.',
        );
    });

    it("refuses a stack whose config the program refuses, and one never deployed", () => {
        assert.equal(
            rolloutRefusal(
                view({ analysis: JSON.stringify({ preSwitch: false, checks: [{ name: "x", metric: "custom", query: "sum(rate(x[1m])", min: 1 }] }) }),
                "v2",
                STEPS,
            ),
            'stack eu: Invalid config analysis.checks[0].query: "sum(rate(x[1m])" is not valid PromQL: with its templates filled in, the parser stops at character 16 (the end: something is missing). Nothing was changed.',
        );
        assert.equal(rolloutRefusal(view({}, { live: undefined }), "v2", STEPS), "stack eu has never been deployed (no outputs); run pulumi up on it first");
    });

    it("the one version a stack runs alone", () => {
        assert.equal(soleVersion({ v1: 100 }), "v1");
        assert.equal(soleVersion({ v1: 100, v2: 0 }), "v1");
        assert.equal(soleVersion({ v1: 90, v2: 10 }), undefined);
        assert.equal(soleVersion(undefined), undefined);
    });
});

describe("the checks of each step", () => {
    const rollout = stackRollout(view({ appNamespace: "shop" }), "v2");

    it("are about the new version's Deployment in the stack's namespace, at the stack's Prometheus", () => {
        assert.deepEqual([rollout.from, rollout.to, rollout.namespace, rollout.analysis.provider.url], ["v1", "v2", "shop", "http://prometheus.eu:9090"]);
        const [success] = stepChecks(rollout, 10);
        assert.equal(
            success.query,
            'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload="cowsay-nginx-v2",response_code!~"5.."}[2s])) / ' +
                'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload="cowsay-nginx-v2"}[2s])) * 100',
        );
        assert.equal(success.bound, "min 99");
    });

    it("compare with the live version below 100% only: at 100% it takes no traffic left to compare with", () => {
        const p99At50 = stepChecks(rollout, 50)[1];
        assert.match(p99At50.baselineQuery ?? "", /destination_workload="cowsay-nginx-v1"/);
        assert.equal(p99At50.bound, "max 500, v1's own + 50");
        const p99At100 = stepChecks(rollout, 100)[1];
        assert.equal(p99At100.baselineQuery, undefined);
        assert.equal(p99At100.bound, "max 500");
        assert.equal(p99At100.vsLive, undefined);
    });

    it("a check that only compares with the live version has no bound at 100%, only its data and minRequests", () => {
        const only = stackRollout(
            view({ analysis: JSON.stringify({ preSwitch: false, checks: [{ name: "p99", metric: "request-duration", vsLive: 50 }] }) }),
            "v2",
        );
        assert.equal(stepChecks(only, 10)[0].bound, "v1's own + 50");
        assert.equal(stepChecks(only, 100)[0].bound, "any value (vsLive is judged below 100% only)");
    });
});
