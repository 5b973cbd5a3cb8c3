// What the fleet prints as its result: the preview report (one PR comment, cut to fit), the status
// lines and JSON, and the last lines of a switch.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { COMMENT_LIMIT, REPORT_TITLE, finalLines, previewReport, statusJson, statusRows, statusText } from "../../fleet/report";
import { newRecord } from "../../fleet/record";
import type { StackView } from "../../fleet/workspace";

const PLANS = [
    {
        stack: "staging",
        wave: "canary",
        live: { v1: 100 },
        steps: [
            { op: "update", resource: "Gate cowsay-gate" },
            { op: "update", resource: "VirtualService cowsay-route" },
        ],
        diff: '~ subset: "v1" => "v2"',
    },
    {
        stack: "eu",
        wave: "production",
        live: { v1: 100 },
        steps: [],
        diff: "",
        error: 'Invalid config activeVersion: "v2" is not a deployed version; allowed: v1.',
    },
];

describe("the preview report", () => {
    it("one table row per stack with its plan, and each stack's diff in a collapsed block", () => {
        const report = previewReport({ kind: "version", version: "v2" }, PLANS);
        const lines = report.split("\n");
        assert.equal(lines[0], `${REPORT_TITLE}: switch to v2`);
        assert.ok(lines.includes("| canary | staging | v1 | v2 | 2 to update |"), report);
        assert.ok(
            lines.includes('| production | eu | v1 | v2 | **preview failed**: Invalid config activeVersion: "v2" is not a deployed version; allowed: v1. |'),
            report,
        );
        assert.ok(lines.includes("**1 of 2 previews failed.**"));
        assert.ok(report.includes('<details><summary>staging: 2 to update</summary>\n\n```\n~ subset: "v1" => "v2"\n```\n</details>'), report);
    });

    it("fits one PR comment however long the diffs are", () => {
        const long = Array.from({ length: 5 }, (_, i) => ({ ...PLANS[0], stack: `s${i}`, diff: "x".repeat(40_000) }));
        const report = previewReport(undefined, long);
        assert.ok(report.length <= COMMENT_LIMIT, `${report.length}`);
        assert.equal((report.match(/cut to fit one comment/g) ?? []).length, 5);
        assert.ok(report.startsWith(`${REPORT_TITLE}: every stack as configured`));
    });
});

describe("status", () => {
    const views: (StackView & { wave: string })[] = [
        {
            name: "staging",
            wave: "canary",
            config: {},
            raw: {},
            secretKeys: new Set<string>(),
            live: { v2: 100 },
            activeVersion: "v2",
            versions: {},
            lastUpdate: { kind: "update", result: "succeeded", startedAt: "2026-11-29T10:00:00.000Z", endedAt: "2026-11-29T10:00:05.000Z" },
            locked: false,
        },
        {
            name: "eu",
            wave: "production",
            config: {},
            raw: {},
            secretKeys: new Set<string>(),
            live: { v1: 90, v2: 10 },
            activeVersion: "v1",
            versions: {},
            lastUpdate: undefined,
            locked: true,
        },
    ];

    it("--json: every stack's wave, outputs, last update and lock, and the last switch", () => {
        const record = { ...newRecord({ kind: "version", version: "v2" }, {}), state: "halted" as const };
        const json = JSON.parse(statusJson(statusRows(views), record));
        assert.deepEqual(json.stacks[1], {
            stack: "eu",
            wave: "production",
            activeVersion: "v1",
            trafficSplit: { v1: 90, v2: 10 },
            lastUpdate: null,
            locked: true,
        });
        assert.deepEqual(json.stacks[0].lastUpdate, views[0].lastUpdate);
        assert.deepEqual(json.lastSwitch, { id: record.id, target: "v2", startedAt: record.startedAt, state: "halted" });
    });

    it("text: one aligned line per stack", () => {
        assert.equal(
            statusText(statusRows(views), undefined),
            [
                "STACK    WAVE        LIVE             LAST UPDATE                                LOCKED",
                "staging  canary      v2               update succeeded 2026-11-29T10:00:05.000Z  no",
                "eu       production  v1 90% / v2 10%  never                                      LOCKED (pulumi cancel, once nothing runs)",
                "",
            ].join("\n"),
        );
    });
});

describe("the last lines of a switch", () => {
    it("name every stack with what it runs now and what happened to it", () => {
        assert.equal(
            finalLines([
                { stack: "staging", wave: "canary", live: { v1: 100 }, end: "rolled-back" },
                { stack: "eu", wave: "production", live: { v1: 100 }, end: "failed", note: "its config says so again" },
                { stack: "us", wave: "production", live: { v2: 100 }, end: "cancelled", locked: true },
            ]),
            "staging  canary      runs v1; rolled back\neu       production  runs v1; its switch failed; its config says so again\nus       production  runs v2; cancelled in flight; LOCKED\n",
        );
    });
});
