// The four verbs of `npm run fleet`: status, preview, switch, rollback. Each reads the fleet file and
// the stacks first and refuses (exit 4, nothing touched) before it changes anything; then it hands
// the stacks to the plan (plan.ts) through the Automation API runner (runner.ts), and prints the
// result on stdout. Returns the exit code.
import { Refused } from "../lib/refusal";
import { fleetStacks, readFleet } from "./file";
import { EXIT_CODES, runRollback, runSwitch, type StackEnd } from "./plan";
import { mapLimited } from "./pool";
import { createProgress } from "./progress";
import { inState, newRecord, readRecord, stillRunning, writeRecord, type StackBefore, type SwitchRecord } from "./record";
import { finalLines, previewReport, statusJson, statusRows, statusText } from "./report";
import { previewStack, type StackPreview } from "./preview";
import { renderRefusal, switchRefusal } from "./refusal";
import { AutomationRunner } from "./runner";
import { FleetWorkspace, type StackView } from "./workspace";
import { SWITCH_KEYS, describeTarget, sameWeights, type Target } from "./target";

export interface Io {
    readonly out: NodeJS.WritableStream;
    readonly err: NodeJS.WriteStream;
    /** Fires on Ctrl-C (or SIGTERM). */
    readonly signal: AbortSignal;
    /** Opens the project's stacks: FleetWorkspace.open, unless a unit test passes a fake. */
    readonly open?: (dir: string) => Promise<FleetWorkspace>;
}

export function openFleet(dir: string, io: Io): Promise<FleetWorkspace> {
    return (io.open ?? FleetWorkspace.open)(dir);
}

/** Previews at once at most; each is a `pulumi preview` with its language host and providers. */
export const PREVIEW_CONCURRENCY = 4;

export async function views(
    fleet: FleetWorkspace,
    stacks: readonly { stack: string; wave: string }[],
    history = false,
): Promise<(StackView & { wave: string })[]> {
    return Promise.all(stacks.map(async ({ stack, wave }) => ({ ...(await fleet.view(stack, { history })), wave })));
}

/** Why a switch or rollout cannot start after the last one recorded here, if it cannot. */
export function unfinished(record: SwitchRecord | undefined): string | undefined {
    if (record === undefined || record.state === "switched" || record.state === "rolled-back") return undefined;
    const verb = record.rollout === undefined ? "switch" : "rollout";
    if (stillRunning(record))
        return `a fleet ${record.state === "rolling-back" ? "rollback" : verb} is running (pid ${record.pid}); wait for it, or stop it with Ctrl-C`;
    const how = record.state === "switching" ? "did not finish (its process was killed)" : `ended ${record.state}`;
    return `the last fleet ${verb} (to ${describeTarget(record.target)}, started ${record.startedAt}) ${how}: run npm run fleet -- rollback first`;
}

/** Refuses a fleet with a stack that renders YAML (renderRefusal): a switch or rollout could only fail its bake. */
export function refuseRendered(views: readonly StackView[]): void {
    const refused = views.map(renderRefusal).find((r) => r !== undefined);
    if (refused !== undefined) throw new Refused(refused);
}

/** Refuses when a stack is locked by an update (a running one, or one a killed process left). */
export function refuseLocked(views: readonly StackView[]): void {
    const locked = views.find((v) => v.locked === true);
    if (locked !== undefined) {
        throw new Refused(
            `stack ${locked.name} is locked by another update; wait for it, or run pulumi cancel --stack ${locked.name} once nothing runs. Nothing was changed.`,
        );
    }
}

export async function status(dir: string, json: boolean, io: Io): Promise<number> {
    const fleet = await openFleet(dir, io);
    const file = readFleet(dir, fleet.stackNames);
    const rows = statusRows(await views(fleet, fleetStacks(file), true));
    const record = readRecord(dir);
    io.out.write(json ? statusJson(rows, record) : statusText(rows, record));
    return 0;
}

export async function preview(dir: string, target: Target | undefined, io: Io): Promise<number> {
    const fleet = await openFleet(dir, io);
    const stacks = fleetStacks(readFleet(dir, fleet.stackNames));
    const read = await views(fleet, stacks);
    if (target !== undefined) {
        const refused = read.map((v) => switchRefusal(v, target)).find((r) => r !== undefined);
        if (refused !== undefined) throw new Refused(refused);
    }
    const progress = createProgress(io.err, stacks);
    let plans: (StackPreview & { wave: string })[];
    try {
        plans = await mapLimited(read, PREVIEW_CONCURRENCY, async (view) => ({
            ...(await previewStack(fleet, view, target, progress, io.signal)),
            wave: view.wave,
        }));
    } finally {
        progress.close();
    }
    if (io.signal.aborted) {
        io.err.write("fleet: preview interrupted; no stack file was written (each preview ran on a copy)\n");
        return EXIT_CODES.interrupted;
    }
    io.out.write(previewReport(target, plans));
    return plans.some((p) => p.error !== undefined) ? EXIT_CODES["preview-failed"] : 0;
}

