// Drives the real Pulumi CLI against a copy of the program, with a local file backend and the
// Kubernetes provider rendering YAML to a directory (no cluster). Shared by the end-to-end tests
// and the engine benchmark. Needs `pulumi` on PATH: `eval "$(scripts/engine.sh env)"` or a real CLI.
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

import { parseAllDocuments, parseDocument } from "yaml";

import { namespacedKey, projectKey, stackSettingsFile } from "../../lib/stack-config";
import { ROOT } from "./constants";
import { runCommand, runUntil, type CommandResult, type RunningCommand } from "./processes";

import type { KubeObject } from "./gateway";

export { ROOT };
/** The program's folders: every module index.ts loads lives in one of them (test/program.test.ts checks it). */
export const PROGRAM_DIRS = ["components", "config", "dynamic", "lib"];
/** What a copy of the program needs to run: the project files, not the tests. */
export const PROGRAM_FILES = [
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    "index.ts",
    "compile-cache.cjs",
    ...PROGRAM_DIRS,
    "package.json",
    "tsconfig.json",
    "versions.json",
];

/**
 * An EngineStack's environment (`env`) that runs the program as a user's pulumi does, type-checked:
 * for the demo and the benchmarks, which show what a user gets. The tests only transpile (below).
 */
export const TYPE_CHECKED: Readonly<Record<string, string>> = { PULUMI_NODEJS_TRANSPILE_ONLY: "false" };

export interface PreviewStep {
    readonly op: string;
    readonly urn: string;
}

/** Fails with the command's own output, which is what a person debugging it needs. */
export class CommandError extends Error {
    constructor(
        readonly args: readonly string[],
        readonly result: CommandResult,
    ) {
        super(`pulumi ${args.join(" ")} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
    }
}

export function pulumiOnPath(): boolean {
    return (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
        try {
            return statSync(path.join(dir, "pulumi")).isFile();
        } catch {
            return false;
        }
    });
}

/** For an e2e suite's `before`: a missing engine is a failure, never a skip (CI must run the suite). */
export function requirePulumi(): void {
    if (!pulumiOnPath()) throw new Error('no pulumi on PATH: run `eval "$(scripts/engine.sh env)"` first (docs/engine.md)');
}

export interface StackOptions {
    /** Project config (keys without the project prefix). */
    readonly config: Record<string, string>;
    /**
     * Run the JavaScript `npm run build` wrote to bin/ instead of index.ts (only the benchmark
     * compares this; users run index.ts).
     */
    readonly prebuilt?: boolean;
    /** Files to use instead of the program's own (relative path -> content), e.g. a floor program. */
    readonly files?: Record<string, string>;
    /** Extra environment for every pulumi command (a PATH here goes after Node 24's). */
    readonly env?: NodeJS.ProcessEnv;
    /**
     * Render YAML to a directory (the default), or talk to the cluster the environment's KUBECONFIG
     * points at.
     */
    readonly target?: "render" | "cluster";
}

/** A stack's config as its stack file holds it (keys with their prefix). */
type StackFileConfig = Record<string, unknown>;

/** A stack's config and state at one moment. */
interface StackMark {
    readonly config: string;
    readonly checkpoint: string;
}

/** One project directory, one stack, one state backend, one render directory, all temporary. */
export class EngineStack {
    readonly dir: string;
    readonly renderDir: string;
    readonly target: "render" | "cluster";
    /** The environment every pulumi command (and every README block) runs with. */
    readonly env: NodeJS.ProcessEnv;
    /** The project's name (Pulumi.yaml), which prefixes its config keys. */
    readonly project: string;
    /** The stack `create` made; deploy() and configure() work on it. */
    private readonly stackName = "e2e";
    /** The config `create` was given: what deploy() starts from. */
    private readonly baseConfig: Record<string, string>;
    /** The stack's config and state right after each successful up(), oldest first (see deploy). */
    private readonly ups: StackMark[] = [];
    /** Places remember() named. */
    private readonly places = new Map<string, StackMark>();

    private constructor(
        readonly root: string,
        options: StackOptions,
    ) {
        this.dir = path.join(root, "project");
        this.renderDir = path.join(root, "rendered");
        const state = path.join(root, "state");
        mkdirSync(this.dir);
        mkdirSync(state);
        if (options.files === undefined) {
            this.useCurrentProgram();
            if (options.prebuilt === true) {
                for (const file of ["index.js", ...PROGRAM_DIRS, "versions.json"].map((f) => path.join("bin", f)))
                    cpSync(path.join(ROOT, file), path.join(this.dir, file), { recursive: true });
                const project = readFileSync(path.join(this.dir, "Pulumi.yaml"), "utf8").replace(/^runtime:$/m, "main: bin/index.js\nruntime:");
                writeFileSync(
                    path.join(this.dir, "Pulumi.yaml"),
                    project.replace(/^    packagemanager: npm$/m, "    packagemanager: npm\n    typescript: false"),
                );
            }
        } else {
            this.useProgram(options.files);
        }
        symlinkSync(path.join(ROOT, "node_modules"), path.join(this.dir, "node_modules"));
        this.project = (parseDocument(readFileSync(path.join(this.dir, "Pulumi.yaml"), "utf8")).toJS() as { name: string }).name;
        this.baseConfig = options.config;
        this.target = options.target ?? "render";
        this.env = {
            ...process.env,
            // ts-node keys its compile cache by the compiler options, which hold the project's
            // absolute paths: the first pulumi command in each new project directory type-checked the
            // whole program again (about three times the CPU: docs/testing.md, npm run bench:pulumi-cpu). The tests'
            // `npm run build` (tsc, the same tsconfig) has type-checked these files already, so here
            // ts-node only strips the types. A caller showing what a user gets passes TYPE_CHECKED.
            PULUMI_NODEJS_TRANSPILE_ONLY: "true",
            ...options.env,
            // Node 24 (from npm ci) for the program, whatever node the caller runs on.
            PATH: [path.join(ROOT, "node_modules", ".bin"), options.env?.PATH ?? process.env.PATH ?? ""].join(path.delimiter),
            PULUMI_BACKEND_URL: `file://${state}`,
            PULUMI_CONFIG_PASSPHRASE: "e2e-only-passphrase",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_SKIP_CONFIRMATIONS: "true",
            // Every pulumi command starts Node at least once (the program, each dynamic provider) and
            // loads the same modules: Node's on-disk compile cache spares about an eighth of a command's
            // CPU (npm run bench:pulumi-cpu), and the suites are mostly CPU (docs/testing.md).
            NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? path.join(tmpdir(), "node-compile-cache"),
            NO_COLOR: "1",
        };
    }

