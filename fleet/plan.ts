// The wave plan and the failure policy of a fleet switch, apart from the code that runs stacks: which
// stack is switched when, how many at once, what is watched during the bake, and what a failure or a
// Ctrl-C leaves. The stacks are reached through a StackRunner (the Automation API in runner.ts, a fake
// in the unit tests), so every rule here is tested without an engine.
import { pause } from "../lib/pause";
import type { Fleet } from "./file";
import { eachLimited } from "./pool";

/** What the plan asks of each stack. Each call rejects with an Error whose message is one line. */
export interface StackRunner {
    /** The switch of one stack: its config change and its `pulumi up`, with its own gate. */
    switchStack(stack: string, signal: AbortSignal): Promise<void>;
    /** One bake check of a switched stack: it still serves the target. */
    check(stack: string, signal: AbortSignal): Promise<void>;
    /** Back to what the stack ran before the switch (its recorded config, one ungated `pulumi up`). */
    rollback(stack: string): Promise<void>;
}

/** Where the plan reports what it does (the live table, or plain lines). */
export interface PlanProgress {
    /** What a stack is doing now. */
    step(stack: string, step: string): void;
    /** A line about the fleet (no stack) or about one stack. */
    line(stack: string | undefined, text: string): void;
}

export interface Clock {
    now(): number;
    /** Resolves after `ms`, or at once when `signal` fires. */
    sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/**
 * The reason the fleet gives when it stops its own operations in flight after a failure (a rollout
 * step's failed analysis), as opposed to Ctrl-C: no `pulumi` has had a signal from the terminal, so
 * the runner cancels them at once (cancel.ts, forwardCancel) and the rollback does not wait for them.
 */
export class StoppedAfterFailure extends Error {
    constructor() {
        super("stopped: another operation of the fleet failed");
    }
}

export const realClock: Clock = {
    now: () => Date.now(),
    sleep: pause,
};

/**
 * Where each stack ends. untouched: never started (a later wave, or after a failure). switched: on the
 * target. failed: its switch failed (its gate kept the route). cancelled: Ctrl-C reached it in flight
 * (old or new version: the runner reads which). rolled-back / rollback-failed: after the rollback.
 */
export type StackEnd = "untouched" | "switched" | "failed" | "cancelled" | "rolled-back" | "rollback-failed";

export type Outcome = "switched" | "rolled-back" | "rollback-failed" | "halted" | "interrupted";

/** Exit codes of `npm run fleet`: the outcome of a switch (or of a rollback), or a refusal; docs/fleet.md has them by these names. */
export const EXIT_CODES = {
    /** Every stack switched and baked (a rollback: every stack back). */
    switched: 0,
    /** A failure; every stack the switch had touched went back to what it ran before. */
    "rolled-back": 1,
    /** A failure, and the rollback of at least one stack failed too. */
    "rollback-failed": 2,
    /** A failure with onFailure halt: nothing changed after it. */
    halted: 3,
    /** Refused before any stack was touched (a bad fleet file, argument or stack). */
    refused: 4,
    /** A preview (`preview`, `preview --rollout`) of at least one stack failed; nothing was changed. */
    "preview-failed": 5,
    /** The fleet tool itself failed (a bug, or the engine died): the record and `status` say where each stack is. */
    crashed: 70,
    /** Ctrl-C (or SIGTERM): nothing more started; each stack left on its old or new version. */
    interrupted: 130,
} as const satisfies Record<Outcome | "refused" | "preview-failed" | "crashed", number>;

export interface Failure {
    readonly stack: string;
    /** Where it failed: its own switch (`pulumi up`, the gate) or a check during the bake. */
    readonly during: "switch" | "bake";
    readonly message: string;
}

export interface SwitchResult {
    readonly outcome: Outcome;
    readonly stacks: ReadonlyMap<string, StackEnd>;
    readonly failure?: Failure;
}

export interface PlanOptions {
    readonly signal: AbortSignal;
    readonly progress: PlanProgress;
    readonly clock?: Clock;
    /** Pause between two rounds of bake checks. */
    readonly checkIntervalMs?: number;
}

export const CHECK_INTERVAL_MS = 10_000;

/**
 * Switches the fleet wave by wave. Inside a wave up to `parallel` stacks switch at once; once a wave
 * has switched, every stack switched so far is checked, again every `checkIntervalMs`, until `bake`
 * seconds have passed (at least once, also with bake 0, and after the last wave too: a switch is done
 * once the last wave has baked). On the first failure no stack starts any more (those in flight
 * finish), and no later wave is touched; then `rollback` returns every stack the switch touched to
 * what it ran before, all at once, and `halt` changes nothing more. When `signal` fires (Ctrl-C),
 * nothing more starts and the runner's operations in flight are cancelled through the same signal.
 */
export async function runSwitch(fleet: Fleet, runner: StackRunner, options: PlanOptions): Promise<SwitchResult> {
    const { signal, progress } = options;
    const clock = options.clock ?? realClock;
    const interval = options.checkIntervalMs ?? CHECK_INTERVAL_MS;
    const ends = new Map<string, StackEnd>(fleet.waves.flatMap((w) => w.stacks.map((s): [string, StackEnd] => [s, "untouched"])));
    const switched: string[] = [];
    let failure: Failure | undefined;

    const switchOne = async (stack: string, wave: string) => {
        const switchedNow = await switchStackRecorded(
            stack,
            { wave, signal, progress, ends },
            () => runner.switchStack(stack, signal),
            (message) => {
                failure ??= { stack, during: "switch", message };
            },
        );
        if (switchedNow) switched.push(stack);
    };

    const bake = async (): Promise<void> => {
        const start = clock.now();
        progress.line(undefined, `bake: checking ${switched.join(", ")} for ${fleet.bake} s`);
        for (;;) {
            const round = [...switched];
            for (const stack of round) progress.step(stack, "baking: checking");
            const results = await Promise.allSettled(round.map((stack) => runner.check(stack, signal)));
            if (signal.aborted) return;
            results.forEach((result, i) => {
                const stack = round[i];
                if (result.status === "rejected") {
                    const message = (result.reason as Error).message;
                    failure ??= { stack, during: "bake", message };
                    progress.step(stack, "bake check failed");
                    progress.line(stack, `bake check failed: ${message}`);
                } else {
                    progress.step(stack, "baking: serves the target");
                }
            });
            if (failure !== undefined) return;
            const elapsed = clock.now() - start;
            if (elapsed >= fleet.bake * 1000) return;
            await clock.sleep(Math.min(interval, fleet.bake * 1000 - elapsed), signal);
            if (signal.aborted) return;
        }
    };

    for (const wave of fleet.waves) {
        if (signal.aborted || failure !== undefined) break;
        progress.line(undefined, `wave ${wave.name}: ${wave.stacks.join(", ")} (${wave.parallel} at a time)`);
        await eachLimited(wave.stacks, wave.parallel, (stack) => switchOne(stack, wave.name), { stop: () => signal.aborted || failure !== undefined });
        if (signal.aborted || failure !== undefined) break;
        await bake();
    }

    if (failure !== undefined && fleet.onFailure === "rollback") {
        // Every stack the switch touched: the switched ones, and those whose own switch failed (their
        // config says the target, and an update may have scaled the new version up for its gate).
        const touched = [...ends].filter(([, end]) => end === "switched" || end === "failed").map(([stack]) => stack);
        progress.line(undefined, `rolling back ${touched.join(", ")} (${failure.stack} failed)`);
        await rollbackAll(touched, runner, progress, ends);
        const outcome = [...ends.values()].includes("rollback-failed") ? "rollback-failed" : "rolled-back";
        return { outcome, stacks: ends, failure };
    }
    if (failure !== undefined) return { outcome: "halted", stacks: ends, failure };
    if (signal.aborted) return { outcome: "interrupted", stacks: ends };
    return { outcome: "switched", stacks: ends };
}

/**
 * `npm run fleet -- rollback`: every stack of a recorded switch that `needs` it goes back at once;
 * the others are left alone. Rejections are collected, never thrown.
 */
export async function runRollback(
    stacks: readonly string[],
    needs: (stack: string) => boolean,
    runner: Pick<StackRunner, "rollback">,
    progress: PlanProgress,
): Promise<{ failed: boolean; stacks: ReadonlyMap<string, StackEnd> }> {
    const ends = new Map<string, StackEnd>(stacks.map((s): [string, StackEnd] => [s, "untouched"]));
    await rollbackAll(stacks.filter(needs), runner, progress, ends);
    for (const stack of stacks.filter((s) => !needs(s))) progress.line(stack, "runs what it ran before the switch, with the same config: nothing to roll back");
    return { failed: [...ends.values()].includes("rollback-failed"), stacks: ends };
}

/**
 * One stack's switch (a fleet switch's, or a rollout step's: `label` "10%" prefixes its lines) with
 * how it ended recorded in `ends`: switched (true), cancelled (Ctrl-C reached it in flight: old or new
 * version, the runner reads which) or failed (`onFailure` hears the message before it is printed).
 */
export async function switchStackRecorded(
    stack: string,
    at: { wave: string; label?: string; signal: AbortSignal; progress: PlanProgress; ends: Map<string, StackEnd> },
    run: () => Promise<void>,
    onFailure: (message: string) => void,
): Promise<boolean> {
    const { progress, ends } = at;
    const [step, line] = at.label === undefined ? ["", ""] : [`${at.label}: `, `step ${at.label}: `];
    progress.step(stack, `${step}switching`);
    progress.line(stack, `${line}switching (wave ${at.wave})`);
    try {
        await run();
    } catch (err) {
        const message = (err as Error).message;
        if (at.signal.aborted) {
            ends.set(stack, "cancelled");
            progress.step(stack, "cancelled");
            progress.line(stack, `cancelled: ${message}`);
            return false;
        }
        ends.set(stack, "failed");
        onFailure(message);
        progress.step(stack, "failed");
        progress.line(stack, `${line}failed: ${message}`);
        return false;
    }
    ends.set(stack, "switched");
    progress.step(stack, `${step}switched`);
    progress.line(stack, `${line}switched`);
    return true;
}

/** Rolls every stack back at once (like a single-stack rollback, ungated); records each end in `ends`. */
export async function rollbackAll(
    stacks: readonly string[],
    runner: Pick<StackRunner, "rollback">,
    progress: PlanProgress,
    ends: Map<string, StackEnd>,
): Promise<void> {
    await Promise.all(
        stacks.map(async (stack) => {
            progress.step(stack, "rolling back");
            try {
                await runner.rollback(stack);
                ends.set(stack, "rolled-back");
                progress.step(stack, "rolled back");
                progress.line(stack, "rolled back");
            } catch (err) {
                ends.set(stack, "rollback-failed");
                progress.step(stack, "rollback failed");
                progress.line(stack, `rollback failed: ${(err as Error).message}`);
            }
        }),
    );
}
