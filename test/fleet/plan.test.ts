// The wave plan and the failure policy with a fake stack runner: which stack is touched when, how
// many at once, what the bake checks, what is rolled back, what Ctrl-C leaves, and the exit codes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { Fleet } from "../../fleet/file";
import { EXIT_CODES, runRollback, runSwitch, type Clock, type PlanProgress, type StackRunner } from "../../fleet/plan";

/** A stack runner that records every call, in order, and fails where a test says. */
class FakeRunner implements StackRunner {
    readonly log: string[] = [];
    inFlight = 0;
    maxInFlight = 0;
    readonly failSwitch = new Set<string>();
    /** stack -> the check (1-based) that fails. */
    readonly failCheck = new Map<string, number>();
    readonly failRollback = new Set<string>();
    /** Stacks whose switch never ends by itself (only the signal ends it). */
    readonly hang = new Set<string>();
    /** Called when a stack's switch starts (after it is logged). */
    onSwitch: (stack: string) => void = () => undefined;
    private readonly checks = new Map<string, number>();

    async switchStack(stack: string, signal: AbortSignal): Promise<void> {
        this.log.push(`switch ${stack}`);
        this.inFlight += 1;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        this.onSwitch(stack);
        try {
            if (this.hang.has(stack)) {
                await new Promise<void>((_resolve, reject) => {
                    const stop = () => reject(new Error("update cancelled"));
                    if (signal.aborted) stop();
                    signal.addEventListener("abort", stop);
                });
            }
            // Let the other workers of the wave start, as real updates would overlap.
            for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
            if (this.failSwitch.has(stack)) throw new Error(`gate failed for ${stack}`);
            this.log.push(`switched ${stack}`);
        } finally {
            this.inFlight -= 1;
        }
    }

    check(stack: string): Promise<void> {
        const n = (this.checks.get(stack) ?? 0) + 1;
        this.checks.set(stack, n);
        this.log.push(`check ${stack}`);
        return this.failCheck.get(stack) === n ? Promise.reject(new Error(`${stack} serves the wrong page`)) : Promise.resolve();
    }

    rollback(stack: string): Promise<void> {
        this.log.push(`rollback ${stack}`);
        return this.failRollback.has(stack) ? Promise.reject(new Error(`${stack} unreachable`)) : Promise.resolve();
    }

    touched(): string[] {
        return [...new Set(this.log.filter((l) => l.startsWith("switch ")).map((l) => l.slice(7)))];
    }
}

/** Time that passes only when the plan sleeps. */
class FakeClock implements Clock {
    t = 0;
    readonly sleeps: number[] = [];
    now(): number {
        return this.t;
    }
    sleep(ms: number, signal: AbortSignal): Promise<void> {
        this.sleeps.push(ms);
        if (!signal.aborted) this.t += ms;
        return Promise.resolve();
    }
}

const quiet: PlanProgress = { step: () => undefined, line: () => undefined };
const fleet = (onFailure: Fleet["onFailure"] = "rollback", parallel = 2, bake = 0): Fleet => ({
    waves: [
        { name: "canary", stacks: ["staging"], parallel: 1 },
        { name: "production", stacks: ["eu", "us", "asia"], parallel },
    ],
    bake,
    onFailure,
});
const run = (f: Fleet, runner: FakeRunner, controller = new AbortController(), clock = new FakeClock(), progress = quiet) =>
    runSwitch(f, runner, { signal: controller.signal, progress, clock, checkIntervalMs: 10_000 });

