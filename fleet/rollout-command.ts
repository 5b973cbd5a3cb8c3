// `npm run fleet -- rollout <version>` and `preview <version> --rollout`: which stacks (the fleet
// file's, or one named with --stack), the steps and the bake; every refusal before anything changes
// (exit 4); then the plan (rollout.ts) through the runner (rollout-runner.ts), the record of every
// analysis as it ends, and the result on stdout. Returns the exit code.
import { Refused } from "../lib/refusal";
import { fleetStacks, readFleet, type Fleet } from "./file";
import { EXIT_CODES, type Outcome } from "./plan";
import { createProgress } from "./progress";
import { inState, newRecord, readRecord, withAnalysis, writeRecord, type StackBefore } from "./record";
import { PREVIEW_CONCURRENCY, openFleet, printEnds, refuseLocked, refuseRendered, unfinished, views, type Io } from "./commands";
import { mapLimited } from "./pool";
import { previewReport } from "./report";
import { DEFAULT_STEPS, runRollout, stepTarget, type RolloutResult } from "./rollout";
import { analysisReport, describeSteps, rolloutSection, rolloutTitle } from "./rollout-report";
import { RolloutStacks, rolloutRefusal, stackRollout } from "./rollout-runner";
import { previewStack, type StackPreview } from "./preview";
import { AutomationRunner } from "./runner";
import { SWITCH_KEYS, sameWeights } from "./target";

/** The wave of a rollout of one stack named with --stack (no fleet file). */
export const ONE_STACK_WAVE = "alone";

export interface RolloutOptions {
    /** From --steps; else the fleet file's `steps`; else DEFAULT_STEPS. */
    readonly steps?: readonly number[];
    /** --stack: this one stack, without a fleet file (the fleet file is not read). */
    readonly stack?: string;
    /** --bake: seconds after the last step (the fleet file's `bake`; 0 for one stack). */
    readonly bake?: number;
}

/** The stacks a rollout moves, how, and its steps: one named stack, or the fleet file's. */
export function rolloutPlan(dir: string, stackNames: readonly string[], options: RolloutOptions): { fleet: Fleet; steps: readonly number[] } {
    let fleet: Fleet;
    if (options.stack !== undefined) {
        if (!stackNames.includes(options.stack)) {
            throw new Refused(
                `--stack ${options.stack} is not a stack of this project; allowed: ${stackNames.length === 0 ? "none yet (pulumi stack init <name>)" : [...stackNames].sort().join(", ")}`,
            );
        }
        fleet = { waves: [{ name: ONE_STACK_WAVE, stacks: [options.stack], parallel: 1 }], bake: options.bake ?? 0, onFailure: "rollback" };
    } else {
        try {
            fleet = readFleet(dir, stackNames);
        } catch (err) {
            if (err instanceof Refused && / not found in /.test(err.message)) throw new Refused(`${err.message}, or name one stack with --stack NAME`);
            throw err;
        }
        fleet = { ...fleet, bake: options.bake ?? fleet.bake };
    }
    return { fleet, steps: options.steps ?? fleet.steps ?? DEFAULT_STEPS };
}

function outcomeText(outcome: Outcome, version: string): string {
    return {
        switched: `every stack runs ${version}: rolled out`,
        "rolled-back": "a step failed; every stack the rollout touched was rolled back",
        "rollback-failed": "a step failed, and the rollback failed too",
        halted: "a step failed; halted (onFailure halt): nothing changed after it",
        interrupted: "interrupted: nothing started after Ctrl-C; the updates and analyses in flight were stopped",
    }[outcome];
}

