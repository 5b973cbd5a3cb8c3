// The fleet's view of this project's stacks through Pulumi's Automation API (a LocalWorkspace, which
// drives the `pulumi` CLI on PATH, so the offline engine works too): which stacks exist, each
// stack's config, outputs, last update and locks as one StackView, its stack file, and the two
// config keys a switch sets, written into the stack file as `pulumi config set` would.
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";

import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";

import type { RawConfig } from "../config";
import { projectConfig, stackSettingsFile } from "../lib/stack-config";
import { fileBackendLocks, type LockHolder } from "./locks";
import { existingStack, exportedOutputs, withoutSelection } from "./sdk";
import { stackFileConfig, withSwitchConfig, type SwitchConfig, type Weights } from "./target";

/** The Kubernetes provider's key that makes it write YAML files instead of reaching a cluster. */
export const RENDER_YAML_KEY = "kubernetes:renderYamlToDirectory";

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
    /** Where its Kubernetes provider renders YAML (RENDER_YAML_KEY) instead of reaching a cluster; undefined: it reaches one. */
    readonly renderYamlTo?: string;
}

export class FleetWorkspace {
    private readonly stacks = new Map<string, Stack>();
    /** The workspace without stack selection (fleet/sdk.ts, withoutSelection says why). */
    private readonly unselecting: LocalWorkspace;

    private constructor(
        readonly dir: string,
        readonly workspace: LocalWorkspace,
        readonly project: string,
        /** Every stack of this project in the backend. */
        readonly stackNames: readonly string[],
        private readonly backendUrl: string | undefined,
    ) {
        this.unselecting = withoutSelection(workspace);
    }

    static async open(dir: string): Promise<FleetWorkspace> {
        // PULUMI_SKIP_CONFIRMATIONS=true (set in many CI environments) acts as --yes, which the CLI
        // refuses with the --preview-only of a refresh preview; the Automation API passes --yes itself
        // where an update needs it.
        const workspace = await LocalWorkspace.create({ workDir: dir, envVars: { PULUMI_SKIP_CONFIRMATIONS: "false" } });
        const project = (await workspace.projectSettings()).name;
        const [stacks, whoami] = await Promise.all([workspace.listStacks(), workspace.whoAmI()]);
        return new FleetWorkspace(
            dir,
            workspace,
            project,
            stacks.map((s) => s.name),
            whoami.url,
        );
    }

    /** One of the project's stacks (named in the fleet file, so known to exist). */
    async stack(name: string): Promise<Stack> {
        let stack = this.stacks.get(name);
        if (stack === undefined) {
            stack = await existingStack(name, this.unselecting);
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
                    : {
                          kind: last.kind,
                          result: last.result,
                          startedAt: new Date(last.startTime).toISOString(),
                          endedAt: last.endTime === undefined ? undefined : new Date(last.endTime).toISOString(),
                      },
            locked: locks === undefined ? undefined : locks.length > 0,
            renderYamlTo: config[RENDER_YAML_KEY]?.value,
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

    /** The stack's outputs, from its exported state (fleet/sdk.ts, exportedOutputs says why). */
    async outputs(name: string): Promise<Record<string, unknown>> {
        return exportedOutputs(await this.stack(name));
    }

    /** Live traffic only (the trafficSplit output). */
    async live(name: string): Promise<Weights | undefined> {
        return (await this.outputs(name)).trafficSplit as Weights | undefined;
    }

    /**
     * Sets (or removes) the two switch keys in the stack file, as `pulumi config set` / `pulumi config
     * rm` would; a file that already says `next` is not written. Written here rather than through the
     * CLI: the fleet reads the switch keys from this file (stackFileConfig), and a rollback's `config
     * rm` was a CLI start of its own (0.19 s traced) on the way to the route back.
     */
    applyConfig(name: string, next: SwitchConfig): Promise<void> {
        const text = this.readStackFile(name);
        const switched = withSwitchConfig(text, this.project, next);
        if (switched !== text) replaceFile(this.stackFile(name), switched);
        return Promise.resolve();
    }
}

/**
 * Replaces a file's text through a temporary file renamed over it, so that a fleet killed meanwhile
 * leaves the old file or the new one, never half of one; the file keeps its mode (a stack file made
 * private stays private), and a failed write removes the temporary file.
 */
export function replaceFile(file: string, text: string): void {
    const temporary = `${file}.fleet-${process.pid}.tmp`;
    let mode: number | undefined;
    try {
        mode = statSync(file).mode & 0o7777;
    } catch {
        mode = undefined; // a stack without a file yet: the default mode, as `pulumi config set` gives
    }
    try {
        writeFileSync(temporary, text, { mode });
        renameSync(temporary, file);
    } catch (err) {
        rmSync(temporary, { force: true });
        throw err;
    }
}
