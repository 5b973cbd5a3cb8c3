// Writes what is derived from the config schema (config/keys.ts): the `config:` block of
// Pulumi.yaml and the table of docs/configuration.md. Run `npm run gen:config` after a change of the
// schema; test/config-docs.test.ts fails, with the diff, while either file says something else.
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";

import { stringify } from "yaml";

import { CONFIG_KEYS, keyDoc, type ConfigValue } from "../config";

const ROOT = path.resolve(__dirname, "..", "..");
export const PROJECT_FILE = path.join(ROOT, "Pulumi.yaml");
export const DOCS_FILE = path.join(ROOT, "docs", "configuration.md");

/** The first line of the generated part of Pulumi.yaml, which runs to the end of the file. */
const PROJECT_MARK = "# Generated from the schema in config/keys.ts by `npm run gen:config`: edit it there.";
const TABLE_BEGIN = "<!-- config-table:begin -->";
const TABLE_END = "<!-- config-table:end -->";

/** Pulumi.yaml's `config:` block: every key with its default and description, and no `type`. */
export function projectConfigBlock(): string {
    const config = Object.fromEntries(
        CONFIG_KEYS.map((key) => {
            const doc = keyDoc(key);
            const secret = doc.secret === true ? " It may be a secret (pulumi config set --secret)." : "";
            return [key, { default: doc.default, description: `${doc.description} Allowed: ${doc.allowed.replace(/`/g, "")}.${secret}` }];
        }),
    );
    return [
        PROJECT_MARK,
        '# No key declares a `type`: the CLI would refuse `pulumi config set trafficSplit \'{"v1":90,"v2":10}\'`',
        "# (stored as text) on every later run, the rollback included. The program checks every value itself",
        "# and names the key, the value and what is allowed.",
        stringify({ config }, { lineWidth: 110, minContentWidth: 40 }).trimEnd(),
        "",
    ].join("\n");
}

/** `project` (the text of Pulumi.yaml) with its generated part as the schema says. */
export function withConfigBlock(project: string): string {
    const at = project.indexOf(`${PROJECT_MARK}\n`);
    if (at < 0) throw new Error(`Pulumi.yaml has no line "${PROJECT_MARK}" where its generated config block starts`);
    return project.slice(0, at) + projectConfigBlock();
}

function cell(text: string): string {
    return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function shownDefault(value: ConfigValue): string {
    return `\`${typeof value === "string" ? (value === "" ? '""' : value) : JSON.stringify(value)}\``;
}

/** The configuration table: key, default, what is allowed, whether it may be a secret, what it does. */
export function configTable(): string {
    const rows = CONFIG_KEYS.map((key) => {
        const doc = keyDoc(key);
        return `| \`${key}\` | ${cell(shownDefault(doc.default))} | ${cell(doc.allowed)} | ${doc.secret === true ? "may be" : "no"} | ${cell(doc.description)} |`;
    });
    return ["| key | default | allowed | secret | what it does |", "| --- | --- | --- | --- | --- |", ...rows].join("\n");
}

/** `markdown` (the text of docs/configuration.md) with the table between its markers as the schema says. */
export function withConfigTable(markdown: string): string {
    const begin = markdown.indexOf(TABLE_BEGIN);
    const end = markdown.indexOf(TABLE_END);
    if (begin < 0 || end < begin) throw new Error(`docs/configuration.md needs the markers ${TABLE_BEGIN} and ${TABLE_END} around the table`);
    return `${markdown.slice(0, begin + TABLE_BEGIN.length)}\n${configTable()}\n${markdown.slice(end)}`;
}

if (require.main === module) {
    for (const [file, generate] of [
        [PROJECT_FILE, withConfigBlock],
        [DOCS_FILE, withConfigTable],
    ] as const) {
        const before = readFileSync(file, "utf8");
        const after = generate(before);
        if (after !== before) writeFileSync(file, after);
        console.log(`${path.relative(ROOT, file)}: ${after === before ? "up to date" : "written"}`);
    }
}
