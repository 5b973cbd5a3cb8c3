// The thin part of the fleet that reaches the stacks: Pulumi's Automation API over this project
// (LocalWorkspace, which drives the `pulumi` CLI on PATH, so the offline engine works too). A switch
// is what a user does by hand, `pulumi config set` and `pulumi up`; the gate is the program's own.
// Progress comes from the engine's events, per stack. What to do when is decided in plan.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import * as path from "node:path";

import { LocalWorkspace, Stack, type EngineEvent } from "@pulumi/pulumi/automation";

import { ConfigError, parseSettings, type RawConfig, type Settings } from "../config";
import { runChecks } from "../dynamic/gate";
import { namespacedKey, projectConfig, stackSettingsFile } from "../lib/stack-config";
import { allStale, fileBackendLocks, lockHolders, type LockHolder } from "./locks";
import { StoppedAfterFailure, type PlanProgress, type StackRunner } from "./plan";
import { processAlive, type SwitchRecord } from "./record";
import { SWITCH_KEYS, describeTarget, describeWeights, sameWeights, stackFileConfig, switchConfig, targetVersions, targetWeights, withSwitchConfig, type SwitchConfig, type Target, type Weights } from "./target";

/** The longest one bake check waits for the gateway to answer with the right page. */
export const BAKE_CHECK_TIMEOUT_SECONDS = 10;
/**
 * How long the fleet waits, after Ctrl-C, for a `pulumi` in flight to say it is cancelling before it
 * sends the SIGINT itself. A terminal's Ctrl-C reaches every process of the foreground group, the
 * `pulumi` processes included; a second SIGINT would make them terminate instead of cancel.
 */
