// What the fleet prints as its result, on stdout: the preview report (Markdown, one PR comment), the
// status table and its JSON, and the last lines of a switch or rollback (every stack and what it runs
// now). Pure: from what the runner read to text.
import type { StackEnd } from "./plan";
import type { SwitchRecord } from "./record";
import type { StackPreview } from "./preview";
import type { LastUpdate, StackView } from "./workspace";
import { describeTarget, describeWeights, type Target, type Weights } from "./target";

/** A PR comment holds at most 65,536 characters; the diffs share what the table leaves. */
export const COMMENT_LIMIT = 65_536;
/** The first line of the report, so that a workflow can find (and replace) its own comment. */
export const REPORT_TITLE = "## Fleet preview";

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
    const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
    return [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)];
}

function countOps(steps: StackPreview["steps"]): string {
    if (steps.length === 0) return "no changes";
    const counts = new Map<string, number>();
    for (const s of steps) counts.set(s.op, (counts.get(s.op) ?? 0) + 1);
    return [...counts].map(([op, n]) => `${n} to ${op}`).join(", ");
}

/** A rollout's preview: its title, each stack's first step (what its diff shows), its own section. */
export interface RolloutPreview {
    readonly title: string;
    readonly firstStep: (stack: string) => Target;
    readonly section: string;
}

/**
 * The fleet's plan as one Markdown document: a table (wave, stack, live now, after, changes) and each
 * stack's `pulumi preview --diff` in a collapsed block, cut to fit one PR comment. A rollout's
 * preview has its section between the table and the diffs (of its first step).
 */
export function previewReport(
    target: Target | undefined,
    plans: readonly (StackPreview & { wave: string })[],
    limit = COMMENT_LIMIT,
    rollout?: RolloutPreview,
): string {
    const title = `${REPORT_TITLE}: ${rollout !== undefined ? rollout.title : target === undefined ? "every stack as configured" : `switch to ${describeTarget(target)}`}`;
    const after = (stack: string) =>
        rollout !== undefined ? `${describeTarget(rollout.firstStep(stack))} (first step)` : target === undefined ? "as configured" : describeTarget(target);
    const failed = plans.filter((p) => p.error !== undefined);
    const head = [
        title,
        "",
        ...table(
            ["wave", "stack", "live now", "after", "plan"],
            plans.map((p) => [
                p.wave,
                p.stack,
                describeWeights(p.live),
                after(p.stack),
                p.error === undefined ? countOps(p.steps) : `**preview failed**: ${p.error}`,
            ]),
        ),
        "",
        failed.length === 0 ? `Every stack's preview passed (${plans.length}).` : `**${failed.length} of ${plans.length} previews failed.**`,
        "",
        ...(rollout === undefined ? [] : [rollout.section, ""]),
    ].join("\n");
    const budget = Math.max(0, Math.floor((limit - head.length) / Math.max(1, plans.length)) - 250);
    const blocks = plans.map((p) => {
        const body = p.error !== undefined ? p.error : p.diff.trim();
        const cut = body.length > budget ? `${body.slice(0, budget)}\n... (cut to fit one comment: run npm run fleet -- preview for the rest)` : body;
        return [
            `<details><summary>${p.stack}: ${p.error === undefined ? countOps(p.steps) : "preview failed"}</summary>`,
            "",
            "```",
            cut.replace(/```/g, "'''"),
            "```",
            "</details>",
            "",
        ].join("\n");
    });
    return `${head}\n${blocks.join("\n")}`;
}

export interface StatusRow {
    readonly stack: string;
    readonly wave: string;
    readonly activeVersion: string | null;
    readonly trafficSplit: Weights | null;
    readonly lastUpdate: LastUpdate | null;
    readonly locked: boolean | null;
}

export function statusRows(views: readonly (StackView & { wave: string })[]): StatusRow[] {
    return views.map((v) => ({
        stack: v.name,
        wave: v.wave,
        activeVersion: v.activeVersion ?? null,
        trafficSplit: v.live ?? null,
        lastUpdate: v.lastUpdate ?? null,
        locked: v.locked ?? null,
    }));
}

/** The JSON of `status --json`: the stacks, and the last switch if one was recorded. */
export function statusJson(rows: readonly StatusRow[], record: SwitchRecord | undefined): string {
    const lastSwitch = record === undefined ? null : { id: record.id, target: describeTarget(record.target), startedAt: record.startedAt, state: record.state };
    return `${JSON.stringify({ stacks: rows, lastSwitch }, null, 2)}\n`;
}

/** One line per stack, aligned, and a line about the last switch. */
export function statusText(rows: readonly StatusRow[], record: SwitchRecord | undefined): string {
    const header = ["STACK", "WAVE", "LIVE", "LAST UPDATE", "LOCKED"];
    const lines = rows.map((r) => [
        r.stack,
        r.wave,
        describeWeights(r.trafficSplit ?? undefined),
        r.lastUpdate === null ? "never" : `${r.lastUpdate.kind} ${r.lastUpdate.result} ${r.lastUpdate.endedAt ?? r.lastUpdate.startedAt}`,
        r.locked === null ? "unknown" : r.locked ? "LOCKED (pulumi cancel, once nothing runs)" : "no",
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const out = [header, ...lines].map((l) =>
        l
            .map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i])))
            .join("  ")
            .trimEnd(),
    );
    if (record !== undefined)
        out.push(
            "",
            `last fleet ${record.rollout === undefined ? "switch" : "rollout"}: to ${describeTarget(record.target)}, started ${record.startedAt}, ${record.state}`,
        );
    return `${out.join("\n")}\n`;
}

const END_TEXT: Record<StackEnd, string> = {
    untouched: "not touched",
    switched: "switched",
    failed: "its switch failed",
    cancelled: "cancelled in flight",
    "rolled-back": "rolled back",
    "rollback-failed": "ROLLBACK FAILED",
};

/** The last lines: every stack, what it runs now (its outputs), what happened to it, whether it is locked. */
export function finalLines(
    rows: readonly { stack: string; wave: string; live: Weights | undefined; end: StackEnd; locked?: boolean; note?: string }[],
): string {
    const width = Math.max(...rows.map((r) => r.stack.length));
    const waveWidth = Math.max(...rows.map((r) => r.wave.length));
    return `${rows
        .map((r) => {
            const parts = [`${r.stack.padEnd(width)}  ${r.wave.padEnd(waveWidth)}  runs ${describeWeights(r.live)}`, END_TEXT[r.end]];
            if (r.locked === true) parts.push("LOCKED");
            if (r.note !== undefined) parts.push(r.note);
            return parts.join("; ");
        })
        .join("\n")}\n`;
}