    /** A copy of the project with its own state backend, and no stack yet. */
    static project(options: StackOptions): EngineStack {
        return new EngineStack(mkdtempSync(path.join(tmpdir(), "cowsay-e2e-")), options);
    }

    /**
     * A new stack `e2e` rendering to its own directory, with `config` set. The config is written into
     * the stack file directly, as `pulumi config set` would write it (plain values), a command less per
     * key; the tests that are about `pulumi config` run it themselves.
     */
    static async create(options: StackOptions): Promise<EngineStack> {
        const stack = EngineStack.project(options);
        await stack.pulumi("stack", "init", stack.stackName);
        stack.writeStackConfig(stack.stackName, {
            ...(stack.target === "render" ? { "kubernetes:renderYamlToDirectory": stack.renderDir } : {}),
            ...Object.fromEntries(Object.entries(options.config).map(([key, value]) => [namespacedKey(stack.project, key), value])),
        });
        return stack;
    }

    private stackFile(stack = this.stackName): string {
        return path.join(this.dir, stackSettingsFile(stack));
    }

    /**
     * Adds config to named stack files (stack name -> keys with their prefix -> value), before or
     * after `pulumi stack init`, keeping what the file holds (the README's stacks get their render
     * directory this way, in the example stack file the program ships too).
     */
    writeStackFiles(files: Record<string, Record<string, string>>): void {
        for (const [stack, config] of Object.entries(files)) this.writeStackConfig(stack, config);
    }