export async function rollout(dir: string, version: string, options: RolloutOptions, io: Io): Promise<number> {
    const fleet = await openFleet(dir, io);
    const { fleet: file, steps } = rolloutPlan(dir, fleet.stackNames, options);
    const stacks = fleetStacks(file);
    const blocked = unfinished(readRecord(dir));
    if (blocked !== undefined) throw new Refused(blocked);
    const before = await views(fleet, stacks);
    refuseRendered(before);
    const refused = before.map((v) => rolloutRefusal(v, version, steps)).find((r) => r !== undefined);
    if (refused !== undefined) throw new Refused(refused);
    refuseLocked(before);
    if (io.signal.aborted) return EXIT_CODES.interrupted;

    // What each stack ran, on disk before the first stack is touched; each analysis joins it as it ends.
    const ran = Object.fromEntries(before.map((v): [string, StackBefore] => [v.name, { wave: v.wave, config: v.config, ran: v.live ?? {} }]));
    let record = newRecord({ kind: "version", version }, ran, new Date(), { steps, bake: file.bake });
    writeRecord(dir, record);
    const progress = createProgress(io.err, stacks);
    progress.line(
        undefined,
        `rollout ${record.id}: ${version} in steps ${describeSteps(steps)}, bake ${file.bake} s; what each stack ran before is in .fleet/last-switch.json`,
    );
    const automation = new AutomationRunner(fleet, record, progress, new Map(before.map((v) => [v.name, v])));
    const runner = new RolloutStacks(fleet, automation, new Map(before.map((v) => [v.name, stackRollout(v, version)])), progress);
    let result: RolloutResult;
    try {
        result = await runRollout(file, steps, runner, {
            signal: io.signal,
            progress,
            onAnalysis: (entry) => {
                record = withAnalysis(record, entry);
                writeRecord(dir, record);
            },
        });
    } finally {
        progress.close();
    }

    // A stack whose own step failed or was cancelled and that still runs its previous step gets that
    // step's config back, so that its stack file says what runs.
    const notes = new Map<string, string>();
    for (const [stack, end] of result.stacks) {
        const was = runner.beforeLastStep(stack);
        if ((end !== "failed" && end !== "cancelled") || was === undefined) continue;
        const now = await fleet.view(stack);
        if (sameWeights(now.live, was.live) && SWITCH_KEYS.some((k) => now.config[k] !== was.config[k])) {
            await fleet.applyConfig(stack, was.config);
            notes.set(stack, "it still runs what it ran before its last step; its config says so again");
        }
    }
    writeRecord(dir, inState(record, result.outcome));
    const failure = result.failure;
    if (failure !== undefined) {
        const phase = failure.phase === "bake" ? "in the bake" : `at step ${failure.step}%`;
        io.err.write(`fleet: ${failure.stack} failed ${phase} (${failure.during}): ${failure.message}\n`);
    }
    io.out.write(analysisReport(result.analyses));
    await printEnds(fleet, stacks, result.stacks, notes, io);
    io.err.write(`fleet: ${outcomeText(result.outcome, version)} (exit ${EXIT_CODES[result.outcome]})\n`);
    return EXIT_CODES[result.outcome];
}

/**
 * The rollout's plan: per stack its steps, its checks with their queries resolved and bounds, the
 * least time; and each stack's `pulumi preview --diff` of the first step. Nothing asks Prometheus.
 */
export async function previewRollout(dir: string, version: string, options: RolloutOptions, io: Io): Promise<number> {
    const fleet = await openFleet(dir, io);
    const { fleet: file, steps } = rolloutPlan(dir, fleet.stackNames, options);
    const stacks = fleetStacks(file);
    const read = await views(fleet, stacks);
    const refused = read.map((v) => rolloutRefusal(v, version, steps)).find((r) => r !== undefined);
    if (refused !== undefined) throw new Refused(refused);
    const rollouts = read.map((v) => ({ ...stackRollout(v, version), stack: v.name, wave: v.wave }));
    const firstStep = (stack: string) => {
        const r = rollouts.find((x) => x.stack === stack) as (typeof rollouts)[number];
        return stepTarget(steps[0], r.from, r.to);
    };
    const progress = createProgress(io.err, stacks);
    let plans: (StackPreview & { wave: string })[];
    try {
        plans = await mapLimited(read, PREVIEW_CONCURRENCY, async (view) => ({
            ...(await previewStack(fleet, view, firstStep(view.name), progress, io.signal)),
            wave: view.wave,
        }));
    } finally {
        progress.close();
    }
    if (io.signal.aborted) {
        io.err.write("fleet: preview interrupted; no stack file was written (each preview ran on a copy)\n");
        return EXIT_CODES.interrupted;
    }
    io.out.write(
        previewReport(undefined, plans, undefined, {
            title: rolloutTitle(version, steps, file.bake),
            firstStep,
            section: rolloutSection(file, steps, rollouts),
        }),
    );
    return plans.some((p) => p.error !== undefined) ? EXIT_CODES["preview-failed"] : 0;
}
