// The rollout's plan with a fake runner: the steps in order wave by wave, the analysis of every stack
// moved so far after each wave, the bake after the last step, a failed or inconclusive analysis
// (never a pass) swung back on every touched stack, halt, Ctrl-C mid-analysis, the least time, and
// the record of every measurement; then the real judge behind the fake stacks (a 5xx release, an
// unreachable Prometheus).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { parseAnalysis } from "../../lib/analysis/checks";
import { analyse, type AnalysisResult, type Verdict } from "../../lib/analysis/judge";
import type { Fleet } from "../../fleet/file";
import { EXIT_CODES, type PlanProgress } from "../../fleet/plan";
import { newRecord, readRecord, withAnalysis, writeRecord } from "../../fleet/record";
import { DEFAULT_STEPS, leastSeconds, parseSteps, runRollout, stepTarget, stepsAllowed, type RolloutRunner } from "../../fleet/rollout";
import { stepChecks, type StackRollout } from "../../fleet/rollout-runner";
import { VirtualClock, yieldMicrotasks } from "./fakes";

/** Seconds each fake analysis takes (interval 2 s, count 2). */
const ANALYSIS_SECONDS = 4;
/** Seconds a slow check takes to end once its signal has fired. */
const SLOW_CHECK_SECONDS = 30;

/** A rollout runner that logs every call in order and answers as a test says. */
class FakeStacks implements RolloutRunner {
    readonly log: string[] = [];
    /** `${stack}@${step}` -> the verdict of its analysis (default: passed). */
    readonly verdicts = new Map<string, Verdict>();
    readonly failStep = new Set<string>();
    readonly failCheck = new Set<string>();
    /** Analyses that end only when their signal fires; they record that it did. */
    readonly hang = new Set<string>();
    readonly signalled: string[] = [];
    /** Which checks end only SLOW_CHECK_SECONDS after their signal fires (a `pulumi` winding down). */
    slowCheck: (stack: string, step: number) => boolean = () => false;
    /** When each slow check ended, and when each rollback started (virtual ms). */
    readonly checkEndedAt = new Map<string, number>();
    readonly rollbackAt = new Map<string, number>();
    onAnalyse: (stack: string, step: number) => void = () => undefined;
    /** The analysis itself, when a test wants the real judge. */
    judge?: (stack: string, step: number, signal: AbortSignal) => Promise<AnalysisResult>;

    constructor(private readonly clock: VirtualClock) {}

    async stepStack(stack: string, step: number): Promise<void> {
        this.log.push(`step ${stack} ${step}`);
        await yieldMicrotasks();
        if (this.failStep.has(`${stack}@${step}`)) throw new Error(`gate failed for ${stack}`);
    }

    async check(stack: string, step: number, signal: AbortSignal): Promise<void> {
        this.log.push(`check ${stack} ${step}`);
        await yieldMicrotasks();
        const key = `${stack}@${step}`;
        if (this.slowCheck(stack, step)) {
            await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
            // Its own time to end, which no signal shortens.
            await this.clock.sleep(SLOW_CHECK_SECONDS * 1000, new AbortController().signal);
            this.checkEndedAt.set(key, this.clock.now());
        }
        if (this.failCheck.has(`${stack}@${step}`)) throw new Error(`${stack} serves the wrong page`);
    }

    async analyse(stack: string, step: number, signal: AbortSignal): Promise<AnalysisResult> {
        this.log.push(`analyse ${stack} ${step}`);
        this.onAnalyse(stack, step);
        const key = `${stack}@${step}`;
        if (this.judge !== undefined) return this.judge(stack, step, signal);
        if (this.hang.has(key)) {
            await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
            this.signalled.push(key);
            return { verdict: "inconclusive", measurements: [], summary: `analysis of v2 on ${stack} at ${step}% stopped: cancelled` };
        }
        await this.clock.sleep(ANALYSIS_SECONDS * 1000, signal);
        if (signal.aborted) {
            this.signalled.push(key);
            return { verdict: "inconclusive", measurements: [], summary: `analysis of v2 on ${stack} at ${step}% stopped: cancelled` };
        }
        const verdict = this.verdicts.get(key) ?? "passed";
        const measurement = {
            check: "success-rate",
            index: 1,
            count: 1,
            at: new Date(this.clock.now()).toISOString(),
            query: `rate{workload="${stack}-v2"}`,
            value: verdict === "passed" ? 100 : 80,
            requests: 40,
            bound: "min 99",
            verdict,
            reason: verdict === "passed" ? "100 within min 99" : "80 is below min 99",
        };
        return { verdict, measurements: [measurement], summary: `analysis of v2 on ${stack} at ${step}% ${verdict}` };
    }