    /** Sets (a string) or removes (undefined) keys of a stack file's config, keeping the rest of the file. */
    private writeStackConfig(stack: string, config: Record<string, string | undefined>): void {
        const file = this.stackFile(stack);
        const doc = parseDocument(existsSync(file) ? readFileSync(file, "utf8") : "");
        if (!doc.has("config")) doc.set("config", doc.createNode({}));
        for (const [key, value] of Object.entries(config)) {
            if (value === undefined) doc.deleteIn(["config", key]);
            else doc.setIn(["config", key], value);
        }
        writeFileSync(file, String(doc));
    }

    /** The stack file's config (keys with their prefix): strings, objects set with --path, `{ secure }` secrets. */
    private stackConfig(): StackFileConfig {
        const file = this.stackFile();
        return existsSync(file) ? ((parseDocument(readFileSync(file, "utf8")).toJS() as { config?: StackFileConfig } | null)?.config ?? {}) : {};
    }

    /**
     * The stack's config once configure(changes) has run: what `create` was given with `changes` on
     * top (undefined removes a key), every other key of the project removed, other keys kept.
     */
    private configAfter(changes: Record<string, string | undefined>): StackFileConfig {
        const wanted: Record<string, string | undefined> = { ...this.baseConfig, ...changes };
        const config: StackFileConfig = Object.fromEntries(
            Object.entries(this.stackConfig()).filter(([fullKey]) => {
                const key = projectKey(this.project, fullKey);
                return key === undefined || wanted[key] !== undefined;
            }),
        );
        for (const [key, value] of Object.entries(wanted)) if (value !== undefined) config[namespacedKey(this.project, key)] = value;
        return config;
    }

    /**
     * Sets the stack's config to configAfter(changes): whatever an earlier test left, a test that
     * calls this starts from the config it names. Only a file that differs is written.
     */
    configure(changes: Record<string, string | undefined> = {}): void {
        const current = this.stackConfig();
        const wanted = this.configAfter(changes);
        const edits: Record<string, string | undefined> = {};
        for (const key of Object.keys(current)) if (!(key in wanted)) edits[key] = undefined;
        for (const [key, value] of Object.entries(wanted)) if (current[key] !== value) edits[key] = value as string;
        if (Object.keys(edits).length > 0) this.writeStackConfig(this.stackName, edits);
    }

    /**
     * A test's fixture: the stack deployed with each of `steps` in turn (configure, then up; with no
     * steps, the base config), so that it ends in the state the last step names and has the history
     * the earlier ones give it (a rollback is a switch back to the version live before).
     * Steps that the last successful up()s already took, with nothing changed since (no other
     * update, refresh, killed run or README block), are not run again: a test that follows the one
     * that got the stack there starts at once; a test run alone runs them all.
     */
    async deploy(...steps: Record<string, string | undefined>[]): Promise<void> {
        const path = steps.length === 0 ? [{}] : steps;
        const targets = path.map((step) => canonical(this.configAfter(step)));
        const unchanged = this.ups.length > 0 && this.ups[this.ups.length - 1].checkpoint === this.checkpoint();
        // The longest start of the path that the last ups took, in order, ending with the newest.
        let done = 0;
        if (unchanged) {
            for (let k = Math.min(targets.length, this.ups.length); k > 0 && done === 0; k--) {
                const recent = this.ups.slice(-k);
                if (recent.every((up, i) => up.config === targets[i])) done = k;
            }
        }
        if (done === path.length) {
            this.configure(path[path.length - 1]);
            return;
        }
        for (const step of path.slice(done)) {
            this.configure(step);
            await this.up();
        }
    }

    /** The stack's config and state now, to tell later whether anything changed since. */
    private mark(): StackMark {
        return { config: canonical(this.stackConfig()), checkpoint: this.checkpoint() };
    }

    private isAt(mark: StackMark): boolean {
        const now = this.mark();
        return now.config === mark.config && now.checkpoint === mark.checkpoint;
    }

    /**
     * Names where the stack is now (its config and state), for a later reach(name): a test that
     * ends where the next one starts says so, and the next one starts at once.
     */
    remember(name: string): void {
        this.places.set(name, this.mark());
    }

    /**
     * A test's fixture for a state deploy() cannot name (a failed switch, an update with --exclude):
     * runs `steps` to get there, unless the stack is still exactly where remember(name) saw it.
     */
    async reach(name: string, steps: () => Promise<void>): Promise<void> {
        const place = this.places.get(name);
        if (place !== undefined && this.isAt(place)) return;
        await steps();
        this.remember(name);
    }

