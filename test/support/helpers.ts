// Shared test helpers: run the program as it is (index.ts) under Pulumi mocks with a given stack
// config, and hand back every resource it registered, its stack outputs, or the error it threw.
import * as path from "node:path";

import * as pulumi from "@pulumi/pulumi";

import { configKey, PROJECT, ROOT } from "./constants";

/** Where tsc put the program (tsconfig's outDir): the mocks run the compiled index.js, as Pulumi would. */
const COMPILED = path.join(ROOT, "bin");

/** A resource as the program registered it. */
export interface Registered {
    readonly type: string;
    readonly name: string;
    readonly inputs: Record<string, unknown>;
    readonly custom: boolean;
    /** `type::name` of every resource this one waits for (dependsOn and inputs), as sent to the engine. */
    readonly dependsOn: string[];
}

export interface Run {
    readonly resources: Registered[];
    readonly outputs: Record<string, unknown>;
    readonly error?: Error;
    /** Registrations that failed asynchronously (a failing resource and what waited on it). */
    readonly failures: string[];
}

// Mock boundary: resource inputs arrive untyped from the engine interface.
/* eslint-disable @typescript-eslint/no-explicit-any */
class RecordingMocks implements pulumi.runtime.Mocks {
    constructor(
        private readonly fails: (type: string, name: string) => boolean,
        /** The stack's outputs from its last update, as its StackReference to itself reads them. */
        private readonly previousOutputs: Record<string, unknown>,
    ) {}

    readonly resources: Registered[] = [];
    /** Dependencies per `type::name`, taken from the register requests (mocks do not see them). */
    readonly dependencies = new Map<string, string[]>();

    newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, any> } {
        if (args.type === "pulumi:pulumi:StackReference") {
            // A read of the stack's own last outputs, not a resource the program creates.
            return { id: args.name, state: { name: args.name, outputs: this.previousOutputs, secretOutputNames: [] } };
        }
        if (this.fails(args.type, args.name)) throw new Error(`mock failure of ${args.type} ${args.name}`);
        const dependsOn = this.dependencies.get(`${args.type}::${args.name}`) ?? [];
        this.resources.push({ type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? true, dependsOn });
        // A Helm release reports what Helm installed, as the provider does: the release's name (the
        // one asked for, or the resource's), its namespace and its first revision.
        if (args.type === RELEASE) {
            const inputs = args.inputs as { name?: string; namespace?: string };
            return {
                id: `${args.name}-id`,
                state: { ...args.inputs, status: { name: inputs.name ?? args.name, namespace: inputs.namespace, revision: 1, status: "deployed" } },
            };
        }
        return { id: `${args.name}-id`, state: args.inputs };
    }

    /** Wraps the mock monitor so each register request's dependencies are recorded first. */
    recordDependencies(monitor: any): void {
        const register = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req: any, callback: unknown) => {
            // A URN ends in `<type>::<name>`; keep that part.
            const deps = (req.getDependenciesList() as string[]).map((urn) => {
                const parts = urn.split("::");
                const type = parts[parts.length - 2].split("$").pop() as string;
                return `${type}::${parts[parts.length - 1]}`;
            });
            this.dependencies.set(`${req.getType()}::${req.getName()}`, deps);
            return register(req, callback);
        };
    }

    call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
        return args.inputs;
    }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The program's own compiled modules in Node's module cache: what a run loaded, not the tests or node_modules. */
function loadedProgramFiles(): string[] {
    return Object.keys(require.cache).filter(
        (file) => file.startsWith(COMPILED + path.sep) && !file.includes(`${path.sep}node_modules${path.sep}`) && !file.includes(`${path.sep}test${path.sep}`),
    );
}

/** The modules the last runProgram loaded, relative to the compiled tree (`index.js`, `lib/image.js`, ...). */
export function programModules(): string[] {
    return loadedProgramFiles().map((file) => path.relative(COMPILED, file));
}

/** Forgets the program's modules so the next require evaluates it again with new config. */
function unloadProgram(): void {
    for (const file of loadedProgramFiles()) delete require.cache[file];
}

/** Resolves every Output in a stack export (mocks make them all known); secrets are marked. */
async function unwrap(value: unknown): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) {
        const secret = await pulumi.isSecret(value);
        const plain = await new Promise((resolve) => value.apply((v) => resolve(v)));
        return secret ? { secret: plain } : plain;
    }
    return value;
}

/**
 * Runs the program with `config` (keys without the project prefix; objects as JSON strings) and
 * waits until every registration has reached the mocks.
 */