describe("a fleet switch: waves, parallelism, bake", () => {
    it("switches the canary wave, checks it, then the next wave at most `parallel` at once, and checks every switched stack after each wave", async () => {
        const runner = new FakeRunner();
        const result = await run(fleet("rollback", 2), runner);
        assert.equal(result.outcome, "switched");
        assert.equal(EXIT_CODES[result.outcome], 0);
        assert.equal(runner.maxInFlight, 2);
        const log = runner.log;
        // Nothing of the second wave starts before the canary has switched and been checked.
        assert.deepEqual(log.slice(0, 3), ["switch staging", "switched staging", "check staging"]);
        assert.ok(log.indexOf("switch eu") > log.indexOf("check staging"));
        // asia waits for a free slot.
        assert.ok(log.indexOf("switch asia") > Math.min(log.indexOf("switched eu"), log.indexOf("switched us")));
        // After the last wave every switched stack is checked, the canary included.
        assert.deepEqual(log.slice(-4).sort(), ["check asia", "check eu", "check staging", "check us"]);
        assert.deepEqual([...result.stacks.values()], ["switched", "switched", "switched", "switched"]);
    });

    it("parallel 1 switches one stack at a time; no parallel key means the whole wave at once", async () => {
        const one = new FakeRunner();
        await run(fleet("rollback", 1), one);
        assert.equal(one.maxInFlight, 1);
        const all = new FakeRunner();
        await run(fleet("rollback", 3), all);
        assert.equal(all.maxInFlight, 3);
    });

    it("the bake checks every switched stack every interval until `bake` seconds have passed, the last check at the end", async () => {
        const runner = new FakeRunner();
        const clock = new FakeClock();
        await run({ waves: [{ name: "all", stacks: ["eu", "us"], parallel: 2 }], bake: 25, onFailure: "rollback" }, runner, undefined, clock);
        assert.deepEqual(clock.sleeps, [10_000, 10_000, 5_000]);
        assert.equal(runner.log.filter((l) => l === "check eu").length, 4, "at 0, 10, 20 and 25 s");
    });

    it("bake 0 still checks each stack once after its wave", async () => {
        const runner = new FakeRunner();
        const clock = new FakeClock();
        await run(fleet("rollback", 3, 0), runner, undefined, clock);
        assert.deepEqual(clock.sleeps, []);
        assert.equal(runner.log.filter((l) => l === "check staging").length, 2, "after its own wave and after the next");
        assert.equal(runner.log.filter((l) => l === "check eu").length, 1);
    });
});

describe("a fleet switch: the failure policy", () => {
    it("rollback: a gate failing in the second wave rolls back the canary and the failed stack, and never touches the rest", async () => {
        const runner = new FakeRunner();
        runner.failSwitch.add("eu");
        const result = await run(fleet("rollback", 1), runner);
        assert.equal(result.outcome, "rolled-back");
        assert.equal(EXIT_CODES[result.outcome], 1);
        assert.deepEqual(result.failure, { stack: "eu", during: "switch", message: "gate failed for eu" });
        assert.deepEqual(runner.touched(), ["staging", "eu"], "us and asia are never touched");
        assert.deepEqual(runner.log.filter((l) => l.startsWith("rollback")).sort(), ["rollback eu", "rollback staging"]);
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "rolled-back", eu: "rolled-back", us: "untouched", asia: "untouched" });
    });

    it("rollback: stacks already in flight in the failing wave finish, and are rolled back too; no new one starts", async () => {
        const runner = new FakeRunner();
        runner.failSwitch.add("eu");
        const result = await run(fleet("rollback", 2), runner);
        assert.deepEqual(runner.touched(), ["staging", "eu", "us"]);
        assert.ok(runner.log.includes("switched us"), "us, started with eu, finished");
        assert.deepEqual(runner.log.filter((l) => l.startsWith("rollback")).sort(), ["rollback eu", "rollback staging", "rollback us"]);
        assert.equal(result.stacks.get("asia"), "untouched");
    });

    it("rollback: a stack whose rollback fails makes the outcome rollback-failed (exit 2); the others still go back", async () => {
        const runner = new FakeRunner();
        runner.failSwitch.add("eu");
        runner.failRollback.add("staging");
        const result = await run(fleet("rollback", 1), runner);
        assert.equal(result.outcome, "rollback-failed");
        assert.equal(EXIT_CODES[result.outcome], 2);
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "rollback-failed", eu: "rolled-back", us: "untouched", asia: "untouched" });
    });

    it("rollback: a bake check failing rolls back every switched stack (the failure names the bake)", async () => {
        const runner = new FakeRunner();
        runner.failCheck.set("staging", 2); // fine after the canary wave, wrong after the next
        const result = await run(fleet("rollback", 3), runner);
        assert.equal(result.outcome, "rolled-back");
        assert.deepEqual(result.failure, { stack: "staging", during: "bake", message: "staging serves the wrong page" });
        assert.deepEqual(runner.log.filter((l) => l.startsWith("rollback")).sort(), ["rollback asia", "rollback eu", "rollback staging", "rollback us"]);
    });

    it("rollback: a bake failure after the canary wave stops the switch before the next wave", async () => {
        const runner = new FakeRunner();
        runner.failCheck.set("staging", 1);
        const result = await run(fleet("rollback", 3, 60), runner);
        assert.deepEqual(runner.touched(), ["staging"]);
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "rolled-back", eu: "untouched", us: "untouched", asia: "untouched" });
    });

    it("halt: nothing is rolled back and nothing more starts (exit 3)", async () => {
        const runner = new FakeRunner();
        runner.failSwitch.add("eu");
        const result = await run(fleet("halt", 1), runner);
        assert.equal(result.outcome, "halted");
        assert.equal(EXIT_CODES[result.outcome], 3);
        assert.deepEqual(runner.touched(), ["staging", "eu"]);
        assert.deepEqual(runner.log.slice(runner.log.indexOf("switch eu")), ["switch eu"], "after the failure: no check, no rollback, no switch");
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "switched", eu: "failed", us: "untouched", asia: "untouched" });
    });
});