    /**
     * The stack's state as the file backend holds it, without what changes on every write (times,
     * the manifest): equal checkpoints mean no update changed anything in between.
     */
    private checkpoint(): string {
        const file = path.join(this.root, "state", ".pulumi", "stacks", this.project, `${this.stackName}.json`);
        if (!existsSync(file)) return "";
        const saved = JSON.parse(readFileSync(file, "utf8")) as { checkpoint?: { latest?: { manifest?: unknown; resources?: Record<string, unknown>[] } } };
        const latest = saved.checkpoint?.latest ?? {};
        const resources = (latest.resources ?? []).map(({ created: _c, modified: _m, ...rest }) => rest);
        return JSON.stringify({ ...latest, manifest: undefined, resources });
    }

    /** Starts `pulumi args...` in the project and resolves once its output matches `line` (see runUntil). */
    runUntil(line: RegExp, ...args: string[]): Promise<RunningCommand> {
        return runUntil("pulumi", args, { cwd: this.dir, env: this.env }, line);
    }

    /** Puts the program as it is in the tree in the project, in place of the one there (an older one); the stack and its config stay. */
    useCurrentProgram(): void {
        for (const file of PROGRAM_FILES) {
            rmSync(path.join(this.dir, file), { recursive: true, force: true });
            if (existsSync(path.join(ROOT, file))) cpSync(path.join(ROOT, file), path.join(this.dir, file), { recursive: true });
        }
    }

    /** Puts `files` (path -> content, e.g. the program at an older commit) in the project in place of the program there; the stack and its config stay. */
    useProgram(files: Record<string, string>): void {
        for (const file of PROGRAM_FILES) rmSync(path.join(this.dir, file), { recursive: true, force: true });
        for (const [file, content] of Object.entries(files)) {
            mkdirSync(path.dirname(path.join(this.dir, file)), { recursive: true });
            writeFileSync(path.join(this.dir, file), content);
        }
    }

    /** Runs `pulumi args...` in the project; resolves with the result, never rejects. */
    run(...args: string[]): Promise<CommandResult> {
        return runCommand("pulumi", args, { cwd: this.dir, env: this.env });
    }

    /** Runs `pulumi args...` and rejects with its output unless it exits 0. */
    async pulumi(...args: string[]): Promise<CommandResult> {
        const result = await this.run(...args);
        if (result.code !== 0) throw new CommandError(args, result);
        return result;
    }

    /** `pulumi up` that is meant to fail here: rejects if it succeeds, resolves with its output. */
    async upFails(): Promise<string> {
        const up = await this.run("up", "--yes", "--skip-preview", "--non-interactive");
        if (up.code === 0) throw new Error(`pulumi up succeeded; it must fail here:\n${up.stdout}`);
        return up.stdout + up.stderr;
    }

    async up(): Promise<CommandResult> {
        const result = await this.pulumi("up", "--yes", "--skip-preview", "--non-interactive");
        this.ups.push(this.mark());
        return result;
    }

    /** The steps `pulumi preview --json` plans, or the failed result. */
    async preview(...extra: string[]): Promise<{ steps: PreviewStep[]; result: CommandResult }> {
        const result = await this.run("preview", "--diff", "--json", "--non-interactive", ...extra);
        if (result.code !== 0) return { steps: [], result };
        const parsed = JSON.parse(result.stdout) as { steps?: PreviewStep[] };
        return { steps: parsed.steps ?? [], result };
    }

    /** The resources the stack manages, without the parts that change on every run (timestamps). */
    async state(): Promise<unknown> {
        // Decrypted: secrets are encrypted again, with new nonces, at every checkpoint.
        const exported = JSON.parse((await this.pulumi("stack", "export", "--show-secrets")).stdout) as {
            deployment: { resources: Record<string, unknown>[] };
        };
        // Reads are left out: the program's read of its own last outputs (a StackReference) is saved
        // with whatever it read, also by an update that then refuses the config; it manages nothing.
        return exported.deployment.resources.filter((r) => r.external !== true).map(({ created: _c, modified: _m, ...rest }) => rest);
    }