    rollback(stack: string): Promise<void> {
        this.log.push(`rollback ${stack}`);
        this.rollbackAt.set(stack, this.clock.now());
        return Promise.resolve();
    }

    /** The log without checks and analyses: the steps and rollbacks, in order. */
    moves(): string[] {
        return this.log.filter((l) => l.startsWith("step ") || l.startsWith("rollback "));
    }
}

const quiet: PlanProgress = { step: () => undefined, line: () => undefined };
const FLEET = (onFailure: Fleet["onFailure"] = "rollback", bake = 0): Fleet => ({
    waves: [
        { name: "canary", stacks: ["staging"], parallel: 1 },
        { name: "production", stacks: ["eu", "us"], parallel: 2 },
    ],
    bake,
    onFailure,
});
const ONE: Fleet = { waves: [{ name: "alone", stacks: ["eu"], parallel: 1 }], bake: 0, onFailure: "rollback" };

function run(
    fleet: Fleet,
    stacks: FakeStacks,
    clock: VirtualClock,
    options: { controller?: AbortController; steps?: readonly number[]; progress?: PlanProgress } = {},
) {
    const entries: string[] = [];
    const result = runRollout(fleet, options.steps ?? DEFAULT_STEPS, stacks, {
        signal: (options.controller ?? new AbortController()).signal,
        progress: options.progress ?? quiet,
        clock,
        checkIntervalMs: 10_000,
        onAnalysis: (entry) => entries.push(`${entry.stack} ${entry.phase} ${entry.step} ${entry.verdict}`),
    });
    return { result, entries };
}

/** Every stack moved so far, checked and analysed at the step it is at. */
const judged = (...at: [string, number][]) => at.flatMap(([stack, step]) => [`check ${stack} ${step}`, `analyse ${stack} ${step}`]);

describe("a rollout: the steps", () => {
    it("walks 10, 50, 100 wave by wave; after each wave every stack moved so far is checked and analysed at its step; ends on the target (exit 0)", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        const { result, entries } = run(FLEET(), stacks, clock);
        const { outcome, reached, analyses } = await result;
        assert.equal(outcome, "switched");
        assert.equal(EXIT_CODES[outcome], 0);
        assert.deepEqual(stacks.log, [
            "step staging 10",
            ...judged(["staging", 10]),
            "step eu 10",
            "step us 10",
            ...judged(["staging", 10], ["eu", 10], ["us", 10]),
            "step staging 50",
            ...judged(["staging", 50], ["eu", 10], ["us", 10]),
            "step eu 50",
            "step us 50",
            ...judged(["staging", 50], ["eu", 50], ["us", 50]),
            "step staging 100",
            ...judged(["staging", 100], ["eu", 50], ["us", 50]),
            "step eu 100",
            "step us 100",
            ...judged(["staging", 100], ["eu", 100], ["us", 100]),
        ]);
        assert.deepEqual(Object.fromEntries(reached), { staging: 100, eu: 100, us: 100 });
        assert.equal(analyses.length, 16);
        assert.equal(entries.length, 16, "each analysis reached the record as it ended");
        assert.equal(entries[0], "staging step 10 passed");
        // Every analysis of a wave runs at once: six rounds of 4 s, not sixteen analyses one after another.
        assert.equal(clock.t, 6 * ANALYSIS_SECONDS * 1000);
        assert.equal(
            leastSeconds(FLEET(), DEFAULT_STEPS, () => ANALYSIS_SECONDS),
            6 * ANALYSIS_SECONDS,
        );
    });

    it("one stack (--stack): each step, then its check and analysis", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        const { outcome } = await run(ONE, stacks, clock, { steps: [25, 100] }).result;
        assert.equal(outcome, "switched");
        assert.deepEqual(stacks.log, ["step eu 25", ...judged(["eu", 25]), "step eu 100", ...judged(["eu", 100])]);
    });

    it("the bake after the last step: checks every interval for `bake` seconds and analyses again and again until it is over", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        const fleet = { ...ONE, bake: 25 };
        const { result, entries } = run(fleet, stacks, clock, { steps: [100] });
        assert.equal((await result).outcome, "switched");
        const bake = stacks.log.slice(judged(["eu", 100]).length + 1);
        assert.equal(bake.filter((l) => l === "check eu 100").length, 4, "at 0, 10, 20 and 25 s");
        // Rounds of 4 s from 0 until one ends at or after 25 s: 7, the last one ending at 28 s.
        assert.equal(entries.filter((e) => e.startsWith("eu bake 100")).length, 7);
        assert.equal(clock.t, (ANALYSIS_SECONDS + 28) * 1000);
        assert.equal(
            leastSeconds(fleet, [100], () => ANALYSIS_SECONDS),
            ANALYSIS_SECONDS + 28,
        );
    });
});

