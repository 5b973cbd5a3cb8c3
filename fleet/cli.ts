// `npm run fleet -- <verb>`: one blue-green switch across the stacks named in fleet.yaml (one stack
// per cluster), wave by wave. The arguments, Ctrl-C and the exit code; the verbs are in commands.ts.
// Works on the project in the current directory (npm runs scripts from the package's root).
import { parseArgs } from "node:util";

import { Refused } from "../lib/refusal";
import { preview, rollback, status, switchFleet, type Io } from "./commands";
import { EXIT_CODES } from "./plan";
import { STEPS_ALLOWED, parseSteps } from "./rollout";
import { previewRollout, rollout, type RolloutOptions } from "./rollout-command";
import { parseSplit, parseVersion, type Target } from "./target";

export const USAGE = `usage: npm run fleet -- <verb>
  status [--json]                       each stack: wave, live version, last update, lock
  preview [<version> | --split JSON]    each stack's plan, as one Markdown report on stdout
  preview <version> --rollout [ROLLOUT] a rollout's steps, checks and queries, least time, first step's plan
  switch <version> | --split JSON       wave by wave, gated and baked; rollback or halt on failure
  rollout <version> [ROLLOUT]           step by step (10%, 50%, 100%), each judged by the metric analysis
  rollback                              each stack back to what it ran before the last switch or rollout
ROLLOUT: --steps 10,50,100   the new version's share at each step (default: fleet.yaml steps, or 10,50,100)
         --stack NAME        this one stack, without fleet.yaml (bake 0 unless --bake)
         --bake SECONDS      checks and analysis after the last step (default: fleet.yaml bake)
docs/fleet.md has the fleet file, the exit codes and what a failure leaves; docs/analysis.md the checks.`;

const VERBS = ["status", "preview", "switch", "rollout", "rollback"] as const;
const ALLOWED_OPTIONS =
    "--json (status), --split JSON (switch, preview), --rollout (preview), --steps LIST, --stack NAME, --bake SECONDS (rollout, preview --rollout)";

/** The target of preview (optional) and switch (required): a version, or --split. */
function target(verb: string, positionals: readonly string[], split: string | undefined, required: boolean): Target | undefined {
    if (split !== undefined && positionals.length > 0) throw new Refused(`${verb} takes a version or --split, not both`);
    if (positionals.length > 1) throw new Refused(`${verb} takes one version, got ${positionals.join(" ")}`);
    if (split !== undefined) return parseSplit(split);
    if (positionals.length === 1) return parseVersion(positionals[0]);
    if (required) throw new Refused(`${verb} needs a version (switch v2) or --split '{"v1":90,"v2":10}'`);
    return undefined;
}

function parseOptions(verb: string, args: readonly string[]) {
    try {
        return parseArgs({
            args: [...args],
            options: {
                json: { type: "boolean", default: false },
                split: { type: "string" },
                rollout: { type: "boolean", default: false },
                steps: { type: "string" },
                stack: { type: "string" },
                bake: { type: "string" },
            },
            allowPositionals: true,
            strict: true,
        });
    } catch (err) {
        const unknown = /Unknown option '([^']+)'/.exec((err as Error).message)?.[1];
        if (unknown !== undefined) throw new Refused(`${verb}: unknown option ${unknown}; allowed: ${ALLOWED_OPTIONS}`);
        throw new Refused(`${verb}: ${(err as Error).message.split("\n")[0]}`);
    }
}

/** --steps, --stack and --bake, checked; undefined where not given. */
function rolloutOptions(values: { steps?: string; stack?: string; bake?: string }): RolloutOptions {
    let steps: number[] | undefined;
    if (values.steps !== undefined) {
        steps = parseSteps(values.steps);
        if (steps === undefined) throw new Refused(`--steps ${values.steps} is not a list of steps; allowed: ${STEPS_ALLOWED}`);
    }
    if (values.bake !== undefined && !/^\d+$/.test(values.bake))
        throw new Refused(`--bake ${values.bake} is not a number of seconds; allowed: an integer, 0 or more`);
    if (values.stack !== undefined && !/^\S+$/.test(values.stack))
        throw new Refused(`--stack ${JSON.stringify(values.stack)} is not a stack name; allowed: a stack of this project`);
    return { steps, stack: values.stack, bake: values.bake === undefined ? undefined : Number(values.bake) };
}

/** The one version a rollout (or its preview) rolls out. */
function rolloutVersion(what: string, positionals: readonly string[]): string {
    if (positionals.length === 0) throw new Refused(`${what} needs a version (${what === "rollout" ? "rollout v2" : "preview v2 --rollout"})`);
    if (positionals.length > 1) throw new Refused(`${what} takes one version, got ${positionals.join(" ")}`);
    return (parseVersion(positionals[0]) as { version: string }).version;
}

export async function main(argv: readonly string[], io: Io, dir = process.cwd()): Promise<number> {
    const [verb, ...rest] = argv;
    try {
        if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
            (verb === undefined ? io.err : io.out).write(`${USAGE}\n`);
            return verb === undefined ? EXIT_CODES.refused : 0;
        }
        if (!(VERBS as readonly string[]).includes(verb)) throw new Refused(`unknown verb ${JSON.stringify(verb)}; allowed: ${VERBS.join(", ")}`);
        const { values, positionals } = parseOptions(verb, rest);
        if (values.json && verb !== "status") throw new Refused(`--json is an option of status only`);
        if (values.split !== undefined && verb !== "switch" && verb !== "preview") throw new Refused(`--split is an option of switch and preview only`);
        if (values.rollout && verb !== "preview") throw new Refused(`--rollout is an option of preview only (the verb is rollout)`);
        // --steps alone makes a preview a rollout's: `preview v2 --steps 10,50,100` reads as the rollout it shows.
        const previewsRollout = verb === "preview" && (values.rollout || values.steps !== undefined);
        for (const option of ["steps", "stack", "bake"] as const) {
            if (values[option] !== undefined && verb !== "rollout" && !previewsRollout)
                throw new Refused(`--${option} is an option of rollout and preview --rollout only`);
        }
        if (previewsRollout && values.split !== undefined) throw new Refused("preview takes --split or --rollout, not both");
        switch (verb) {
            case "status":
                if (positionals.length > 0) throw new Refused(`status takes no arguments, got ${positionals.join(" ")}`);
                return await status(dir, values.json, io);
            case "preview":
                if (previewsRollout) return await previewRollout(dir, rolloutVersion("preview --rollout", positionals), rolloutOptions(values), io);
                return await preview(dir, target(verb, positionals, values.split, false), io);
            case "rollout":
                return await rollout(dir, rolloutVersion("rollout", positionals), rolloutOptions(values), io);
            case "switch":
                return await switchFleet(dir, target(verb, positionals, values.split, true) as Target, io);
            default:
                if (positionals.length > 0) throw new Refused(`rollback takes no arguments, got ${positionals.join(" ")}`);
                return await rollback(dir, io);
        }
    } catch (err) {
        if (err instanceof Refused) {
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
            if (signals === 1)
                process.stderr.write(
                    `\nfleet: ${signal === "SIGINT" ? "Ctrl-C" : signal}: no more stacks start; those in flight are cancelled through the engine ...\n`,
                );
            else process.stderr.write("fleet: still stopping: waiting for the stacks in flight to cancel\n");
            controller.abort();
        });
    }
    main(process.argv.slice(2), { out: process.stdout, err: process.stderr, signal: controller.signal }).then(
        (code) => (process.exitCode = code),
        (err: unknown) => {
            process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
            process.exitCode = EXIT_CODES.crashed;
        },
    );
}
