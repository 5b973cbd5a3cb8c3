// What a rollout prints, pure: its preview (per stack the steps, each check with its resolved queries
// and bounds, and the least time the rollout takes; nothing asks Prometheus) as a Markdown section of
// the fleet preview, and every measurement of a rollout that ran, on stdout.
import { minimumSeconds } from "../lib/analysis/checks";
import { shownUrl } from "../lib/analysis/judge";
import type { Fleet } from "./file";
import type { AnalysisEntry } from "./rollout";
import { leastSeconds, stepTarget } from "./rollout";
import { stepChecks, type StackRollout } from "./rollout-runner";
import { describeTarget } from "./target";

/** "10%, 50%, 100%". */
export function describeSteps(steps: readonly number[]): string {
    return steps.map((s) => `${s}%`).join(", ");
}

/** "84 s", "7 min 30 s". */
export function describeSeconds(seconds: number): string {
    if (seconds < 60) return `${seconds} s`;
    const rest = seconds % 60;
    return `${Math.floor(seconds / 60)} min${rest === 0 ? "" : ` ${rest} s`}`;
}

function row(cells: readonly string[]): string {
    return `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
}

/** The title of a rollout's preview report. */
export function rolloutTitle(version: string, steps: readonly number[], bake: number): string {
    return `rollout of ${version} in steps ${describeSteps(steps)}${bake > 0 ? `, then a bake of ${describeSeconds(bake)}` : ""}`;
}

/**
 * The rollout's section of the preview: the least time, then per stack its steps (traffic, each
 * check's bound, interval and count) and each check's queries as they will be sent.
 */
export function rolloutSection(fleet: Fleet, steps: readonly number[], stacks: readonly (StackRollout & { stack: string; wave: string })[]): string {
    const byStack = new Map(stacks.map((s) => [s.stack, s]));
    const least = leastSeconds(fleet, steps, (stack) => minimumSeconds((byStack.get(stack) as StackRollout).analysis));
    const lines = [
        `### Rollout: ${steps.length} steps`,
        "",
        `It takes at least ${describeSeconds(least)}: after each wave of each step, the analysis of every stack moved so far${fleet.bake > 0 ? `, then the bake (${describeSeconds(fleet.bake)}, until its last analysis ends)` : ""}; plus every stack's \`pulumi up\` at each step. ` +
            "Each query was checked with Prometheus's grammar; none was sent.",
        "",
    ];
    for (const s of stacks) {
        const minimum = minimumSeconds(s.analysis);
        lines.push(
            `#### ${s.stack} (wave ${s.wave}): ${s.from} to ${s.to}, at least ${describeSeconds(minimum)} of analysis at each step, on ${shownUrl(s.analysis.provider.url)}`,
            "",
        );
        lines.push(row(["step", "traffic", "check", "bound", "every", "measurements", "minRequests"]), row(["---", "---", "---", "---", "---", "---", "---"]));
        for (const step of steps) {
            for (const check of stepChecks(s, step)) {
                lines.push(
                    row([
                        `${step}%`,
                        describeTarget(stepTarget(step, s.from, s.to)),
                        check.name,
                        check.bound,
                        `${check.intervalSeconds} s`,
                        String(check.count),
                        String(check.minRequests),
                    ]),
                );
            }
        }
        lines.push("", `Queries (${s.to}, at every step; ${s.from} where a check compares with the live version, below 100%):`, "", "```");
        // The first step's: the queries about the new version are the same at every step, and the
        // live version's are there unless the first step is 100%.
        for (const check of stepChecks(s, steps[0])) {
            lines.push(`${check.name} (${s.to}): ${fence(check.query)}`, `${check.name} (${s.to}, requests): ${fence(check.requestsQuery)}`);
            if (check.baselineQuery !== undefined) lines.push(`${check.name} (${s.from}, live): ${fence(check.baselineQuery)}`);
        }
        lines.push("```", "");
    }
    return lines.join("\n");
}

/** A query inside a fenced block: a fence of its own would end the block. */
const fence = (query: string) => query.replace(/```/g, "'''");

function where(entry: AnalysisEntry): string {
    return entry.phase === "bake" ? "in the bake" : `at ${entry.step}%`;
}

const show = (value: number | undefined) => (value === undefined ? "no data" : Number.isInteger(value) ? String(value) : value.toFixed(3));

/** Every analysis of a rollout and each of its measurements (time, query as sent, value, verdict, why). */
export function analysisReport(entries: readonly AnalysisEntry[]): string {
    if (entries.length === 0) return "analysis: none ran\n";
    const lines = ["analysis (every measurement, also in .fleet/last-switch.json):"];
    for (const entry of entries) {
        lines.push(`${entry.stack} ${where(entry)}: ${entry.verdict}: ${entry.summary}`);
        for (const m of entry.measurements) {
            const requests = m.requests === undefined ? "" : `, ${show(m.requests)} requests`;
            const live = m.baseline === undefined ? "" : `, live ${show(m.baseline)}`;
            lines.push(
                `  ${m.at}  ${m.check} ${m.index}/${m.count}  ${m.verdict}  value ${show(m.value)}${requests}${live} (bound: ${m.bound}): ${m.reason}`,
                `    query: ${m.query}`,
            );
        }
    }
    return `${lines.join("\n")}\n`;
}