describe("a rollout: a failure swings back", () => {
    for (const verdict of ["failed", "inconclusive"] as const) {
        it(`an analysis ${verdict} at the first step rolls back every touched stack; no later step starts (exit 1)`, async () => {
            const clock = new VirtualClock();
            const stacks = new FakeStacks(clock);
            stacks.verdicts.set("eu@10", verdict);
            const lines: string[] = [];
            const { result, entries } = run(FLEET(), stacks, clock, {
                progress: { step: () => undefined, line: (stack, text) => lines.push(`${stack ?? "fleet"}: ${text}`) },
            });
            const { outcome, stacks: ends, failure } = await result;
            assert.equal(outcome, "rolled-back");
            assert.equal(EXIT_CODES[outcome], 1);
            assert.deepEqual(failure, { stack: "eu", step: 10, phase: "step", during: "analysis", message: `analysis of v2 on eu at 10% ${verdict}` });
            assert.deepEqual(stacks.moves().slice(0, 3), ["step staging 10", "step eu 10", "step us 10"]);
            assert.deepEqual(stacks.moves().slice(3).sort(), ["rollback eu", "rollback staging", "rollback us"], "no step 50; every touched stack back");
            assert.deepEqual(Object.fromEntries(ends), { staging: "rolled-back", eu: "rolled-back", us: "rolled-back" });
            assert.ok(entries.includes(`eu step 10 ${verdict}`));
            assert.ok(lines.includes("fleet: rolling back staging, eu, us (eu failed at 10%)"), lines.join("\n"));
            assert.ok(!lines.some((l) => l.startsWith("fleet: step 2 of 3")), "no later step is announced");
        });
    }

    it("the first failure stops the other analyses in flight: the swing back starts at once", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        stacks.hang.add("us@10");
        stacks.verdicts.set("eu@10", "failed");
        const { outcome } = await run(FLEET(), stacks, clock).result;
        assert.equal(outcome, "rolled-back");
        assert.deepEqual(stacks.signalled, ["us@10"], "us's analysis took the stop");
        assert.equal(clock.t, 2 * ANALYSIS_SECONDS * 1000, "the rollback did not wait for us's analysis");
    });

    it("a check that ends only long after its signal does not delay the swing back; the rollout still waits for it before it returns", async () => {
        // Given a stack whose check (a refresh preview through the engine) takes 30 s to end once
        // stopped, beside an analysis that fails after 4 s
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        stacks.slowCheck = (stack, step) => stack === "eu" && step === 10;
        stacks.verdicts.set("eu@10", "failed");
        // When the rollout runs
        const { outcome, stacks: ends } = await run(ONE, stacks, clock).result;
        // Then the rollback starts at the verdict, and the check ends before runRollout returns
        assert.equal(outcome, "rolled-back");
        assert.deepEqual(Object.fromEntries(ends), { eu: "rolled-back" });
        assert.equal(stacks.rollbackAt.get("eu"), ANALYSIS_SECONDS * 1000, "the rollback started at the failed verdict, not once the check had ended");
        assert.equal(stacks.checkEndedAt.get("eu@10"), (ANALYSIS_SECONDS + SLOW_CHECK_SECONDS) * 1000, "the stopped check ran to its end before the result");
    });

    it("the same in the bake: a slow check of a stack is not waited for when its analysis fails", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        const fleet: Fleet = { ...ONE, bake: 60 };
        // The step's own check and analysis at 100% pass; the bake's first check is slow to stop,
        // and its first analysis (the second at 100%) fails.
        let checksAt100 = 0;
        stacks.slowCheck = (_stack, step) => step === 100 && ++checksAt100 === 2;
        let analysesAt100 = 0;
        stacks.onAnalyse = (_stack, step) => {
            if (step === 100 && ++analysesAt100 === 2) stacks.verdicts.set("eu@100", "failed");
        };
        const { outcome } = await run(fleet, stacks, clock, { steps: [10, 100] }).result;
        assert.equal(outcome, "rolled-back");
        const failedAt = 3 * ANALYSIS_SECONDS * 1000;
        assert.equal(stacks.rollbackAt.get("eu"), failedAt, "the rollback started at the bake's failed verdict");
        assert.equal(stacks.checkEndedAt.get("eu@100"), failedAt + SLOW_CHECK_SECONDS * 1000);
    });

    it("a step's own switch failing (its gate) rolls back the stacks moved and the failed one; those in flight finish", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        stacks.failStep.add("eu@50");
        const { outcome, stacks: ends, failure, reached } = await run(FLEET(), stacks, clock).result;
        assert.equal(outcome, "rolled-back");
        assert.deepEqual(failure, { stack: "eu", step: 50, phase: "step", during: "switch", message: "gate failed for eu" });
        assert.ok(stacks.log.includes("step us 50"), "us, started with eu, finished");
        assert.ok(!stacks.log.includes("analyse us 50"), "no analysis after the failure");
        assert.deepEqual(Object.fromEntries(reached), { staging: 50, eu: 10, us: 50 });
        assert.deepEqual(Object.fromEntries(ends), { staging: "rolled-back", eu: "rolled-back", us: "rolled-back" });
    });

    it("a check failing at a step (outputs, route, gateway) fails the rollout as an analysis does", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        stacks.failCheck.add("staging@10");
        const { outcome, failure } = await run(FLEET(), stacks, clock).result;
        assert.equal(outcome, "rolled-back");
        assert.deepEqual(failure, { stack: "staging", step: 10, phase: "step", during: "check", message: "staging serves the wrong page" });
        assert.deepEqual(stacks.moves(), ["step staging 10", "rollback staging"]);
    });

    it("an analysis failing in the bake rolls back every stack (phase bake)", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        let bakeRounds = 0;
        stacks.onAnalyse = (stack, step) => {
            if (stack === "us" && step === 100 && stacks.log.filter((l) => l === "analyse us 100").length === 3) stacks.verdicts.set("us@100", "failed");
            bakeRounds += 1;
        };
        const { outcome, failure } = await run(FLEET("rollback", 60), stacks, clock).result;
        assert.equal(outcome, "rolled-back");
        assert.equal(failure?.phase, "bake");
        assert.equal(failure?.stack, "us");
        assert.ok(bakeRounds > 16);
        assert.deepEqual(stacks.moves().slice(-3).sort(), ["rollback eu", "rollback staging", "rollback us"]);
    });

    it("halt: nothing is rolled back and nothing more starts (exit 3)", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        stacks.verdicts.set("staging@10", "failed");
        const { outcome, stacks: ends } = await run(FLEET("halt"), stacks, clock).result;
        assert.equal(outcome, "halted");
        assert.equal(EXIT_CODES[outcome], 3);
        assert.deepEqual(stacks.log, ["step staging 10", ...judged(["staging", 10])]);
        assert.deepEqual(Object.fromEntries(ends), { staging: "switched", eu: "untouched", us: "untouched" });
    });
});

