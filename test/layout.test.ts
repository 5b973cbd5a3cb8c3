// The rule the README's map of the code states, held: ComponentResources live in components/, dynamic
// resources in dynamic/, and lib/ stays free of Pulumi and of both, so that the policy pack, the fleet
// and the tests can load any of it without the program. Imports are read with TypeScript's own
// pre-processor (what tsc follows), not a regex over the text.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import * as ts from "typescript";

import { ROOT } from "./support/constants";

/** The program's .ts files under `folder`, relative to the repository. */
function sources(folder: string): string[] {
    return readdirSync(path.join(ROOT, folder), { recursive: true, encoding: "utf8" })
        .filter((file) => file.endsWith(".ts"))
        .map((file) => path.join(folder, file))
        .sort();
}

/** Each module `file` imports or requires, as written (`../config`, `@pulumi/pulumi`, `node:http`). */
function importsOf(file: string): string[] {
    return ts.preProcessFile(readFileSync(path.join(ROOT, file), "utf8"), true, true).importedFiles.map((i) => i.fileName);
}

/** Where `file`'s relative import `spec` points, relative to the repository (`lib/pause`). */
function target(file: string, spec: string): string {
    return path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec));
}

const PROGRAM = ["index.ts", ...["components", "config", "dynamic", "lib"].flatMap(sources)];

/** The files that declare a class extending `base`. */
function declaring(base: RegExp): string[] {
    return PROGRAM.filter((file) => base.test(readFileSync(path.join(ROOT, file), "utf8")));
}

describe("the layout of the program's code (README: map of the code)", () => {
    it("declares every ComponentResource in components/ and every dynamic resource in dynamic/", () => {
        const components = declaring(/\bclass \w+ extends pulumi\.ComponentResource\b/);
        const dynamic = declaring(/\bclass \w+ extends pulumi\.dynamic\.Resource\b/);
        // The program has both kinds: an empty list would prove nothing.
        assert.ok(components.includes(path.join("components", "app.ts")), components.join(", "));
        assert.ok(dynamic.includes(path.join("dynamic", "gate.ts")), dynamic.join(", "));
        assert.deepEqual(
            components.filter((file) => !file.startsWith(`components${path.sep}`)),
            [],
        );
        assert.deepEqual(
            dynamic.filter((file) => !file.startsWith(`dynamic${path.sep}`)),
            [],
        );
    });

    it("keeps lib/ free of Pulumi, of components/ and of dynamic/", () => {
        const lib = sources("lib");
        assert.ok(lib.length > 5, lib.join(", "));
        const offending = lib.flatMap((file) =>
            importsOf(file)
                .filter(
                    (spec) =>
                        spec.startsWith("@pulumi/") ||
                        (spec.startsWith(".") && /^(components|dynamic)(\/|$)/.test(target(file, spec).split(path.sep).join("/"))),
                )
                .map((spec) => `${file} imports ${spec}`),
        );
        assert.deepEqual(offending, []);
    });

    it("reads the imports the rule is checked on: a module of dynamic/ imports lib/ and Pulumi", () => {
        const gate = path.join("dynamic", "gate.ts");
        assert.ok(importsOf(gate).includes("@pulumi/pulumi"));
        assert.ok(importsOf(gate).some((spec) => target(gate, spec) === path.join("lib", "pause")));
    });
});
