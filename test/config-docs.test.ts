// What is generated from the config schema stays what the schema says: Pulumi.yaml's `config:` block
// and the table in docs/configuration.md. A failure shows the diff; `npm run gen:config` fixes it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { diff } from "node:util";

import { parse } from "yaml";

import { CONFIG_KEYS, DEFAULTS, SECRET_CAPABLE_KEYS, keyDoc } from "../config";
import { DOCS_FILE, PROJECT_FILE, configTable, withConfigBlock, withConfigTable } from "../scripts/gen-config";

/** Fails with a line diff (- in the file, + what the schema says) unless the file is as generated. util.diff marks lines only in its first argument 1. */
function assertGenerated(file: string, actual: string, expected: string): void {
    if (actual === expected) return;
    const lines = diff(actual.split("\n"), expected.split("\n"))
        .filter(([op]) => op !== 0)
        .map(([op, line]) => `${op > 0 ? "-" : "+"} ${line}`);
    assert.fail(`${file} is not what the schema in config/keys.ts says; run \`npm run gen:config\`.\n${lines.join("\n")}`);
}

describe("what the config schema generates", () => {
    it("Pulumi.yaml's config block", () => {
        const text = readFileSync(PROJECT_FILE, "utf8");
        assertGenerated("Pulumi.yaml", text, withConfigBlock(text));
    });

    it("the table in docs/configuration.md", () => {
        const text = readFileSync(DOCS_FILE, "utf8");
        assertGenerated("docs/configuration.md", text, withConfigTable(text));
    });

    it("declares in Pulumi.yaml every key the program reads, with its default, a description, and no type", () => {
        const config = (parse(readFileSync(PROJECT_FILE, "utf8")) as { config: Record<string, { type?: string; default: unknown; description: string }> })
            .config;
        assert.deepEqual(Object.keys(config), [...CONFIG_KEYS]);
        for (const key of CONFIG_KEYS) {
            assert.deepEqual(config[key].default, DEFAULTS[key], key);
            // A declared type makes the CLI refuse `pulumi config set k '{"a":1}'` (stored as text)
            // on every later run, the rollback included; the program checks types itself.
            assert.equal(config[key].type, undefined, key);
            assert.ok(config[key].description.startsWith(keyDoc(key).description), key);
        }
    });

    it("a drifted file fails with the diff that names the line", () => {
        const text = readFileSync(PROJECT_FILE, "utf8");
        const drifted = text.replace("default: 60", "default: 90");
        assert.notEqual(drifted, text);
        assert.throws(
            () => assertGenerated("Pulumi.yaml", drifted, withConfigBlock(drifted)),
            (err: Error) => {
                assert.match(err.message, /^Pulumi\.yaml is not what the schema/);
                assert.match(err.message, /^- +default: 90$/m);
                assert.match(err.message, /^\+ +default: 60$/m);
                return true;
            },
        );
    });

    it("the table has a row per key, in the schema's order, marking the keys that may be secret", () => {
        const rows = configTable().split("\n").slice(2);
        assert.deepEqual(
            rows.map((r) => /^\| `([^`]+)`/.exec(r)?.[1]),
            [...CONFIG_KEYS],
        );
        assert.deepEqual(
            rows.filter((r) => r.includes("| may be |")).map((r) => /^\| `([^`]+)`/.exec(r)?.[1]),
            [...SECRET_CAPABLE_KEYS],
        );
        assert.deepEqual([...SECRET_CAPABLE_KEYS], ["gatewayUrl", "prometheusUrl", "prometheusToken", "acmeEmail"]);
    });
});