describe("a rollout: Ctrl-C", () => {
    it("mid-analysis: the analysis takes the signal and stops; nothing more starts, nothing is rolled back (exit 130)", async () => {
        const clock = new VirtualClock();
        const stacks = new FakeStacks(clock);
        const controller = new AbortController();
        stacks.hang.add("eu@10");
        stacks.hang.add("us@10");
        stacks.onAnalyse = (stack, step) => {
            if (stack === "us" && step === 10) setImmediate(() => controller.abort());
        };
        const { result, entries } = run(FLEET(), stacks, clock, { controller });
        const { outcome, stacks: ends, failure, reached } = await result;
        assert.equal(outcome, "interrupted");
        assert.equal(EXIT_CODES[outcome], 130);
        assert.equal(failure, undefined, "a stopped analysis is no failure");
        assert.deepEqual(stacks.signalled.sort(), ["eu@10", "us@10"]);
        assert.ok(!stacks.log.some((l) => l.startsWith("rollback") || l === "step staging 50"));
        assert.deepEqual(Object.fromEntries(ends), { staging: "switched", eu: "switched", us: "switched" });
        assert.deepEqual(Object.fromEntries(reached), { staging: 10, eu: 10, us: 10 });
        assert.ok(entries.includes("eu step 10 inconclusive"), "the stopped analysis is recorded as it ended");
    });
});

