// The part of a rollout that reaches stacks and Prometheus: each step is the switch runner's own
// config change and `pulumi up` (runner.ts, with a step's target), and each analysis is the shared
// judge (lib/analysis/judge.ts) over the checks the stack's config declares, resolved for its
// new version's workload and, at the weighted steps, for the live one. What to do when is decided in
// rollout.ts; the refusals before anything changes are here, one line per stack.
import { resolveChecks, type ResolvedCheck } from "../lib/analysis/checks";
import { analyse, type AnalysisResult } from "../lib/analysis/judge";
import { parseSettings, type Analysis } from "../config";
import { workloadName } from "../lib/app-names";
import { Refused } from "../lib/refusal";
import type { PlanProgress } from "./plan";
import { stepTarget, type RolloutRunner } from "./rollout";
import { programRefusal, switchRefusal } from "./refusal";
import type { AutomationRunner } from "./runner";
import type { FleetWorkspace, StackView } from "./workspace";
import { describeWeights, stackFileConfig, targetWeights, type SwitchConfig, type Weights } from "./target";

/** The one version that takes all of `weights`, or undefined (a split, or never deployed). */
export function soleVersion(weights: Weights | undefined): string | undefined {
    const serving = Object.entries(weights ?? {}).filter(([, w]) => w > 0);
    return serving.length === 1 && serving[0][1] === 100 ? serving[0][0] : undefined;
}

/** What a rollout needs of one stack, read before it starts. */
export interface StackRollout {
    /** The version it runs alone now. */
    readonly from: string;
    readonly to: string;
    readonly analysis: Analysis;
    readonly namespace: string;
}

/**
 * Why `view` cannot be rolled out to `version` in `steps`, or undefined: one line naming the stack.
 * It must run one version at 100% (not the target), have prometheusUrl set, and every step's config
 * must pass the program's own rules (the last step first: it names a target the stack does not
 * declare as `pulumi up` would).
 */
export function rolloutRefusal(view: StackView, version: string, steps: readonly number[]): string | undefined {
    if (view.live === undefined) return switchRefusal(view, { kind: "version", version });
    let analysis: Analysis | undefined;
    try {
        analysis = parseSettings(view.raw, view.secretKeys).analysis;
    } catch (err) {
        if (err instanceof Refused) return programRefusal(view, err);
        throw err;
    }
    if (analysis === undefined) {
        return `stack ${view.name}: prometheusUrl is not set; a rollout judges every step on the stack's Prometheus (pulumi config set prometheusUrl http://prometheus:9090 --stack ${view.name}; docs/analysis.md). Nothing was changed.`;
    }
    const from = soleVersion(view.live);
    if (from === undefined) {
        return `stack ${view.name} runs ${describeWeights(view.live)}; a rollout starts from one version at 100% (npm run fleet -- rollback, or switch it to one version first). Nothing was changed.`;
    }
    if (from === version)
        return `stack ${view.name} runs ${version} already; a rollout to ${version} starts from another version at 100%. Nothing was changed.`;
    for (const step of [steps[steps.length - 1], ...steps.slice(0, -1)]) {
        const refused = switchRefusal(view, stepTarget(step, from, version));
        if (refused !== undefined) return refused;
    }
    return undefined;
}

/** The rollout of a stack that rolloutRefusal let through. */
export function stackRollout(view: StackView, version: string): StackRollout {
    const settings = parseSettings(view.raw, view.secretKeys);
    return { from: soleVersion(view.live) as string, to: version, analysis: settings.analysis as Analysis, namespace: settings.appNamespace };
}

/** The bound of a check compared only with the live version, at 100%. */
export const NO_BOUND_AT_100 = "any value (vsLive is judged below 100% only)";

/**
 * The checks of one step, resolved: about the new version's workload, compared with the live
 * version's only below 100%. At 100% the old version takes no traffic left to compare with, so
 * vsLive is left out there (min and max stay; a check with vsLive alone then needs only its data
 * and its minRequests).
 */
export function stepChecks(rollout: StackRollout, step: number): ResolvedCheck[] {
    const subject = (version: string) => ({ namespace: rollout.namespace, workload: workloadName(version), version });
    if (step < 100) return resolveChecks(rollout.analysis, subject(rollout.to), subject(rollout.from));
    const alone = { ...rollout.analysis, checks: rollout.analysis.checks.map((c) => ({ ...c, vsLive: undefined })) };
    return resolveChecks(alone, subject(rollout.to), undefined).map((c) => (c.bound === "" ? { ...c, bound: NO_BOUND_AT_100 } : c));
}

/** The stacks of a real rollout: each step through the switch runner, each analysis through Prometheus. */
export class RolloutStacks implements RolloutRunner {
    /** Each stack's config and live traffic before its last step, for a step that failed. */
    private readonly before = new Map<string, { config: SwitchConfig; live: Weights }>();
    private readonly at = new Map<string, number>();

    constructor(
        private readonly fleet: FleetWorkspace,
        private readonly stacks: AutomationRunner,
        private readonly rollouts: ReadonlyMap<string, StackRollout>,
        private readonly progress: PlanProgress,
    ) {}

    private rollout(stack: string): StackRollout {
        return this.rollouts.get(stack) as StackRollout;
    }

    async stepStack(stack: string, step: number, signal: AbortSignal): Promise<void> {
        const { from, to } = this.rollout(stack);
        const previous = this.at.get(stack);
        this.before.set(stack, {
            config: stackFileConfig(this.fleet.readStackFile(stack), this.fleet.project),
            live: previous === undefined ? { [from]: 100 } : targetWeights(stepTarget(previous, from, to)),
        });
        await this.stacks.switchStack(stack, signal, stepTarget(step, from, to));
        this.at.set(stack, step);
    }

    check(stack: string, step: number, signal: AbortSignal): Promise<void> {
        const { from, to } = this.rollout(stack);
        return this.stacks.check(stack, signal, stepTarget(step, from, to));
    }

    analyse(stack: string, step: number, signal: AbortSignal): Promise<AnalysisResult> {
        const rollout = this.rollout(stack);
        const what = `${rollout.to} on ${stack} at ${step}%`;
        return analyse(rollout.analysis.provider, stepChecks(rollout, step), what, { report: (line) => this.progress.line(stack, line), signal });
    }

    rollback(stack: string): Promise<void> {
        return this.stacks.rollback(stack);
    }

    /** The config and live traffic a stack had before its last step started (undefined: never stepped). */
    beforeLastStep(stack: string): { config: SwitchConfig; live: Weights } | undefined {
        return this.before.get(stack);
    }
}
