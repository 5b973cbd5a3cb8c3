// How a refusal of the stack config reads: one line that names the key, the value as the user typed
// it and what is allowed (`Invalid config <key>: <value> is not allowed; expected <what>.`, thrown as
// a Refused by lib/refusal.ts's invalidConfig), and the key a zod issue is about, written as `pulumi
// config set --path` takes it. Every other file of config/ words its refusals with these helpers, so
// all of them read alike.
import * as z from "zod";

/** A value in a message, quoted as JSON so that "", " v1" and 3 vs "3" stay visible. */
export function show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

/** The refusal of most keys: `<value> is not allowed; expected <what>.` */
export const notAllowed =
    (what: string) =>
    (issue: { readonly input?: unknown }): string =>
        `${show(issue.input)} is not allowed; expected ${what}.`;

/**
 * Adds the refusal of `input` to the issues of a zod conversion, which then returns nothing; parseSettings
 * throws the first issue as a Refused.
 */
export function addIssue(ctx: z.RefinementCtx<unknown>, input: unknown, message: string): never {
    ctx.issues.push({ code: "custom", input, message });
    return z.NEVER;
}

/** ` (did you mean "x"?)` when `value` differs from an allowed name only in case or surrounding spaces. */
export function suggestion(value: string, allowed: readonly string[]): string {
    const near = allowed.find((name) => name.toLowerCase() === value.trim().toLowerCase());
    return near === undefined ? "" : ` (did you mean ${show(near)}?)`;
}

/** A key at the top level that the schema does not declare. */
export function isUnknownKey(issue: z.core.$ZodIssue): issue is z.core.$ZodIssueUnrecognizedKeys {
    return issue.code === "unrecognized_keys" && issue.path.length === 0;
}

/** The key a zod issue is about, written as `pulumi config set --path` takes it. */
export function keyOf(issue: z.core.$ZodIssue): string {
    if (isUnknownKey(issue)) return issue.keys[0];
    // A bad version name is the map's problem, not a field of it.
    const path = issue.code === "invalid_key" ? issue.path.slice(0, -1) : issue.path;
    return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}
