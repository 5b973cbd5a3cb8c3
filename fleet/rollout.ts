// The plan of a rollout (`npm run fleet -- rollout v2`), apart from the code that runs stacks: the new
// version's share goes up step by step (10, 50, 100 by default), each step a fleet switch wave by
// wave; after each wave, every stack moved so far is checked (as a switch's bake checks) and its new
// version judged by the metric analysis on its live traffic; after the last step, `bake` seconds of
// both. A failed or inconclusive analysis (never a pass: no data, too little traffic, an unreachable
// Prometheus) is a failure like a failed gate: rollback or halt, as the fleet file says. The stacks
// are reached through a RolloutRunner (fleet/rollout-runner.ts, a fake in the unit tests).
import { setMaxListeners } from "node:events";

import type { AnalysisResult, Measurement, Verdict } from "../lib/analysis/judge";
import type { Fleet } from "./file";
import { eachLimited } from "./pool";
import {
    CHECK_INTERVAL_MS,
    StoppedAfterFailure,
    realClock,
    rollbackAll,
    switchStackRecorded,
    type Clock,
    type Outcome,
    type PlanProgress,
    type StackEnd,
} from "./plan";
import type { Target } from "./target";

export const DEFAULT_STEPS: readonly number[] = [10, 50, 100];
export const STEPS_ALLOWED = "increasing integers from 1 to 100 that end at 100, such as 10,50,100";

/** Whether `steps` are a rollout's steps: increasing integers from 1 to 100, the last one 100. */
export function stepsAllowed(steps: readonly number[]): boolean {
    return (
        steps.length > 0 && steps.every((s, i) => Number.isInteger(s) && s >= 1 && s <= 100 && (i === 0 || s > steps[i - 1])) && steps[steps.length - 1] === 100
    );
}

/** The --steps argument ("10,50,100"); undefined when it is not a list of steps. */
export function parseSteps(text: string): number[] | undefined {
    if (!/^\d+(,\d+)*$/.test(text)) return undefined;
    const steps = text.split(",").map(Number);
    return stepsAllowed(steps) ? steps : undefined;
}

/**
 * The target of one step for a stack that ran `from` alone: below 100 a weighted split (its
 * activeVersion stays `from`, as `switch --split` leaves it); at 100 the plain switch to `to`.
 */
export function stepTarget(step: number, from: string, to: string): Target {
    return step === 100 ? { kind: "version", version: to } : { kind: "split", weights: { [from]: 100 - step, [to]: step } };
}

/** One analysis of one stack, as the report and the record keep it. */
export interface AnalysisEntry {
    readonly stack: string;
    /** The step the stack was at (the new version's share, percent). */
    readonly step: number;
    /** After a wave of a step, or during the bake after the last step. */
    readonly phase: "step" | "bake";
    readonly verdict: Verdict;
    readonly summary: string;
    readonly measurements: readonly Measurement[];
}

/** What the rollout asks of each stack. Each call rejects with an Error whose message is one line. */
export interface RolloutRunner {
    /** One stack to `step`: its config change and its `pulumi up`, with its own gate. */
    stepStack(stack: string, step: number, signal: AbortSignal): Promise<void>;
    /** One check of a stack at `step`: its outputs, its live route and its gateway say that step. */
    check(stack: string, step: number, signal: AbortSignal): Promise<void>;
    /** The analysis of the new version on the stack's live traffic at `step` (a verdict, not a rejection). */
    analyse(stack: string, step: number, signal: AbortSignal): Promise<AnalysisResult>;
    /** Back to what the stack ran before the rollout (its recorded config, one ungated `pulumi up`). */
    rollback(stack: string): Promise<void>;
}

export interface RolloutFailure {
    readonly stack: string;
    readonly step: number;
    readonly phase: "step" | "bake";
    /** Its own `pulumi up` (or gate), a check of what it serves, or the analysis. */
    readonly during: "switch" | "check" | "analysis";
    readonly message: string;
}

export interface RolloutResult {
    readonly outcome: Outcome;
    readonly stacks: ReadonlyMap<string, StackEnd>;
    /** The step each stack moved to last (absent: never moved). */
    readonly reached: ReadonlyMap<string, number>;
    readonly analyses: readonly AnalysisEntry[];
    readonly failure?: RolloutFailure;
}

export interface RolloutOptions {
    readonly signal: AbortSignal;
    readonly progress: PlanProgress;
    readonly clock?: Clock;
    /** Pause between two rounds of checks during the bake. */
    readonly checkIntervalMs?: number;
    /** Called as each analysis ends, in that order (the command writes it into the record). */
    readonly onAnalysis?: (entry: AnalysisEntry) => void;
}

