// What a fleet switch moves every stack to: one version (all live traffic), or a weighted split. A
// switch is the config change a user makes by hand (`pulumi config set activeVersion v2` and `pulumi
// config rm trafficSplit`, or `pulumi config set trafficSplit '{...}'`); this module computes that
// change once, and the new stack file's text once, for the switch (fleet/workspace.ts writes it) and
// the preview (on a copy of the stack file) alike. Pure.
import { parseDocument } from "yaml";
import { z } from "zod";

import { DEFAULTS } from "../config";
import { Refused } from "../lib/refusal";
import { namespacedKey } from "../lib/stack-config";

export type Target = { readonly kind: "version"; readonly version: string } | { readonly kind: "split"; readonly weights: Readonly<Record<string, number>> };

/** Live traffic per version, in percent, as the program's trafficSplit output has it (shares > 0 only). */
export type Weights = Readonly<Record<string, number>>;

/** The two config keys a switch changes (values as `pulumi config get` prints them; undefined: not set). */
export interface SwitchConfig {
    readonly activeVersion?: string;
    readonly trafficSplit?: string;
}

export const SWITCH_KEYS = ["activeVersion", "trafficSplit"] as const;

// Only the shape is checked here; which versions exist and that the weights sum to 100 are the
// program's rules (config/rules.ts), applied to every stack before the first one is touched.
const SPLIT = z.record(z.string().min(1), z.int());

/** A version name from the command line. */
export function parseVersion(text: string): Target {
    if (!/^\S+$/.test(text)) throw new Refused(`version ${JSON.stringify(text)} is not a version name; allowed: a version every stack declares, such as v2`);
    return { kind: "version", version: text };
}

/** The --split argument: JSON, version -> integer percent. */
export function parseSplit(text: string): Target {
    let json: unknown;
    try {
        json = JSON.parse(text);
    } catch {
        throw new Refused(`--split ${text} is not JSON; allowed: an object such as '{"v1":90,"v2":10}'`);
    }
    const parsed = SPLIT.safeParse(json);
    if (!parsed.success || Object.keys(parsed.data).length === 0) {
        throw new Refused(`--split ${text} is not a split; allowed: version -> integer percent, such as '{"v1":90,"v2":10}'`);
    }
    return { kind: "split", weights: parsed.data };
}

/** The live traffic a stack has once switched to `target`. */
export function targetWeights(target: Target): Weights {
    if (target.kind === "version") return { [target.version]: 100 };
    return Object.fromEntries(Object.entries(target.weights).filter(([, w]) => w > 0));
}

/** Versions `target` sends traffic to (each must be declared by every stack of the fleet). */
export function targetVersions(target: Target): string[] {
    return Object.keys(targetWeights(target));
}

export function sameWeights(a: Weights | undefined, b: Weights | undefined): boolean {
    if (a === undefined || b === undefined) return a === b;
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => (a[k] ?? 0) === (b[k] ?? 0));
}

/** "v2", or "v1 90% / v2 10%". */
export function describeWeights(weights: Weights | undefined): string {
    if (weights === undefined) return "nothing (never deployed)";
    const entries = Object.entries(weights).filter(([, w]) => w > 0);
    if (entries.length === 1 && entries[0][1] === 100) return entries[0][0];
    return entries.map(([v, w]) => `${v} ${w}%`).join(" / ");
}

export function describeTarget(target: Target): string {
    return describeWeights(targetWeights(target));
}

/**
 * The config a switch to `target` sets, from the stack's current one. A version: activeVersion is
 * that version and trafficSplit goes (100% to it). A split: trafficSplit is the split; activeVersion
 * stays unless the split gives it nothing, then it is the version with the largest share (the
 * program requires the active version to keep a share).
 */
export function switchConfig(target: Target, current: SwitchConfig): SwitchConfig {
    if (target.kind === "version") return { activeVersion: target.version, trafficSplit: undefined };
    // The schema declares activeVersion a string; DEFAULTS is typed for every key at once.
    const active = current.activeVersion ?? (DEFAULTS.activeVersion as string);
    const heaviest = Object.entries(target.weights).reduce((best, entry) => (entry[1] > best[1] ? entry : best))[0];
    return { activeVersion: (target.weights[active] ?? 0) > 0 ? active : heaviest, trafficSplit: JSON.stringify(target.weights) };
}

/**
 * The switch keys as the stack file sets them (`pulumi config --json` adds Pulumi.yaml's defaults,
 * which a rollback must not write into the file). Objects written as YAML read as their JSON.
 */
export function stackFileConfig(stackFile: string, project: string): SwitchConfig {
    const config = (parseDocument(stackFile).toJS() as { config?: Record<string, unknown> } | null)?.config ?? {};
    const read = (key: string): string | undefined => {
        const value = config[namespacedKey(project, key)];
        return value === undefined || value === null ? undefined : typeof value === "string" ? value : JSON.stringify(value);
    };
    return { activeVersion: read("activeVersion"), trafficSplit: read("trafficSplit") };
}

/**
 * A stack file's text with `config` applied to the switch keys, as `pulumi config set` / `config rm`
 * would leave it (the rest of the file, comments and secrets included, as it was; a key whose value
 * is already `config`'s keeps its own text, quotes and YAML-map form included). For the switch and
 * for the preview, which writes it to a copy of the stack file.
 */
export function withSwitchConfig(stackFile: string, project: string, config: SwitchConfig): string {
    const doc = parseDocument(stackFile);
    const now = stackFileConfig(stackFile, project);
    for (const key of SWITCH_KEYS) {
        const value = config[key];
        if (value === now[key]) continue;
        if (value === undefined) doc.deleteIn(["config", namespacedKey(project, key)]);
        else doc.setIn(["config", namespacedKey(project, key)], value);
    }
    return doc.toString();
}