const CANCEL_GRACE_MS = 2000;
const SHOWN_SEVERITIES: readonly string[] = ["info", "info#err", "warning", "error"];
/** The routing objects whose live copy the bake compares with what `pulumi up` applied. */
const ROUTE_TYPES = ["kubernetes:networking.istio.io/v1:VirtualService", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"];
/** The stack's own resource, whose outputs are the stack outputs. */
const STACK_TYPE = "pulumi:pulumi:Stack";

/** One line of what went wrong, and everything the engine said, for a lock's holders. */
export class StackError extends Error {
    constructor(
        message: string,
        readonly detail: string,
    ) {
        super(message);
    }
}

export interface LastUpdate {
    readonly kind: string;
    readonly result: string;
    readonly startedAt: string;
    readonly endedAt?: string;
}

/** A stack as the fleet reads it: its config, what its outputs say it runs, its last update, its locks. */
export interface StackView {
    readonly name: string;
    readonly config: SwitchConfig;
    /** The program's config keys without the project prefix, and which are secrets. */
    readonly raw: RawConfig;
    readonly secretKeys: ReadonlySet<string>;
    /** Live traffic (the trafficSplit output); undefined on a stack never deployed. */
    readonly live: Weights | undefined;
    readonly activeVersion: string | undefined;
    readonly versions: Readonly<Record<string, { image: string; expect?: string }>>;
    readonly lastUpdate?: LastUpdate;
    /** Locked by a running (or killed) update; undefined when the backend does not say cheaply. */
    readonly locked?: boolean;
}

export class FleetWorkspace {
    private readonly stacks = new Map<string, Stack>();
    /**
     * The workspace as the stacks see it, with stack selection left out. The Automation API selects a
     * stack (`pulumi stack select`, which rewrites the user's current stack in the workspace settings)
     * before it hands one out, and then names it with --stack in every command anyway. The fleet knows
     * its stacks exist (listStacks), so selecting them would only cost a `pulumi` run per stack,
     * change the user's current stack, and race with the selections of the other stacks.
     */
    private readonly unselecting: LocalWorkspace;

    private constructor(
        readonly dir: string,
        readonly workspace: LocalWorkspace,
        readonly project: string,
        /** Every stack of this project in the backend. */
        readonly stackNames: readonly string[],
        private readonly backendUrl: string | undefined,
    ) {
        this.unselecting = new Proxy(workspace, {
            get: (target, property, receiver) => (property === "selectStack" ? () => Promise.resolve() : Reflect.get(target, property, receiver) as unknown),
        });
    }

    static async open(dir: string): Promise<FleetWorkspace> {
        // PULUMI_SKIP_CONFIRMATIONS=true (set in many CI environments) acts as --yes, which the CLI
        // refuses with the --preview-only of a refresh preview; the Automation API passes --yes itself
        // where an update needs it.
        const workspace = await LocalWorkspace.create({ workDir: dir, envVars: { PULUMI_SKIP_CONFIRMATIONS: "false" } });
        const project = (await workspace.projectSettings()).name;
        const [stacks, whoami] = await Promise.all([workspace.listStacks(), workspace.whoAmI()]);
        return new FleetWorkspace(dir, workspace, project, stacks.map((s) => s.name), whoami.url);
    }

    /** One of the project's stacks (named in the fleet file, so known to exist). */
    async stack(name: string): Promise<Stack> {
        let stack = this.stacks.get(name);
        if (stack === undefined) {
            stack = await Stack.select(name, this.unselecting);
            this.stacks.set(name, stack);
        }
        return stack;
    }

    locks(name: string): LockHolder[] | undefined {
        return fileBackendLocks(this.backendUrl, this.project, name);
    }

    async view(name: string, options: { history?: boolean } = {}): Promise<StackView> {
        const stack = await this.stack(name);
        const [config, outputs, history] = await Promise.all([
            stack.getAllConfig(),
            this.outputs(name),
            options.history === true ? stack.history(1) : Promise.resolve([]),
        ]);
        const { raw, secretKeys } = projectConfig(
            this.project,
            Object.entries(config).map(([key, value]) => [key, value.value] as const),
            (key) => config[key].secret === true,
        );
        const last = history[0];
        const locks = this.locks(name);
        return {
            name,
            config: stackFileConfig(this.readStackFile(name), this.project),
            raw,
            secretKeys,
            live: outputs.trafficSplit as Weights | undefined,
            activeVersion: outputs.activeVersion as string | undefined,
            versions: (outputs.versions ?? {}) as StackView["versions"],
            lastUpdate:
                last === undefined
                    ? undefined
                    : { kind: last.kind, result: last.result, startedAt: new Date(last.startTime).toISOString(), endedAt: last.endTime === undefined ? undefined : new Date(last.endTime).toISOString() },
            locked: locks === undefined ? undefined : locks.length > 0,
        };
    }

    stackFile(name: string): string {
        return path.join(this.dir, stackSettingsFile(name));
    }

    /** The stack file's text; empty for a stack without one. */
    readStackFile(name: string): string {
        try {
            return readFileSync(this.stackFile(name), "utf8");
        } catch {
            return "";
        }
    }

    /**
     * The stack's outputs, from its exported state: one `pulumi` run where `Stack.outputs()` takes
     * two (it reads the outputs, then again with their secrets).
     */
    async outputs(name: string): Promise<Record<string, unknown>> {
        const state = (await (await this.stack(name)).exportStack()) as { deployment?: { resources?: { type: string; outputs?: Record<string, unknown> }[] } };
        return (state.deployment?.resources ?? []).find((r) => r.type === STACK_TYPE)?.outputs ?? {};
    }

    /** Live traffic only (the trafficSplit output). */
    async live(name: string): Promise<Weights | undefined> {
        return (await this.outputs(name)).trafficSplit as Weights | undefined;
    }

    /** Sets (or removes) the two switch keys, as `pulumi config set` / `pulumi config rm` would. */
    async applyConfig(name: string, current: SwitchConfig, next: SwitchConfig): Promise<void> {
        const stack = await this.stack(name);
        for (const key of SWITCH_KEYS) {
            const value = next[key];
            if (value === current[key]) continue;
            if (value === undefined) await stack.removeConfig(namespacedKey(this.project, key));
            else await stack.setConfig(namespacedKey(this.project, key), { value, secret: false });
        }
    }
}

/**
 * The program's own refusal (config/, the rules `pulumi up` applies) of the config a
 * switch to `target` would give this stack, if any: an unknown version, weights that do not sum to
 * 100, ... Checked for every stack before the first one is touched.
 */
export function refusal(view: StackView, target: Target): string | undefined {
    if (view.live === undefined) return `stack ${view.name} has never been deployed (no outputs); run pulumi up on it first`;
    const next = switchConfig(target, view.config);
    try {
        parseSettings({ ...view.raw, activeVersion: next.activeVersion, trafficSplit: next.trafficSplit }, view.secretKeys, {
            live: Object.keys(view.live),
            versions: view.versions,
        });
    } catch (err) {
        if (err instanceof ConfigError) return `stack ${view.name}: ${err.message} Nothing was changed.`;
        throw err;
    }
    return undefined;
}

/** Engine events of one stack, as progress: the step it is at, its gate's lines, its errors. */
class EngineListener {
    readonly errors: string[] = [];
    /** The `pulumi` in flight said it is cancelling (it received the terminal's Ctrl-C itself). */
    cancelling = false;

    constructor(
        private readonly stack: string,
        private readonly progress: PlanProgress,
        private readonly label: string,
    ) {}

    readonly onEvent = (event: EngineEvent): void => {
        const pre = event.resourcePreEvent;
        if (pre !== undefined && pre.planning !== true && changes(pre.metadata)) {
            this.progress.step(this.stack, `${this.label}: ${pre.metadata.op} ${resourceName(pre.metadata.urn)}`);
        }
        const done = event.resOutputsEvent;
        if (done !== undefined && done.planning !== true && changes(done.metadata)) {
            this.progress.line(this.stack, `${done.metadata.op} ${resourceName(done.metadata.urn)}: done`);
        }
        const stdout = event.stdoutEvent?.message ?? "";
        if (/(\^C|SIGTERM) received/.test(stdout)) this.cancelling = true;
        const diagnostic = event.diagnosticEvent;
        // Debug diagnostics (the SDK's RPC traces) are left out, as the CLI leaves them out.
        if (diagnostic !== undefined && diagnostic.ephemeral !== true && SHOWN_SEVERITIES.includes(diagnostic.severity)) {
            const lines = diagnostic.message.split("\n").map((l) => l.trim()).filter((l) => l !== "");
            if (diagnostic.severity === "error") this.errors.push(...lines);
            for (const line of lines) this.progress.line(this.stack, diagnostic.severity === "error" ? `error: ${line}` : line);
        }
    };

    /** The one line that says why the operation failed. */
    reason(err: unknown): StackError {
        const detail = String((err as Error).message ?? err);
        // The engine's own errors (the gate, the program's refusals) come first; the CLI's (a lock,
        // a missing stack) are only in its stderr.
        const engine = this.errors.map((l) => l.replace(/^(Error: )+/, "")).find((l) => !/^update failed$|^preview failed$|^an unhandled error occurred/i.test(l));
        const cli = /^error: (.*)$/m.exec(detail)?.[1];
        return new StackError(engine ?? cli ?? detail.split("\n").find((l) => l.trim() !== "") ?? "failed", detail);
    }
}

/** A step that changes a resource (providers left out, as the CLI's summary leaves them out). */
function changes(step: { op: string; type: string }): boolean {
    return !["same", "read"].includes(step.op) && !step.type.startsWith("pulumi:providers:");
}

/** "VirtualService cowsay-route" from a URN. */
function resourceName(urn: string): string {
    const [, type = "", name = ""] = /::([^:]*(?::[^:]*)*)::([^:]*)$/.exec(urn) ?? [];
    return `${type.split(":").pop() ?? type} ${name}`.trim();
}

/**
 * An AbortSignal for one operation that follows `outer` (the fleet's Ctrl-C) unless the operation's
 * `pulumi` has said it is cancelling already (see CANCEL_GRACE_MS). A stop after another operation's
 * failure (StoppedAfterFailure) reached no `pulumi` from the terminal: it is forwarded at once, so
 * that the rollback which follows does not share the machine with a check nobody waits for.
 */
export function forwardCancel(outer: AbortSignal | undefined, listener: { readonly cancelling: boolean }, graceMs = CANCEL_GRACE_MS): { signal: AbortSignal | undefined; dispose(): void } {
    if (outer === undefined) return { signal: undefined, dispose: () => undefined };
    const inner = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
        if (outer.reason instanceof StoppedAfterFailure) {
            inner.abort();
            return;
        }
        timer = setTimeout(() => {
            if (!listener.cancelling) inner.abort();
        }, graceMs);
    };
    if (outer.aborted) inner.abort();
    else outer.addEventListener("abort", onAbort, { once: true });
    return {
        signal: inner.signal,
        dispose: () => {
            clearTimeout(timer);
            outer.removeEventListener("abort", onAbort);
        },
    };
}

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
        await this.fleet.applyConfig(name, before, next);
        const view = this.views.get(name);
        if (view !== undefined) this.settings.set(name, parseSettings({ ...view.raw, ...next }, view.secretKeys));
        const verb = this.record.rollout === undefined ? "switch" : "rollout";
        const { routes, live } = await this.up(name, `fleet ${verb} ${this.record.id}: ${describeTarget(target)}`, "switching", signal);
        if (routes.length > 0) this.routes.set(name, routes);
        this.justUpdated.set(name, live);
    }

    /** Back to the recorded config, with one `pulumi up` (the program's gate trusts the version it returns to). */
    async rollback(name: string): Promise<void> {
        const current = stackFileConfig(this.fleet.readStackFile(name), this.fleet.project);
        await this.fleet.applyConfig(name, current, this.record.stacks[name].config);
        const message = `fleet rollback ${this.record.id}`;
        // A file backend shows its locks: a stale one is removed before the update, which would
        // otherwise start its program only to fail on the lock (about 6 s of a killed fleet's recovery).
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
        if (!sameWeights(outputs.value, expected)) throw new Error(`its outputs say the live route sends ${describeWeights(outputs.value)}, not ${describeWeights(expected)}`);
        if (drift.status === "rejected") throw drift.reason;
        if (drift.value.length > 0) {
            throw new Error(`its live route on the cluster is not what pulumi up applied (${drift.value.join(", ")} changed; pulumi refresh --diff --stack ${name} shows how)`);
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
                    if (step !== undefined && urns.includes(step.urn) && step.op !== "same" && step.op !== "read" && (step.op !== "refresh" || (step.diffs ?? []).length > 0)) {
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
                    // The stack's outputs as this update registered them (secrets masked).
                    const done = event.resOutputsEvent?.metadata;
                    if (done?.type === STACK_TYPE) outputs = done.new?.outputs ?? {};
                },
            });
        } catch (err) {
            throw listener.reason(err);
        } finally {
            cancel.dispose();
        }
        // A secret trafficSplit is masked in the events: read it back from the state then.
        const live = outputs.trafficSplit === undefined || outputs.trafficSplit === "[secret]" ? await this.fleet.live(name) : (outputs.trafficSplit as Weights);
        return { routes: [...routes], live };
    }
}