describe("a fleet switch: Ctrl-C", () => {
    it("cancels the stacks in flight through their signal, starts no other, rolls nothing back (exit 130)", async () => {
        const runner = new FakeRunner();
        const controller = new AbortController();
        runner.hang.add("eu");
        runner.hang.add("us");
        runner.onSwitch = (stack) => {
            if (stack === "us") setImmediate(() => controller.abort());
        };
        const result = await run(fleet("rollback", 2), runner, controller);
        assert.equal(result.outcome, "interrupted");
        assert.equal(EXIT_CODES[result.outcome], 130);
        assert.deepEqual(runner.touched(), ["staging", "eu", "us"], "asia never starts");
        assert.ok(!runner.log.some((l) => l.startsWith("rollback")));
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "switched", eu: "cancelled", us: "cancelled", asia: "untouched" });
    });

    it("during the bake: stops watching; what switched stays switched", async () => {
        const runner = new FakeRunner();
        const controller = new AbortController();
        const clock = new FakeClock();
        clock.sleep = (ms, signal) => {
            controller.abort();
            return FakeClock.prototype.sleep.call(clock, ms, signal);
        };
        const result = await run(fleet("rollback", 3, 60), runner, controller, clock);
        assert.equal(result.outcome, "interrupted");
        assert.deepEqual(runner.touched(), ["staging"]);
        assert.equal(result.stacks.get("staging"), "switched");
    });
});

describe("npm run fleet -- rollback (the plan)", () => {
    it("rolls back the stacks that need it, at once, and reports a failed one", async () => {
        const runner = new FakeRunner();
        runner.failRollback.add("us");
        const lines: string[] = [];
        const result = await runRollback(["staging", "eu", "us"], (s) => s !== "eu", runner, {
            step: () => undefined,
            line: (s, t) => lines.push(`${s}: ${t}`),
        });
        assert.deepEqual(runner.log.sort(), ["rollback staging", "rollback us"]);
        assert.equal(result.failed, true);
        assert.deepEqual(Object.fromEntries(result.stacks), { staging: "rolled-back", eu: "untouched", us: "rollback-failed" });
        assert.ok(lines.includes("eu: runs what it ran before the switch, with the same config: nothing to roll back"));
        assert.ok(lines.includes("us: rollback failed: us unreachable"));
    });
});

describe("progress", () => {
    it("every line about a stack names it", async () => {
        const runner = new FakeRunner();
        runner.failSwitch.add("eu");
        const lines: [string | undefined, string][] = [];
        await run(fleet("rollback", 1), runner, undefined, undefined, { step: () => undefined, line: (s, t) => lines.push([s, t]) });
        assert.deepEqual(
            lines.filter(([s]) => s === "eu").map(([, t]) => t),
            ["switching (wave production)", "failed: gate failed for eu", "rolled back"],
        );
        assert.ok(lines.some(([s, t]) => s === undefined && t === "rolling back staging, eu (eu failed)"));
    });
});