describe("a rollout's steps and targets", () => {
    it("a step below 100 is a split that keeps the old version active; 100 is the plain switch", () => {
        assert.deepEqual(stepTarget(10, "v1", "v2"), { kind: "split", weights: { v1: 90, v2: 10 } });
        assert.deepEqual(stepTarget(100, "v1", "v2"), { kind: "version", version: "v2" });
    });

    it("steps are increasing integers from 1 to 100 that end at 100", () => {
        assert.deepEqual(parseSteps("10,50,100"), [10, 50, 100]);
        assert.deepEqual(parseSteps("100"), [100]);
        for (const bad of ["50,10,100", "10,50", "0,100", "10,10,100", "10, 50,100", "10,50,101", "", "ten"]) assert.equal(parseSteps(bad), undefined, bad);
        assert.equal(stepsAllowed([1, 2, 100]), true);
        assert.equal(stepsAllowed([]), false);
    });

    it("the least time: after each wave of each step the slowest analysis of the stacks moved so far, then the bake", () => {
        const minimum = (stack: string) => (stack === "staging" ? 10 : 30);
        // Step 10: the canary's wave 10 (staging alone), the production wave's 30; at 50 and 100 the
        // canary's wave analyses eu and us again (still at the step before): 30 + 30 each.
        assert.equal(leastSeconds(FLEET("rollback", 0), DEFAULT_STEPS, minimum), 40 + 60 + 60);
        // A bake of 60 s: two analyses of 30 s.
        assert.equal(leastSeconds(FLEET("rollback", 60), DEFAULT_STEPS, minimum), 160 + 60);
        assert.equal(leastSeconds(FLEET("rollback", 50), DEFAULT_STEPS, minimum), 160 + 60, "the bake ends with its last analysis");
    });
});