    /** Every rendered file, by path relative to the render directory. */
    rendered(renderDir = this.renderDir): Map<string, string> {
        const files = new Map<string, string>();
        const walk = (dir: string) => {
            for (const entry of readdirSync(dir, { withFileTypes: true })) {
                const full = path.join(dir, entry.name);
                if (entry.isDirectory()) walk(full);
                else files.set(path.relative(renderDir, full), readFileSync(full, "utf8"));
            }
        };
        if (existsSync(renderDir)) walk(renderDir);
        return files;
    }

    /** Every rendered Kubernetes object. */
    objects(renderDir = this.renderDir): KubeObject[] {
        const objects: KubeObject[] = [];
        for (const text of this.rendered(renderDir).values()) {
            for (const doc of parseAllDocuments(text)) {
                const object = doc.toJS() as KubeObject | null;
                if (object?.kind !== undefined) objects.push(object);
            }
        }
        return objects;
    }

    /** The rendered object of `kind` named `name`, with the file it is in. */
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    object(kind: string, name: string): { file: string; object: Record<string, any> } {
        const found: { file: string; object: Record<string, any> }[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
        for (const [file, text] of this.rendered()) {
            for (const doc of parseAllDocuments(text)) {
                const object = doc.toJS() as Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
                if (object?.kind === kind && object.metadata?.name === name) found.push({ file, object });
            }
        }
        if (found.length !== 1) throw new Error(`expected one rendered ${kind} ${name}, found ${found.length}`);
        return found[0];
    }

    /** Lock files in the state backend (a killed pulumi leaves one). */
    locks(): string[] {
        const dir = path.join(this.root, "state", ".pulumi", "locks");
        return existsSync(dir)
            ? readdirSync(dir, { recursive: true, withFileTypes: true })
                  .filter((e) => e.isFile())
                  .map((e) => e.name)
            : [];
    }

    dispose(): void {
        rmSync(this.root, { recursive: true, force: true });
    }
}

type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** JSON with the keys of every object sorted: equal values, equal text, whatever order they were written in. */
function canonical(value: unknown): string {
    return JSON.stringify(value, (_key, v: unknown) =>
        v !== null && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
            : v,
    );
}

/** The live VirtualService's weights by subset, from a list of objects. */
export function liveWeights(objects: readonly KubeObject[]): Record<string, number> {
    const routes = objects.filter((o) => o.kind === "VirtualService" && o.metadata.name === "cowsay-nginx");
    if (routes.length !== 1) throw new Error(`expected one live VirtualService, found ${routes.length}`);
    return Object.fromEntries((routes[0].spec as Spec).http[0].route.map((r: Spec) => [r.destination.subset, r.weight]));
}

/** Each version's Deployment replicas, from a list of objects. */
export function replicasByVersion(objects: readonly KubeObject[]): Record<string, number> {
    return Object.fromEntries(
        objects.filter((o) => o.kind === "Deployment").map((d) => [(d.spec as Spec).template.metadata.labels.version, (d.spec as Spec).replicas]),
    );
}

/** The steps of a preview that change something; the program's read of its own outputs is not one. */
export function plannedChanges(steps: readonly PreviewStep[]): PreviewStep[] {
    return steps.filter((s) => s.op !== "same" && s.op !== "read");
}

/**
 * Runs preview and up: both must fail and print `message`, and the stack's state and rendered files
 * must stay as they were.
 */
export async function expectRefusal(stack: EngineStack, message: string): Promise<void> {
    const stateBefore = await stack.state();
    const renderedBefore = stack.rendered();
    for (const args of [
        ["preview", "--non-interactive"],
        ["up", "--yes", "--skip-preview", "--non-interactive"],
    ]) {
        const result = await stack.run(...args);
        assert.notEqual(result.code, 0, `pulumi ${args[0]} must fail`);
        assert.ok(`${result.stdout}${result.stderr}`.includes(message), result.stdout + result.stderr);
    }
    assert.deepEqual(await stack.state(), stateBefore, "the state changed");
    assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), [], "rendered files changed");
}

/** Files that differ between two snapshots of the render directory. */
export function changedFiles(before: Map<string, string>, after: Map<string, string>): string[] {
    const names = new Set([...before.keys(), ...after.keys()]);
    return [...names].filter((name) => before.get(name) !== after.get(name)).sort();
}