export async function switchFleet(dir: string, target: Target, io: Io): Promise<number> {
    const fleet = await openFleet(dir, io);
    const file = readFleet(dir, fleet.stackNames);
    const stacks = fleetStacks(file);
    const blocked = unfinished(readRecord(dir));
    if (blocked !== undefined) throw new Refused(blocked);
    const before = await views(fleet, stacks);
    refuseRendered(before);
    const refused = before.map((v) => switchRefusal(v, target)).find((r) => r !== undefined);
    if (refused !== undefined) throw new Refused(refused);
    refuseLocked(before);
    if (io.signal.aborted) return EXIT_CODES.interrupted;

    // The record of what each stack ran, on disk before the first stack is touched.
    const record = newRecord(
        target,
        Object.fromEntries(before.map((v): [string, StackBefore] => [v.name, { wave: v.wave, config: v.config, ran: v.live ?? {} }])),
    );
    writeRecord(dir, record);
    const progress = createProgress(io.err, stacks);
    progress.line(undefined, `switch ${record.id}: to ${describeTarget(target)}; what each stack ran before is in .fleet/last-switch.json`);
    const runner = new AutomationRunner(fleet, record, progress, new Map(before.map((v) => [v.name, v])));
    let result: Awaited<ReturnType<typeof runSwitch>>;
    try {
        result = await runSwitch(file, runner, { signal: io.signal, progress });
    } finally {
        progress.close();
    }

    // A stack whose own switch failed or was cancelled and that still runs what it ran before gets
    // its config back too, so that its stack file says what runs (a later `pulumi up` would
    // otherwise switch it unasked).
    const notes = new Map<string, string>();
    for (const [stack, end] of result.stacks) {
        if (end !== "failed" && end !== "cancelled") continue;
        const now = await fleet.view(stack);
        const was = record.stacks[stack];
        if (sameWeights(now.live, was.ran) && SWITCH_KEYS.some((k) => now.config[k] !== was.config[k])) {
            await fleet.applyConfig(stack, was.config);
            notes.set(stack, "it still runs what it ran before; its config says so again");
        }
    }
    writeRecord(dir, inState(record, result.outcome === "switched" ? "switched" : result.outcome));
    if (result.failure !== undefined) {
        io.err.write(`fleet: ${result.failure.stack} failed during its ${result.failure.during === "bake" ? "bake" : "switch"}: ${result.failure.message}\n`);
    }
    await printEnds(fleet, stacks, result.stacks, notes, io);
    io.err.write(`fleet: ${outcomeText(result.outcome)} (exit ${EXIT_CODES[result.outcome]})\n`);
    return EXIT_CODES[result.outcome];
}

export async function rollback(dir: string, io: Io): Promise<number> {
    const record = readRecord(dir);
    if (record === undefined) throw new Refused("no fleet switch is recorded here (.fleet/last-switch.json): nothing to roll back");
    if (stillRunning(record))
        throw new Refused(`a fleet ${record.state === "rolling-back" ? "rollback" : "switch"} is running (pid ${record.pid}); stop it first (Ctrl-C)`);
    const fleet = await openFleet(dir, io);
    const stacks = Object.entries(record.stacks).map(([stack, b]) => ({ stack, wave: b.wave }));
    const gone = stacks.find((s) => !fleet.stackNames.includes(s.stack));
    if (gone !== undefined) throw new Refused(`stack ${gone.stack} of the last switch no longer exists; nothing was changed`);
    const now = new Map((await views(fleet, stacks)).map((v) => [v.name, v]));
    const needs = (stack: string): boolean => {
        const view = now.get(stack) as StackView;
        const was = record.stacks[stack];
        return view.locked === true || !sameWeights(view.live, was.ran) || SWITCH_KEYS.some((k) => view.config[k] !== was.config[k]);
    };
    const rolling = inState(record, "rolling-back");
    writeRecord(dir, rolling);
    const progress = createProgress(io.err, stacks);
    progress.line(undefined, `rolling back the switch ${record.id} (to ${describeTarget(record.target)}): every stack to what it ran before`);
    if (io.signal.aborted) io.err.write("fleet: a rollback runs to the end; Ctrl-C does not stop it\n");
    let result: Awaited<ReturnType<typeof runRollback>>;
    try {
        result = await runRollback(
            stacks.map((s) => s.stack),
            needs,
            new AutomationRunner(fleet, rolling, progress),
            progress,
        );
    } finally {
        progress.close();
    }
    writeRecord(dir, inState(record, result.failed ? "rollback-failed" : "rolled-back"));
    await printEnds(fleet, stacks, result.stacks, new Map(), io);
    const code = result.failed ? EXIT_CODES["rollback-failed"] : 0;
    io.err.write(`fleet: ${result.failed ? "the rollback of at least one stack failed" : "every stack runs what it ran before the switch"} (exit ${code})\n`);
    return code;
}

function outcomeText(outcome: keyof typeof EXIT_CODES): string {
    return {
        switched: "every stack switched",
        "rolled-back": "a stack failed; every stack the switch touched was rolled back",
        "rollback-failed": "a stack failed, and the rollback failed too",
        halted: "a stack failed; halted (onFailure halt): nothing changed after it",
        refused: "refused",
        "preview-failed": "a preview failed; nothing was changed",
        crashed: "the fleet tool failed",
        interrupted: "interrupted: no stack was started after Ctrl-C, those in flight were cancelled",
    }[outcome];
}

/** Every stack with what it runs now (read again from its outputs) and whether it is locked. */
export async function printEnds(
    fleet: FleetWorkspace,
    stacks: readonly { stack: string; wave: string }[],
    ends: ReadonlyMap<string, StackEnd>,
    notes: ReadonlyMap<string, string>,
    io: Io,
): Promise<void> {
    const rows = await Promise.all(
        stacks.map(async ({ stack, wave }) => {
            const locks = fleet.locks(stack);
            return {
                stack,
                wave,
                live: await fleet.live(stack),
                end: ends.get(stack) ?? "untouched",
                locked: locks === undefined ? undefined : locks.length > 0,
                note: notes.get(stack),
            };
        }),
    );
    io.out.write(finalLines(rows));
}
