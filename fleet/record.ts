// The record of the last fleet switch: what every stack of the fleet ran and had in its config just
// before the switch, written atomically (a temporary file, fsync, rename) before the first stack is
// touched. It is what `npm run fleet -- rollback` returns the stacks to, also after the switch's
// process was killed half-way through a wave: a killed process cannot leave it half-written, and it
// never changes during the switch except for its state and, in a rollout, the analyses appended to
// it as each one ends (each measurement: its query as sent, its value, its verdict and why).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import * as path from "node:path";

import { z } from "zod";

import type { Verdict } from "../lib/analysis/judge";
import { Refused } from "../lib/refusal";
import type { AnalysisEntry } from "./rollout";
import type { SwitchConfig, Target, Weights } from "./target";

export const RECORD_FILE = path.join(".fleet", "last-switch.json");

/**
 * switching: written before the first stack is touched; still there after a kill. The others: how
 * the switch (or a later rollback) ended.
 */
export const RECORD_STATES = ["switching", "switched", "rolled-back", "rollback-failed", "halted", "interrupted", "rolling-back"] as const;
export type RecordState = (typeof RECORD_STATES)[number];

export interface StackBefore {
    readonly wave: string;
    /** activeVersion and trafficSplit in the stack's config before the switch (undefined: not set). */
    readonly config: SwitchConfig;
    /** The live traffic it ran before (its trafficSplit output). */
    readonly ran: Weights;
}

/** A rollout's plan and every analysis it ran so far, in the order they ended. */
export interface RolloutRecord {
    /** The new version's share at each step, in percent (the last is 100). */
    readonly steps: readonly number[];
    /** Seconds of checks and analysis after the last step. */
    readonly bake: number;
    readonly analyses: readonly AnalysisEntry[];
}

export interface SwitchRecord {
    readonly id: string;
    readonly target: Target;
    readonly startedAt: string;
    /** The process that runs (or ran) the switch, to tell a killed switch from a running one. */
    readonly pid: number;
    readonly host: string;
    readonly state: RecordState;
    readonly stacks: Readonly<Record<string, StackBefore>>;
    /** Only for a rollout (`npm run fleet -- rollout`); its target is then the version rolled out. */
    readonly rollout?: RolloutRecord;
}

// Every verdict, so that the record's schema reads what the judge writes.
const VERDICTS = ["passed", "failed", "inconclusive"] as const satisfies readonly Verdict[];
const WEIGHTS = z.record(z.string(), z.number());
const SCHEMA = z.strictObject({
    id: z.string(),
    target: z.union([z.strictObject({ kind: z.literal("version"), version: z.string() }), z.strictObject({ kind: z.literal("split"), weights: WEIGHTS })]),
    startedAt: z.string(),
    pid: z.int(),
    host: z.string(),
    state: z.enum(RECORD_STATES),
    stacks: z.record(
        z.string(),
        z.strictObject({
            wave: z.string(),
            config: z.strictObject({ activeVersion: z.string().optional(), trafficSplit: z.string().optional() }),
            ran: WEIGHTS,
        }),
    ),
    rollout: z
        .strictObject({
            steps: z.array(z.int()),
            bake: z.number(),
            analyses: z.array(
                z.strictObject({
                    stack: z.string(),
                    step: z.int(),
                    phase: z.enum(["step", "bake"]),
                    verdict: z.enum(VERDICTS),
                    summary: z.string(),
                    measurements: z.array(
                        z.strictObject({
                            check: z.string(),
                            index: z.int(),
                            count: z.int(),
                            at: z.string(),
                            query: z.string(),
                            value: z.number().optional(),
                            requests: z.number().optional(),
                            baseline: z.number().optional(),
                            bound: z.string(),
                            verdict: z.enum(VERDICTS),
                            reason: z.string(),
                        }),
                    ),
                }),
            ),
        })
        .optional(),
});

/** A new record for a switch that starts now in this process. */
export function newRecord(target: Target, stacks: Record<string, StackBefore>, now = new Date(), rollout?: Omit<RolloutRecord, "analyses">): SwitchRecord {
    const record: SwitchRecord = {
        id: `${now.toISOString()}-${process.pid}`,
        target,
        startedAt: now.toISOString(),
        pid: process.pid,
        host: hostname(),
        state: "switching",
        stacks,
    };
    return rollout === undefined ? record : { ...record, rollout: { ...rollout, analyses: [] } };
}

/** The record with one more analysis of a rollout (the caller writes it). */
export function withAnalysis(record: SwitchRecord, entry: AnalysisEntry): SwitchRecord {
    if (record.rollout === undefined) throw new Error("withAnalysis: the record is not a rollout's");
    return { ...record, rollout: { ...record.rollout, analyses: [...record.rollout.analyses, entry] } };
}

/** Writes the record so that a reader sees the old one or the new one, never a part of either. */
export function writeRecord(dir: string, record: SwitchRecord): void {
    const file = path.join(dir, RECORD_FILE);
    mkdirSync(path.dirname(file), { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    const fd = openSync(temporary, "w");
    try {
        writeSync(fd, `${JSON.stringify(record, null, 2)}\n`);
        fsyncSync(fd);
    } finally {
        closeSync(fd);
    }
    renameSync(temporary, file);
    // The rename itself reaches the disk only with its directory.
    const dirFd = openSync(path.dirname(file), "r");
    try {
        fsyncSync(dirFd);
    } finally {
        closeSync(dirFd);
    }
}

/** The last switch's record; undefined if no switch was ever started here. */
export function readRecord(dir: string): SwitchRecord | undefined {
    const file = path.join(dir, RECORD_FILE);
    let text: string;
    try {
        text = readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
    let json: unknown;
    try {
        json = JSON.parse(text);
    } catch {
        throw new Refused(`${RECORD_FILE} is not JSON; it was not written by npm run fleet (restore it from a backup, or remove it and roll back by hand)`);
    }
    const parsed = SCHEMA.safeParse(json);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new Refused(`${RECORD_FILE}: ${issue.path.join(".") || "the file"}: ${issue.message}; it was not written by npm run fleet`);
    }
    return parsed.data;
}

/**
 * Whether the fleet process that last wrote `record` still runs it, on this machine. On another
 * machine nobody here can tell; the stacks' own locks keep two updates of one stack apart anyway.
 */
export function stillRunning(record: SwitchRecord, isAlive: (pid: number) => boolean = processAlive, host = hostname()): boolean {
    if (record.state !== "switching" && record.state !== "rolling-back") return false;
    return record.host === host && record.pid !== process.pid && isAlive(record.pid);
}

/** The record in a new state, written by this process from now on. */
export function inState(record: SwitchRecord, state: RecordState): SwitchRecord {
    return { ...record, state, pid: process.pid, host: hostname() };
}

export function processAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (err) {
        return (err as NodeJS.ErrnoException).code === "EPERM";
    }
}