describe("a rollout behind the real judge", () => {
    const ROLLOUT: StackRollout = {
        from: "v1",
        to: "v2",
        namespace: "cowsay",
        analysis: {
            provider: { url: "http://prometheus.test:9090", token: undefined },
            ...parseAnalysis({ checks: [{ name: "success-rate", metric: "success-rate", min: 99, interval: "2s", count: 2 }] }),
        },
    };
    /** The fake stacks, analysed by `analyse` itself on virtual time, with Prometheus answering `answer`. */
    const judgedBy = (clock: VirtualClock, answer: (promql: string) => Promise<number | undefined>) => {
        const stacks = new FakeStacks(clock);
        stacks.judge = (stack, step, signal) =>
            analyse(ROLLOUT.analysis.provider, stepChecks(ROLLOUT, step), `v2 on ${stack} at ${step}%`, {
                report: () => undefined,
                signal,
                now: () => clock.now(),
                sleep: (ms, s) => clock.sleep(ms, s ?? signal),
                query: answer,
            });
        return stacks;
    };

    it("a v2 answering 20% 5xx fails its first step; the failure names the check, the query as sent, the value and the bound; the record holds every measurement", async () => {
        const clock = new VirtualClock();
        const stacks = judgedBy(clock, (promql) =>
            Promise.resolve(promql.startsWith("sum(increase") ? 50 : promql.includes('destination_workload="cowsay-nginx-v2"') ? 80 : 100),
        );
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-rollout-"));
        let record = newRecord({ kind: "version", version: "v2" }, { eu: { wave: "alone", config: { activeVersion: "v1" }, ran: { v1: 100 } } }, new Date(), {
            steps: [10, 50, 100],
            bake: 0,
        });
        const result = await runRollout(ONE, DEFAULT_STEPS, stacks, {
            signal: new AbortController().signal,
            progress: quiet,
            clock,
            onAnalysis: (entry) => {
                record = withAnalysis(record, entry);
                writeRecord(dir, record);
            },
        });
        assert.equal(result.outcome, "rolled-back");
        assert.deepEqual(stacks.moves(), ["step eu 10", "rollback eu"]);
        const message = result.failure?.message ?? "";
        assert.match(
            message,
            /^analysis of v2 on eu at 10% failed: check success-rate measurement 1\/2: 80 is below min 99 \(bound: min 99\); query at http:\/\/prometheus\.test:9090: /,
        );
        assert.ok(message.includes('destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"'), message);
        const kept = readRecord(dir)?.rollout;
        assert.deepEqual(kept?.steps, [10, 50, 100]);
        assert.equal(kept?.analyses.length, 1);
        const [measurement] = kept?.analyses[0].measurements ?? [];
        assert.equal(measurement.value, 80);
        assert.equal(measurement.verdict, "failed");
        assert.equal(measurement.reason, "80 is below min 99");
        assert.match(
            measurement.query,
            /^sum\(rate\(istio_requests_total\{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5\.\."\}\[2s\]\)\)/,
        );
        assert.ok(!Number.isNaN(Date.parse(measurement.at)));
    });

    it("an unreachable Prometheus never passes: inconclusive, and the rollout swings back", async () => {
        const clock = new VirtualClock();
        const stacks = judgedBy(clock, () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:9")));
        const result = await runRollout(ONE, DEFAULT_STEPS, stacks, { signal: new AbortController().signal, progress: quiet, clock });
        assert.equal(result.outcome, "rolled-back");
        assert.equal(result.analyses[0].verdict, "inconclusive");
        assert.match(
            result.failure?.message ?? "",
            /was inconclusive \(not a pass\): check success-rate measurement 1\/2: Prometheus did not answer \(connect ECONNREFUSED 127\.0\.0\.1:9\); unreachable is inconclusive/,
        );
    });

    it("a healthy v2 passes every step and goes live", async () => {
        const clock = new VirtualClock();
        const stacks = judgedBy(clock, (promql) => Promise.resolve(promql.startsWith("sum(increase") ? 50 : 100));
        const result = await runRollout(ONE, DEFAULT_STEPS, stacks, { signal: new AbortController().signal, progress: quiet, clock });
        assert.equal(result.outcome, "switched");
        assert.deepEqual(
            result.analyses.map((a) => [a.step, a.verdict, a.measurements.length]),
            [
                [10, "passed", 2],
                [50, "passed", 2],
                [100, "passed", 2],
            ],
        );
        assert.equal(clock.t, 3 * 4000, "each step's analysis: 2 measurements 2 s apart");
    });
});
