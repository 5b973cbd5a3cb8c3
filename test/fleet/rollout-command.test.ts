// Which stacks a rollout moves and how: the fleet file's (its steps and bake, or the defaults), or
// one stack named with --stack (no fleet file read); and what blocks a rollout after an unfinished one.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { unfinished } from "../../fleet/commands";
import { inState, newRecord } from "../../fleet/record";
import { statusText } from "../../fleet/report";
import { ONE_STACK_WAVE, rolloutPlan } from "../../fleet/rollout-command";
import { Refused } from "../../lib/refusal";

const STACKS = ["staging", "eu", "us"];
const project = (fleetYaml?: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), "fleet-rollout-plan-"));
    if (fleetYaml !== undefined) writeFileSync(path.join(dir, "fleet.yaml"), fleetYaml);
    return dir;
};
const FILE = "waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu, us]\nbake: 60\nonFailure: halt\n";

describe("the stacks of a rollout", () => {
    it("the fleet file's waves, bake and onFailure, with the default steps 10, 50, 100", () => {
        const { fleet, steps } = rolloutPlan(project(FILE), STACKS, {});
        assert.deepEqual(steps, [10, 50, 100]);
        assert.deepEqual([fleet.waves.map((w) => w.name), fleet.bake, fleet.onFailure], [["canary", "production"], 60, "halt"]);
    });

    it("the fleet file's steps beat the default; --steps and --bake beat the file", () => {
        const dir = project(`${FILE}steps: [5, 100]\n`);
        assert.deepEqual(rolloutPlan(dir, STACKS, {}).steps, [5, 100]);
        const { fleet, steps } = rolloutPlan(dir, STACKS, { steps: [20, 100], bake: 0 });
        assert.deepEqual([steps, fleet.bake], [[20, 100], 0]);
    });

    it("--stack: that one stack alone, bake 0 unless --bake, rollback on failure; the fleet file is not read", () => {
        const dir = project("not: [a fleet file");
        assert.deepEqual(rolloutPlan(dir, STACKS, { stack: "eu" }), {
            fleet: { waves: [{ name: ONE_STACK_WAVE, stacks: ["eu"], parallel: 1 }], bake: 0, onFailure: "rollback" },
            steps: [10, 50, 100],
        });
        assert.equal(rolloutPlan(dir, STACKS, { stack: "eu", bake: 30 }).fleet.bake, 30);
    });

    it("refuses a --stack that is not a stack of this project, and says how without a fleet file", () => {
        assert.throws(
            () => rolloutPlan(project(), STACKS, { stack: "asia" }),
            (err: unknown) => err instanceof Refused && err.message === "--stack asia is not a stack of this project; allowed: eu, staging, us",
        );
        const dir = project();
        assert.throws(
            () => rolloutPlan(dir, STACKS, {}),
            (err: unknown) =>
                err instanceof Refused &&
                err.message === `fleet.yaml: not found in ${dir}; write one (docs/fleet.md says how), or name one stack with --stack NAME`,
        );
    });

    it("an unfinished rollout blocks the next switch or rollout, named as a rollout", () => {
        const record = {
            ...newRecord({ kind: "version", version: "v2" }, {}, new Date("2026-12-06T10:00:00Z"), { steps: [10, 100], bake: 0 }),
            pid: 999_999_999,
        };
        assert.equal(
            unfinished(record),
            "the last fleet rollout (to v2, started 2026-12-06T10:00:00.000Z) did not finish (its process was killed): run npm run fleet -- rollback first",
        );
        assert.equal(
            unfinished(inState(record, "halted")),
            "the last fleet rollout (to v2, started 2026-12-06T10:00:00.000Z) ended halted: run npm run fleet -- rollback first",
        );
        assert.equal(unfinished(inState(record, "switched")), undefined);
        assert.ok(statusText([], inState(record, "rolled-back")).endsWith("\nlast fleet rollout: to v2, started 2026-12-06T10:00:00.000Z, rolled-back\n"));
    });
});
