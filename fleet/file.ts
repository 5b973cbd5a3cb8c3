// The fleet file (fleet.yaml): which stacks of this project switch together, in which waves, how
// long a switched wave is watched, and what a failure does. Parsed once, with zod, into a typed Fleet;
// a bad file is refused in one line that names the key, the value and what is allowed, before any
// stack is touched.
import { readFileSync } from "node:fs";
import * as path from "node:path";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

import { Refused } from "../lib/refusal";
import { STEPS_ALLOWED, stepsAllowed } from "./rollout";

export const FLEET_FILE = "fleet.yaml";
export const ON_FAILURE = ["rollback", "halt"] as const;
export type OnFailure = (typeof ON_FAILURE)[number];

export interface Wave {
    readonly name: string;
    readonly stacks: readonly string[];
    /** Stacks of this wave updated at once; every stack of the wave when the file does not say. */
    readonly parallel: number;
}

export interface Fleet {
    readonly waves: readonly Wave[];
    /** Seconds every switched stack keeps being checked after a wave, before the next one starts. */
    readonly bake: number;
    readonly onFailure: OnFailure;
    /** A rollout's steps (the new version's share, in percent), when the file sets them. */
    readonly steps?: readonly number[];
}

// One declaration per key: its type, its bounds and, as its description, what is allowed (the
// refusal quotes it).
const WAVE = z.strictObject({
    name: z.string().min(1).describe("a non-empty name"),
    stacks: z.array(z.string().min(1).describe("a stack name")).min(1).describe("a list of at least one stack of this project"),
    parallel: z.int().min(1).optional().describe("an integer of at least 1 (default: every stack of the wave at once)"),
});
const FILE = z
    .strictObject({
        waves: z.array(WAVE).min(1).describe("a list of at least one wave, each with a name and stacks"),
        bake: z.number().min(0).optional().describe("a number of seconds, 0 or more (default 0)"),
        onFailure: z
            .enum(ON_FAILURE)
            .optional()
            .describe(`${ON_FAILURE.join(" or ")} (default rollback)`),
        steps: z.array(z.int().describe(STEPS_ALLOWED)).refine(stepsAllowed).optional().describe(STEPS_ALLOWED),
    })
    .describe("a mapping with the keys waves, bake, onFailure and steps");

/** waves[1].stacks[0], as a user finds it in the file. */
function showPath(keys: readonly PropertyKey[]): string {
    return keys.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join("");
}

function show(value: unknown): string {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(input: unknown, keys: readonly PropertyKey[]): unknown {
    return keys.reduce<unknown>(
        (value, key) => (value !== null && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[key] : undefined),
        input,
    );
}

/** The schema of the value at `keys`, to quote its description and its keys. */
function schemaAt(keys: readonly PropertyKey[]): z.ZodType {
    let schema: z.ZodType = FILE;
    for (const key of keys) {
        // The description sits on the optional wrapper; keep the wrapper until the last key.
        while (schema instanceof z.ZodOptional) schema = schema.unwrap() as z.ZodType;
        if (schema instanceof z.ZodObject) schema = (schema.shape as Record<string, z.ZodType>)[String(key)];
        else if (schema instanceof z.ZodArray) schema = schema.element as z.ZodType;
    }
    return schema;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
    const where = showPath(issue.path);
    const schema = schemaAt(issue.path);
    if (issue.code === "unrecognized_keys") {
        let object: z.ZodType = schema;
        while (object instanceof z.ZodOptional) object = object.unwrap() as z.ZodType;
        const allowed = object instanceof z.ZodObject ? Object.keys(object.shape).join(", ") : "";
        return `${where === "" ? "" : `${where}: `}unknown key ${show(issue.keys[0])}; allowed keys: ${allowed}`;
    }
    const value = valueAt(input, issue.path);
    const allowed = schema.description ?? issue.message;
    if (where === "") return `the file is ${value === null || value === undefined ? "empty" : show(value)}; allowed: ${allowed}`;
    if (value === undefined) return `${where} is missing; allowed: ${allowed}`;
    return `${where} is ${show(value)}; allowed: ${allowed}`;
}

/**
 * Parses the text of a fleet file. `stacks` are the stacks of this project (every stack the file
 * names must be one of them). Throws a Refused with one line on the first problem.
 */
export function parseFleet(text: string, stacks: readonly string[], file = FLEET_FILE): Fleet {
    const refuse = (message: string): never => {
        throw new Refused(`${file}: ${message}`);
    };
    let input: unknown;
    try {
        input = parseYaml(text);
    } catch (err) {
        refuse(`not valid YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    const parsed = FILE.safeParse(input);
    if (!parsed.success) refuse(describeIssue(parsed.error.issues[0], input));
    const data = parsed.data as z.infer<typeof FILE>;

    const waveOf = new Map<string, number>();
    const names = new Map<string, number>();
    data.waves.forEach((wave, w) => {
        const named = names.get(wave.name);
        if (named !== undefined) refuse(`waves[${w}].name is ${show(wave.name)}, already the name of waves[${named}]; allowed: a name no other wave has`);
        names.set(wave.name, w);
        wave.stacks.forEach((stack, s) => {
            const where = `waves[${w}].stacks[${s}]`;
            if (!stacks.includes(stack)) {
                refuse(
                    `${where} is ${show(stack)}, not a stack of this project; allowed: ${stacks.length === 0 ? "none yet (pulumi stack init <name>)" : [...stacks].sort().join(", ")}`,
                );
            }
            const earlier = waveOf.get(stack);
            if (earlier !== undefined) {
                const other = earlier === w ? "this wave" : `wave ${show(data.waves[earlier].name)} (waves[${earlier}])`;
                refuse(`${where} is ${show(stack)}, already in ${other}; allowed: each stack in one wave, once`);
            }
            waveOf.set(stack, w);
        });
    });
    return {
        waves: data.waves.map((w) => ({ name: w.name, stacks: w.stacks, parallel: w.parallel ?? w.stacks.length })),
        bake: data.bake ?? 0,
        onFailure: data.onFailure ?? "rollback",
        ...(data.steps === undefined ? {} : { steps: data.steps }),
    };
}

/** Reads `fleet.yaml` from the project directory. */
export function readFleet(dir: string, stacks: readonly string[]): Fleet {
    const file = path.join(dir, FLEET_FILE);
    let text: string;
    try {
        text = readFileSync(file, "utf8");
    } catch {
        throw new Refused(`${FLEET_FILE}: not found in ${dir}; write one (docs/fleet.md says how)`);
    }
    return parseFleet(text, stacks);
}

/** Every stack of the fleet, in wave order, with its wave's name. */
export function fleetStacks(fleet: Fleet): { stack: string; wave: string }[] {
    return fleet.waves.flatMap((w) => w.stacks.map((stack) => ({ stack, wave: w.name })));
}
