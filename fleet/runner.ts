// The per-stack verbs of a real switch (and of each rollout step): the config change and `pulumi up` a
// user makes by hand, through the Automation API; the rollback to the recorded config, removing a
// stale lock a killed fleet left; and the bake's check of a switched stack (its outputs, its live
// route against a refresh preview, its gateway). The gate is the program's own. What to do when is
// decided in plan.ts.
import { hostname } from "node:os";

import { parseSettings, type Settings } from "../config";
import { runChecks } from "../dynamic/gate";
import { forwardCancel } from "./cancel";
import { EngineListener, StackError, resourceName } from "./engine-events";
import { allStale, lockHolders, type LockHolder } from "./locks";
import type { PlanProgress, StackRunner } from "./plan";
import { processAlive, type SwitchRecord } from "./record";
import {
    describeTarget,
    describeWeights,
    sameWeights,
    stackFileConfig,
    switchConfig,
    targetVersions,
    targetWeights,
    type Target,
    type Weights,
} from "./target";
import { stackOutputsOf, withoutReadBack } from "./sdk";
import type { FleetWorkspace, StackView } from "./workspace";

/** The longest one bake check waits for the gateway to answer with the right page. */
export const BAKE_CHECK_TIMEOUT_SECONDS = 10;
/** The routing objects whose live copy the bake compares with what `pulumi up` applied. */
const ROUTE_TYPES = ["kubernetes:networking.istio.io/v1:VirtualService", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"];

/** The StackRunner of a real switch: the Automation API, and the record of what each stack ran before. */
export class AutomationRunner implements StackRunner {
    private readonly routes = new Map<string, string[]>();
    private readonly settings = new Map<string, Settings>();
    private readonly justUpdated = new Map<string, Weights | undefined>();

    /**
     * `views`: the stacks as read before the switch (their config, so that the bake needs no second
     * read; every `pulumi` call costs a process start, and the stacks of a wave share the machine).
     */
    constructor(
        private readonly fleet: FleetWorkspace,
        private readonly record: SwitchRecord,
        private readonly progress: PlanProgress,
        private readonly views: ReadonlyMap<string, StackView> = new Map(),
    ) {}

    private get target(): Target {
        return this.record.target;
    }

    /**
     * `target`: the switch's own, or one step of a rollout (fleet/rollout.ts). The config it changes
     * is the stack file's as it is now (before the first step: what the record holds).
     */
    async switchStack(name: string, signal: AbortSignal, target: Target = this.target): Promise<void> {
        const before = stackFileConfig(this.fleet.readStackFile(name), this.fleet.project);
        const next = switchConfig(target, before);
        await this.fleet.applyConfig(name, next);
        const view = this.views.get(name);
        if (view !== undefined) this.settings.set(name, parseSettings({ ...view.raw, ...next }, view.secretKeys));
        const verb = this.record.rollout === undefined ? "switch" : "rollout";
        const { routes, live } = await this.up(name, `fleet ${verb} ${this.record.id}: ${describeTarget(target)}`, "switching", signal);
        if (routes.length > 0) this.routes.set(name, routes);
        this.justUpdated.set(name, live);
    }

    /** Back to the recorded config, with one `pulumi up` (the program's gate trusts the version it returns to). */
    async rollback(name: string): Promise<void> {
        await this.fleet.applyConfig(name, this.record.stacks[name].config);
        const message = `fleet rollback ${this.record.id}`;
        // A file backend shows its locks: a stale one is removed before the update, which would
        // otherwise start its program only to fail on the lock (a wasted program start in every recovery of a killed fleet).
        const seen = this.fleet.locks(name);
        if (seen !== undefined && allStale(seen, hostname(), processAlive)) await this.removeStaleLock(name, seen);
        try {
            await this.up(name, message, "rolling back");
        } catch (err) {
            // Other backends say so only in the error of the update the lock stopped.
            const holders = err instanceof StackError ? lockHolders(err.detail) : undefined;
            if (holders === undefined || !allStale(holders, hostname(), processAlive)) throw err;
            await this.removeStaleLock(name, holders);
            await this.up(name, message, "rolling back");
        }
    }

    /** The lock of an update killed with the fleet: its process is gone, nobody else holds it. */
    private async removeStaleLock(name: string, holders: readonly LockHolder[]): Promise<void> {
        const stack = await this.fleet.stack(name);
        await stack.cancel();
        this.progress.line(name, `removed the lock left by ${holders.map((h) => `pid ${h.pid}`).join(", ")}, which no longer runs (pulumi cancel)`);
    }

    /** The stack still serves `target`: its outputs, its live route on the cluster, its gateway. */
    async check(name: string, signal: AbortSignal, target: Target = this.target): Promise<void> {
        // The config does not change while a switch bakes: it is read (and parsed) once per stack.
        let settings = this.settings.get(name);
        let live: Promise<Weights | undefined>;
        if (settings === undefined) {
            const view = await this.fleet.view(name);
            settings = parseSettings(view.raw, view.secretKeys);
            this.settings.set(name, settings);
            live = Promise.resolve(view.live);
        } else if (this.justUpdated.has(name)) {
            // The first check after the switch: the outputs its `pulumi up` has just returned.
            live = Promise.resolve(this.justUpdated.get(name));
            this.justUpdated.delete(name);
        } else {
            live = this.fleet.live(name);
        }
        // All three at once: the outputs and the refresh preview are a `pulumi` run each, the gateway
        // a few requests. What they found is judged in this order.
        const [outputs, drift, gateway] = await Promise.allSettled([live, this.routeDrift(name, signal), this.checkGateway(name, settings, target, signal)]);
        if (signal.aborted) return;
        if (outputs.status === "rejected") throw outputs.reason;
        const expected = targetWeights(target);
        if (!sameWeights(outputs.value, expected))
            throw new Error(`its outputs say the live route sends ${describeWeights(outputs.value)}, not ${describeWeights(expected)}`);
        if (drift.status === "rejected") throw drift.reason;
        if (drift.value.length > 0) {
            throw new Error(
                `its live route on the cluster is not what pulumi up applied (${drift.value.join(", ")} changed; pulumi refresh --diff --stack ${name} shows how)`,
            );
        }
        if (gateway.status === "rejected") throw gateway.reason;
    }

    /** The routing objects whose live copy differs from the state, read through a refresh preview. */
    private async routeDrift(name: string, signal: AbortSignal): Promise<string[]> {
        const stack = await this.fleet.stack(name);
        let urns = this.routes.get(name);
        if (urns === undefined) {
            const state = (await stack.exportStack()) as { deployment?: { resources?: { urn: string; type: string }[] } };
            urns = (state.deployment?.resources ?? []).filter((r) => ROUTE_TYPES.includes(r.type)).map((r) => r.urn);
            this.routes.set(name, urns);
        }
        // The Automation API listens for an abort only from the start of its `pulumi`: one that came
        // while the state was read would let the preview run to its end.
        if (urns.length === 0 || signal.aborted) return [];
        const listener = new EngineListener(name, { step: () => undefined, line: () => undefined }, "checking");
        const drifted = new Set<string>();
        const cancel = forwardCancel(signal, listener);
        try {
            await stack.previewRefresh({
                target: urns,
                color: "never",
                signal: cancel.signal,
                onEvent: (event) => {
                    listener.onEvent(event);
                    const step = event.resourcePreEvent?.metadata ?? event.resOutputsEvent?.metadata;
                    if (
                        step !== undefined &&
                        urns.includes(step.urn) &&
                        step.op !== "same" &&
                        step.op !== "read" &&
                        (step.op !== "refresh" || (step.diffs ?? []).length > 0)
                    ) {
                        drifted.add(resourceName(step.urn));
                    }
                },
            });
        } catch (err) {
            if (signal.aborted) return [];
            throw listener.reason(err);
        } finally {
            cancel.dispose();
        }
        return [...drifted];
    }

    /** Each target version answers with its own page through the gateway (the gate's own check, again). */
    private async checkGateway(name: string, settings: Settings, target: Target, signal: AbortSignal): Promise<void> {
        const header = settings.testRouteHeader;
        const checks = targetVersions(target).flatMap((version) => {
            const spec = settings.versions.get(version);
            return spec?.expect === undefined ? [] : [{ version, image: spec.image, expect: spec.expect }];
        });
        if (settings.gatewayUrl === undefined || header === undefined || checks.length === 0) return;
        await runChecks(
            { gatewayUrl: settings.gatewayUrl, host: settings.hostname, header, checks, timeoutSeconds: BAKE_CHECK_TIMEOUT_SECONDS, intervalMs: 1000 },
            checks,
            { report: (line) => this.progress.line(name, `bake: ${line}`), signal },
        );
    }

    /** One `pulumi up`; resolves with the URNs of the routing objects it saw (for the bake's refresh) and the live traffic it left. */
    private async up(name: string, message: string, label: string, signal?: AbortSignal): Promise<{ routes: string[]; live: Weights | undefined }> {
        const stack = await this.fleet.stack(name);
        const listener = new EngineListener(name, this.progress, label);
        const cancel = forwardCancel(signal, listener);
        const routes = new Set<string>();
        let outputs: Record<string, unknown> = {};
        try {
            await withoutReadBack(stack).up({
                message,
                color: "never",
                signal: cancel.signal,
                onEvent: (event) => {
                    listener.onEvent(event);
                    const step = event.resourcePreEvent?.metadata;
                    if (step !== undefined && ROUTE_TYPES.includes(step.type)) routes.add(step.urn);
                    outputs = stackOutputsOf(event) ?? outputs;
                },
            });
        } catch (err) {
            throw listener.reason(err);
        } finally {
            cancel.dispose();
        }
        // A secret trafficSplit is masked in the events: read it back from the state then.
        const live =
            outputs.trafficSplit === undefined || outputs.trafficSplit === "[secret]" ? await this.fleet.live(name) : (outputs.trafficSplit as Weights);
        return { routes: [...routes], live };
    }
}