/**
 * Rolls `steps` out across the fleet. For each step, wave by wave (inside a wave up to `parallel` at
 * once), each stack moves to the step; once a wave has moved, every stack moved so far is checked
 * and analysed at the step it is at, all at once. After the last step, when `bake` > 0, every stack
 * is checked every `checkIntervalMs` and analysed again and again until `bake` seconds have passed.
 * The first failure stops every check and analysis in flight (the stacks already updating in the
 * wave finish) and nothing more starts; then rollback or halt, as runSwitch does: the rollback starts
 * at once, without waiting for the stopped checks and analyses to end (they are awaited after it). Ctrl-C (`signal`)
 * stops everything at once, analyses included, and rolls nothing back.
 */
export async function runRollout(fleet: Fleet, steps: readonly number[], runner: RolloutRunner, options: RolloutOptions): Promise<RolloutResult> {
    const { signal, progress } = options;
    const clock = options.clock ?? realClock;
    const interval = options.checkIntervalMs ?? CHECK_INTERVAL_MS;
    const ends = new Map<string, StackEnd>(fleet.waves.flatMap((w) => w.stacks.map((s): [string, StackEnd] => [s, "untouched"])));
    const reached = new Map<string, number>();
    const analyses: AnalysisEntry[] = [];
    let failure: RolloutFailure | undefined;
    // Ends the checks and analyses in flight at the first failure (the rollback should start at
    // once), and at Ctrl-C.
    const stop = new AbortController();
    // Every check and analysis in flight listens on it (each Prometheus query, each engine run): about
    // ten per stack, which is no leak.
    setMaxListeners(10 * Math.max(1, ends.size), stop.signal);
    const onAbort = () => stop.abort(signal.reason);
    if (signal.aborted) stop.abort(signal.reason);
    else signal.addEventListener("abort", onAbort, { once: true });
    const fail = (f: RolloutFailure) => {
        failure ??= f;
        stop.abort(new StoppedAfterFailure());
    };
    const ended = () => signal.aborted || failure !== undefined;
    // Checks and analyses still running when `stop` fires: the rollback does not wait for them (a
    // `pulumi` in flight takes its time to wind down after its signal, and a runner may not stop at
    // all), but runRollout awaits them before it returns, so that none outlives it.
    const abandoned: Promise<void>[] = [];
    const untilStopped = (work: Promise<void>): Promise<void> => {
        // Assigned at once: a Promise executor runs synchronously.
        let onStop: () => void = () => undefined;
        const stopped = new Promise<void>((resolve) => {
            onStop = () => {
                abandoned.push(work);
                resolve();
            };
        });
        if (stop.signal.aborted) onStop();
        else stop.signal.addEventListener("abort", onStop, { once: true });
        const settle = () => stop.signal.removeEventListener("abort", onStop);
        work.then(settle, settle);
        return Promise.race([work, stopped]);
    };

    const stepOne = async (stack: string, step: number, wave: string) => {
        const at = { wave, label: `${step}%`, signal, progress, ends };
        const run = async () => {
            await runner.stepStack(stack, step, signal);
            reached.set(stack, step);
        };
        await switchStackRecorded(stack, at, run, (message) => fail({ stack, step, phase: "step", during: "switch", message }));
    };

    const checkOne = async (stack: string, phase: AnalysisEntry["phase"]) => {
        const step = reached.get(stack) as number;
        try {
            await runner.check(stack, step, stop.signal);
        } catch (err) {
            // A check cut short by another stack's failure (or Ctrl-C) says nothing about this one.
            if (stop.signal.aborted) return;
            const message = (err as Error).message;
            fail({ stack, step, phase, during: "check", message });
            progress.step(stack, "check failed");
            progress.line(stack, `step ${step}%: check failed: ${message}`);
        }
    };

    const analyseOne = async (stack: string, phase: AnalysisEntry["phase"]) => {
        const step = reached.get(stack) as number;
        progress.step(stack, `${step}%: analysing`);
        let result: AnalysisResult;
        try {
            result = await runner.analyse(stack, step, stop.signal);
        } catch (err) {
            if (stop.signal.aborted) return;
            const message = (err as Error).message;
            fail({ stack, step, phase, during: "analysis", message });
            progress.line(stack, `step ${step}%: analysis failed: ${message}`);
            return;
        }
        const entry: AnalysisEntry = { stack, step, phase, verdict: result.verdict, summary: result.summary, measurements: result.measurements };
        analyses.push(entry);
        options.onAnalysis?.(entry);
        progress.line(stack, result.summary);
        // Stopped by another stack's failure or by Ctrl-C: its verdict is not this stack's.
        if (stop.signal.aborted) return;
        if (result.verdict === "passed") progress.step(stack, `${step}%: analysis passed`);
        else {
            progress.step(stack, `${step}%: analysis ${result.verdict}`);
            fail({ stack, step, phase, during: "analysis", message: result.summary });
        }
    };

    /** Every stack moved so far, at the step it is at: checked and analysed, all at once. */
    const judgeMoved = async () => {
        const moved = [...reached.keys()];
        await Promise.all(moved.flatMap((stack) => [checkOne(stack, "step"), analyseOne(stack, "step")]).map(untilStopped));
    };

    const bake = async () => {
        const moved = [...reached.keys()];
        const start = clock.now();
        const left = () => fleet.bake * 1000 - (clock.now() - start);
        progress.line(undefined, `bake: checking and analysing ${moved.join(", ")} for ${fleet.bake} s`);
        const checking = async () => {
            for (;;) {
                await Promise.all(moved.map((stack) => checkOne(stack, "bake")));
                if (stop.signal.aborted || left() <= 0) return;
                await clock.sleep(Math.min(interval, left()), stop.signal);
                if (stop.signal.aborted) return;
            }
        };
        // Each analysis takes its own time (its checks' count x interval): another starts until the
        // bake time is over, so the bake's last minutes are judged too.
        const analysing = async (stack: string) => {
            do await analyseOne(stack, "bake");
            while (!stop.signal.aborted && left() > 0);
        };
        await Promise.all([checking(), ...moved.map(analysing)].map(untilStopped));
    };

    try {
        steps: for (const [i, step] of steps.entries()) {
            if (ended()) break;
            progress.line(undefined, `step ${i + 1} of ${steps.length}: ${step}% of the traffic to the new version`);
            for (const wave of fleet.waves) {
                if (ended()) break steps;
                progress.line(undefined, `step ${step}%: wave ${wave.name}: ${wave.stacks.join(", ")} (${wave.parallel} at a time)`);
                await eachLimited(wave.stacks, wave.parallel, (stack) => stepOne(stack, step, wave.name), { stop: ended });
                if (ended()) break steps;
                await judgeMoved();
            }
        }
        if (!ended() && fleet.bake > 0) await bake();
    } finally {
        signal.removeEventListener("abort", onAbort);
    }

    if (failure !== undefined && fleet.onFailure === "rollback") {
        // Every stack the rollout touched: those moved, and those whose own step failed.
        const touched = [...ends].filter(([, end]) => end === "switched" || end === "failed").map(([stack]) => stack);
        progress.line(undefined, `rolling back ${touched.join(", ")} (${failure.stack} failed at ${failure.step}%)`);
        await rollbackAll(touched, runner, progress, ends);
        await Promise.all(abandoned);
        const outcome = [...ends.values()].includes("rollback-failed") ? "rollback-failed" : "rolled-back";
        return { outcome, stacks: ends, reached, analyses, failure: failure };
    }
    await Promise.all(abandoned);
    if (failure !== undefined) return { outcome: "halted", stacks: ends, reached, analyses, failure: failure };
    if (signal.aborted) return { outcome: "interrupted", stacks: ends, reached, analyses };
    return { outcome: "switched", stacks: ends, reached, analyses };
}

/**
 * The least time a rollout takes, in seconds, when every analysis passes and every `pulumi up` is
 * instant: after each wave of each step, the slowest analysis of the stacks moved so far; then the
 * bake, which ends with the last analysis it started. `minimum(stack)`: the stack's analysis.
 */
export function leastSeconds(fleet: Fleet, steps: readonly number[], minimum: (stack: string) => number): number {
    let total = 0;
    const moved: string[] = [];
    for (let i = 0; i < steps.length; i++) {
        for (const wave of fleet.waves) {
            moved.push(...wave.stacks.filter((s) => !moved.includes(s)));
            total += Math.max(0, ...moved.map(minimum));
        }
    }
    const bakeOf = (seconds: number) => (seconds > 0 ? Math.ceil(fleet.bake / seconds) * seconds : fleet.bake);
    if (fleet.bake > 0) total += Math.max(fleet.bake, ...moved.map((s) => bakeOf(minimum(s))));
    return total;
}
