// What a rollout prints: its preview (per stack the steps, each check's bound and resolved queries,
// the least time) inside the fleet preview report, and every measurement of a rollout that ran.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseAnalysis } from "../../lib/analysis/checks";
import type { Fleet } from "../../fleet/file";
import { REPORT_TITLE, previewReport } from "../../fleet/report";
import { stepTarget } from "../../fleet/rollout";
import { analysisReport, describeSeconds, rolloutSection, rolloutTitle } from "../../fleet/rollout-report";
import type { StackRollout } from "../../fleet/rollout-runner";

const analysis = (checks: unknown[]) => ({ provider: { url: "http://user:secret@prometheus.eu:9090", token: undefined }, ...parseAnalysis({ checks }) });
const STACKS: (StackRollout & { stack: string; wave: string })[] = [
    {
        stack: "staging",
        wave: "canary",
        from: "v1",
        to: "v2",
        namespace: "cowsay",
        analysis: analysis([{ name: "success-rate", metric: "success-rate", min: 99, interval: "2s", count: 2 }]),
    },
    {
        stack: "eu",
        wave: "production",
        from: "v1",
        to: "v2",
        namespace: "cowsay",
        analysis: analysis([{ name: "p99", metric: "request-duration", max: 500, vsLive: 50, interval: "30s", count: 3, minRequests: 20 }]),
    },
];
const FLEET: Fleet = {
    waves: [
        { name: "canary", stacks: ["staging"], parallel: 1 },
        { name: "production", stacks: ["eu"], parallel: 1 },
    ],
    bake: 60,
    onFailure: "rollback",
};

describe("the preview of a rollout", () => {
    const section = rolloutSection(FLEET, [10, 50, 100], STACKS);
    const lines = section.split("\n");

    it("the least time: each wave's slowest analysis at each step, then the bake", () => {
        // staging 4 s, eu 90 s: step 10 = 4 + 90; 50 and 100 = 90 + 90 (eu again after the canary's wave); bake 60 s = one analysis of eu (90 s).
        assert.ok(
            lines.includes(
                `It takes at least ${describeSeconds(94 + 180 + 180 + 90)}: after each wave of each step, the analysis of every stack moved so far, then the bake (1 min, until its last analysis ends); plus every stack's \`pulumi up\` at each step. Each query was checked with Prometheus's grammar; none was sent.`,
            ),
            section,
        );
        assert.equal(describeSeconds(544), "9 min 4 s");
    });

    it("per stack its steps, with each check's bound, interval, count and minRequests", () => {
        assert.ok(
            lines.includes("#### eu (wave production): v1 to v2, at least 1 min 30 s of analysis at each step, on http://prometheus.eu:9090"),
            "no credentials shown",
        );
        assert.ok(lines.includes("| 10% | v1 90% / v2 10% | p99 | max 500, v1's own + 50 | 30 s | 3 | 20 |"), section);
        assert.ok(lines.includes("| 50% | v1 50% / v2 50% | p99 | max 500, v1's own + 50 | 30 s | 3 | 20 |"), section);
        assert.ok(lines.includes("| 100% | v2 | p99 | max 500 | 30 s | 3 | 20 |"), section);
        assert.ok(lines.includes("| 10% | v1 90% / v2 10% | success-rate | min 99 | 2 s | 2 | 10 |"), section);
    });

    it("each check's queries as they will be sent: the new version's, and the live one's where it compares", () => {
        const v2 = lines.find((l) => l.startsWith("p99 (v2): ")) ?? "";
        assert.equal(
            v2,
            'p99 (v2): histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[30s])))',
        );
        assert.ok(
            lines.some((l) => l.startsWith("p99 (v1, live): ") && l.includes('destination_workload="cowsay-nginx-v1"')),
            section,
        );
        assert.ok(
            lines.some((l) => l.startsWith("p99 (v2, requests): sum(increase(istio_requests_total{")),
            section,
        );
        assert.ok(!lines.some((l) => l.startsWith("success-rate (v1, live)")), "success-rate does not compare");
    });

    it("sits in the fleet preview report, whose table shows each stack's first step", () => {
        const plan = { live: { v1: 100 }, steps: [{ op: "update", resource: "VirtualService cowsay-route" }], diff: "~ weight" };
        const report = previewReport(
            undefined,
            [
                { ...plan, stack: "staging", wave: "canary" },
                { ...plan, stack: "eu", wave: "production" },
            ],
            undefined,
            {
                title: rolloutTitle("v2", [10, 50, 100], 60),
                firstStep: () => stepTarget(10, "v1", "v2"),
                section,
            },
        );
        assert.equal(report.split("\n")[0], `${REPORT_TITLE}: rollout of v2 in steps 10%, 50%, 100%, then a bake of 1 min`);
        assert.ok(report.includes("| production | eu | v1 | v1 90% / v2 10% (first step) | 1 to update |"), report);
        assert.ok(report.indexOf("### Rollout: 3 steps") < report.indexOf("<details><summary>staging"), "the section before the diffs");
    });
});

describe("the measurements of a rollout, on stdout", () => {
    it("every analysis and each of its measurements: time, check, verdict, value, bound, why, the query as sent", () => {
        const text = analysisReport([
            {
                stack: "eu",
                step: 10,
                phase: "step",
                verdict: "failed",
                summary:
                    "analysis of v2 on eu at 10% failed: check success-rate measurement 1/2: 80 is below min 99 (bound: min 99); query at http://p:9090: q",
                measurements: [
                    {
                        check: "success-rate",
                        index: 1,
                        count: 2,
                        at: "2026-12-06T10:00:02.000Z",
                        query: "sum(rate(x[2s]))",
                        value: 80,
                        requests: 40,
                        bound: "min 99",
                        verdict: "failed",
                        reason: "80 is below min 99",
                    },
                ],
            },
            {
                stack: "us",
                step: 100,
                phase: "bake",
                verdict: "inconclusive",
                summary: "s",
                measurements: [{ check: "p99", index: 1, count: 1, at: "t", query: "q", bound: "max 500", verdict: "inconclusive", reason: "no data" }],
            },
        ]);
        assert.equal(
            text,
            [
                "analysis (every measurement, also in .fleet/last-switch.json):",
                "eu at 10%: failed: analysis of v2 on eu at 10% failed: check success-rate measurement 1/2: 80 is below min 99 (bound: min 99); query at http://p:9090: q",
                "  2026-12-06T10:00:02.000Z  success-rate 1/2  failed  value 80, 40 requests (bound: min 99): 80 is below min 99",
                "    query: sum(rate(x[2s]))",
                "us in the bake: inconclusive: s",
                "  t  p99 1/1  inconclusive  value no data (bound: max 500): no data",
                "    query: q",
                "",
            ].join("\n"),
        );
        assert.equal(analysisReport([]), "analysis: none ran\n");
    });
});