/**
 * The stack, for one `up` that does not read the stack back afterwards. `Stack.up` ends with
 * `this.outputs()` and `this.info()`: three more `pulumi` runs (the outputs twice, masked and with
 * their secrets, then the last history entry), about a second per stack and wave, in the critical
 * path of every wave; the fleet has the outputs from the update's own events and never uses the
 * summary. Should the SDK stop calling them, these are simply unused.
 */
function withoutReadBack(stack: Stack): Stack {
    return Object.create(stack, {
        outputs: { value: () => Promise.resolve({}) },
        info: { value: () => Promise.resolve(undefined) },
    }) as Stack;
}

/** One stack's plan in a fleet preview. */
export interface StackPlan {
    readonly stack: string;
    readonly live: Weights | undefined;
    /** Resources the update would change: op and "Type name". */
    readonly steps: readonly { op: string; resource: string }[];
    /** `pulumi preview --diff` as printed. */
    readonly diff: string;
    readonly error?: string;
}

/**
 * `pulumi preview --diff` of one stack with the config a switch to `target` would give it (or its
 * config as it is). The preview runs on a copy of the stack file (--config-file): the stack's own
 * file is never written, so it stays byte for byte as it was, whatever happens to this process.
 */
export async function previewStack(fleet: FleetWorkspace, view: StackView, target: Target | undefined, progress: PlanProgress, signal: AbortSignal): Promise<StackPlan> {
    const stack = await fleet.stack(view.name);
    const file = fleet.stackFile(view.name);
    const text = fleet.readStackFile(view.name);
    const copyDir = mkdtempSync(path.join(tmpdir(), "fleet-preview-"));
    const copy = path.join(copyDir, path.basename(file));
    writeFileSync(copy, target === undefined ? text : withSwitchConfig(text, fleet.project, switchConfig(target, view.config)));
    const listener = new EngineListener(view.name, progress, "previewing");
    const steps: { op: string; resource: string }[] = [];
    const cancel = forwardCancel(signal, listener);
    try {
        progress.step(view.name, "previewing");
        progress.line(view.name, `previewing ${target === undefined ? "its config as it is" : `a switch to ${describeTarget(target)}`}`);
        const result = await stack.preview({
            configFile: copy,
            diff: true,
            color: "never",
            signal: cancel.signal,
            onEvent: (event) => {
                listener.onEvent(event);
                const step = event.resourcePreEvent?.metadata;
                if (step !== undefined && changes(step)) steps.push({ op: step.op, resource: resourceName(step.urn) });
            },
        });
        progress.step(view.name, "previewed");
        return { stack: view.name, live: view.live, steps, diff: result.stdout };
    } catch (err) {
        progress.step(view.name, "preview failed");
        return { stack: view.name, live: view.live, steps, diff: "", error: listener.reason(err).message };
    } finally {
        cancel.dispose();
        rmSync(copyDir, { recursive: true, force: true });
    }
}
