// How the fleet writes a stack file: all of it or none of it, with the mode it had.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { replaceFile } from "../../fleet/workspace";

describe("replaceFile (how the fleet writes a stack file)", () => {
    const dir = () => mkdtempSync(path.join(tmpdir(), "cowsay-replace-"));

    it("replaces the text, keeps the file's mode and leaves no temporary file", () => {
        const d = dir();
        const file = path.join(d, "Pulumi.eu.yaml");
        writeFileSync(file, "config:\n  p:activeVersion: v1\n");
        chmodSync(file, 0o600);
        replaceFile(file, "config:\n  p:activeVersion: v2\n");
        assert.equal(readFileSync(file, "utf8"), "config:\n  p:activeVersion: v2\n");
        assert.equal(statSync(file).mode & 0o777, 0o600);
        assert.deepEqual(readdirSync(d), ["Pulumi.eu.yaml"]);
    });

    it("creates a stack file that does not exist yet", () => {
        const d = dir();
        replaceFile(path.join(d, "Pulumi.new.yaml"), "config: {}\n");
        assert.deepEqual(readdirSync(d), ["Pulumi.new.yaml"]);
    });

    it("on a failed write, throws, leaves the old file as it was and removes the temporary file", () => {
        const d = dir();
        // A directory where the file should be: the rename over it fails.
        const file = path.join(d, "Pulumi.eu.yaml");
        mkdirSync(file);
        assert.throws(() => replaceFile(file, "config: {}\n"));
        assert.deepEqual(readdirSync(d), ["Pulumi.eu.yaml"]);
        assert.ok(statSync(file).isDirectory());
    });
});