export async function runProgram(
    config: Record<string, string>,
    options: {
        preview?: boolean;
        fails?: (type: string, name: string) => boolean;
        /** Outputs of the stack's last update (default: none, a new stack). */
        previousOutputs?: Record<string, unknown>;
        /** Keys (without the project prefix) whose values the stack stores as secrets. */
        secretKeys?: string[];
    } = {},
): Promise<Run> {
    const mocks = new RecordingMocks(options.fails ?? (() => false), options.previousOutputs ?? {});
    // A failed registration rejects the promises of everything that waited on it; the engine
    // would report them, here they are collected.
    const failures: string[] = [];
    const onRejection = (reason: unknown) => failures.push(reason instanceof Error ? reason.message : String(reason));
    // The test runner's own listener would blame the test for them; it is restored below.
    const runnerListeners = process.listeners("unhandledRejection");
    process.removeAllListeners("unhandledRejection");
    process.on("unhandledRejection", onRejection);
    await pulumi.runtime.setMocks(mocks, PROJECT, "test", options.preview ?? false, "organization");
    mocks.recordDependencies(pulumi.runtime.getMonitor());
    pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [configKey(k), v])), (options.secretKeys ?? []).map(configKey));
    unloadProgram();
    let program: Record<string, unknown> = {};
    let error: Error | undefined;
    try {
        // The program is imported and run as Pulumi runs it; a refusal surfaces here.
        const main = require(path.join(COMPILED, "index")) as () => Promise<Record<string, unknown>>;
        program = await main();
    } catch (err) {
        error = err as Error;
    }
    const outputs: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(program)) {
        // After a failure, outputs that wait for a failed resource never resolve: so they say.
        outputs[key] =
            options.fails === undefined ? await unwrap(value) : await Promise.race([unwrap(value).catch(() => UNRESOLVED), settleAfter(200, UNRESOLVED)]);
    }
    // Let every pending registration reach the mocks before anyone looks at them.
    await waitForQuiet(mocks);
    if (options.fails !== undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    process.off("unhandledRejection", onRejection);
    for (const listener of runnerListeners) process.on("unhandledRejection", listener);
    if (options.fails === undefined && failures.length > 0) throw new Error(`registrations failed: ${failures.join("; ")}`);
    return { resources: mocks.resources, outputs, error, failures };
}

/** What an output that never resolved reads as (see runProgram's `fails`). */
export const UNRESOLVED = Symbol("unresolved");

function settleAfter<T>(ms: number, value: T): Promise<T> {
    return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

async function waitForQuiet(mocks: RecordingMocks): Promise<void> {
    let seen = -1;
    while (seen !== mocks.resources.length) {
        seen = mocks.resources.length;
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}

/** The single resource of `type` whose Kubernetes name is `name` (or the only one of that type). */
export function find(run: Run, type: string, name?: string): Registered {
    const matches = run.resources.filter((r) => r.type === type && (name === undefined || metadataOf(r).name === name));
    if (matches.length !== 1) {
        throw new Error(`expected one ${type}${name === undefined ? "" : ` named ${name}`}, found ${matches.length}`);
    }
    return matches[0];
}

export function ofType(run: Run, type: string): Registered[] {
    return run.resources.filter((r) => r.type === type);
}

/** A spec as the tests read it: untyped, from the mock boundary. */
export type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const spec = (r: Registered): Spec => r.inputs.spec as Spec;

/** The labels a Deployment puts on its pods. */
export const podLabels = (d: Registered): Record<string, string> => spec(d).template.metadata.labels;

/** Whether a non-empty label selector matches the labels. */
export const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
    Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

export function metadataOf(r: Registered): { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } {
    return r.inputs.metadata ?? {};
}

/** Kubernetes objects the program emits: custom resources of the kubernetes provider. */
export function kubernetesObjects(run: Run): Registered[] {
    return run.resources.filter((r) => r.type.startsWith("kubernetes:") && r.custom && r.type !== "kubernetes:helm.sh/v3:Release");
}

/** A stable key for comparing resources across two runs. */
export function keyOf(r: Registered): string {
    return `${r.type}::${r.name}`;
}

/** Compact form of the resources for equality checks. */
export function byKey(run: Run): Map<string, string> {
    return new Map(run.resources.map((r) => [keyOf(r), JSON.stringify(r.inputs)]));
}

export const VS = "kubernetes:networking.istio.io/v1:VirtualService";
export const DR = "kubernetes:networking.istio.io/v1:DestinationRule";
export const GW = "kubernetes:networking.istio.io/v1:Gateway";
export const K8S_GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway";
export const HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute";
export const DEPLOYMENT = "kubernetes:apps/v1:Deployment";
export const SERVICE = "kubernetes:core/v1:Service";
export const RELEASE = "kubernetes:helm.sh/v3:Release";
