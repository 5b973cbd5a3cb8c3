// `npm run fleet -- <verb>`: one blue-green switch across the stacks named in fleet.yaml (one stack
// per cluster), wave by wave. The arguments, Ctrl-C and the exit code; the verbs are in commands.ts.
// Works on the project in the current directory (npm runs scripts from the package's root).
import { parseArgs } from "node:util";

import { Refusal, preview, rollback, status, switchFleet, type Io } from "./commands";
import { FleetFileError } from "./file";
import { EXIT_CODES } from "./plan";
import { RecordError } from "./record";
import { TargetError, parseSplit, parseVersion, type Target } from "./target";

export const USAGE = `usage: npm run fleet -- <verb>
  status [--json]                      each stack: wave, live version, last update, lock
  preview [<version> | --split JSON]   each stack's plan, as one Markdown report on stdout
  switch <version> | --split JSON      wave by wave, gated and baked; rollback or halt on failure
  rollback                             each stack back to what it ran before the last switch
docs/fleet.md has the fleet file, the exit codes and what a failure leaves.`;

const VERBS = ["status", "preview", "switch", "rollback"] as const;

/** The target of preview (optional) and switch (required): a version, or --split. */
function target(verb: string, positionals: readonly string[], split: string | undefined, required: boolean): Target | undefined {
    if (split !== undefined && positionals.length > 0) throw new TargetError(`${verb} takes a version or --split, not both`);
    if (positionals.length > 1) throw new TargetError(`${verb} takes one version, got ${positionals.join(" ")}`);
    if (split !== undefined) return parseSplit(split);
    if (positionals.length === 1) return parseVersion(positionals[0]);
    if (required) throw new TargetError(`${verb} needs a version (switch v2) or --split '{"v1":90,"v2":10}'`);
    return undefined;
}

function parseOptions(verb: string, args: readonly string[]) {
    try {
        return parseArgs({ args: [...args], options: { json: { type: "boolean", default: false }, split: { type: "string" } }, allowPositionals: true, strict: true });
    } catch (err) {
        const unknown = /Unknown option '([^']+)'/.exec((err as Error).message)?.[1];
        if (unknown !== undefined) throw new TargetError(`${verb}: unknown option ${unknown}; allowed: --json (status), --split JSON (switch, preview)`);
        throw new TargetError(`${verb}: ${(err as Error).message.split("\n")[0]}`);
    }
}

export async function main(argv: readonly string[], io: Io, dir = process.cwd()): Promise<number> {
    const [verb, ...rest] = argv;
    try {
        if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
            (verb === undefined ? io.err : io.out).write(`${USAGE}\n`);
            return verb === undefined ? EXIT_CODES.refused : 0;
        }
        if (!(VERBS as readonly string[]).includes(verb)) throw new TargetError(`unknown verb ${JSON.stringify(verb)}; allowed: ${VERBS.join(", ")}`);
        const { values, positionals } = parseOptions(verb, rest);
        if (values.json && verb !== "status") throw new TargetError(`--json is an option of status only`);
        if (values.split !== undefined && verb !== "switch" && verb !== "preview") throw new TargetError(`--split is an option of switch and preview only`);
        switch (verb) {
            case "status":
                if (positionals.length > 0) throw new TargetError(`status takes no arguments, got ${positionals.join(" ")}`);
                return await status(dir, values.json, io);
            case "preview":
                return await preview(dir, target(verb, positionals, values.split, false), io);
            case "switch":
                return await switchFleet(dir, target(verb, positionals, values.split, true) as Target, io);
            default:
                if (positionals.length > 0) throw new TargetError(`rollback takes no arguments, got ${positionals.join(" ")}`);
                return await rollback(dir, io);
        }
    } catch (err) {
        if (err instanceof Refusal || err instanceof FleetFileError || err instanceof TargetError || err instanceof RecordError) {
            io.err.write(`error: ${err.message}\n`);
            return EXIT_CODES.refused;
        }
        if (/ENOENT/.test(String((err as Error).message)) && /pulumi/.test(String((err as Error).message))) {
            io.err.write('error: pulumi is not on PATH: install the Pulumi CLI, or run eval "$(scripts/engine.sh env)" (README)\n');
            return EXIT_CODES.refused;
        }
        throw err;
    }
}

if (require.main === module) {
    const controller = new AbortController();
    let signals = 0;
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
            signals += 1;
            // npm forwards the terminal's Ctrl-C to this process a second time: never escalate on it.
            if (signals === 1) process.stderr.write(`\nfleet: ${signal === "SIGINT" ? "Ctrl-C" : signal}: no more stacks start; those in flight are cancelled through the engine ...\n`);
            else process.stderr.write("fleet: still stopping: waiting for the stacks in flight to cancel\n");
            controller.abort();
        });
    }
    main(process.argv.slice(2), { out: process.stdout, err: process.stderr, signal: controller.signal }).then(
        (code) => (process.exitCode = code),
        (err: unknown) => {
            process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
            process.exitCode = 1;
        },
    );
}
