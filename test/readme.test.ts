// The README blocks CI types: `.ci/run` reads the blocks marked `<!-- ci: <id> -->` with
// scripts/readme-block.sh (bash, since it runs before `npm ci`), the suites read theirs with
// test/readme.ts. These tests hold the two readers to one format, and hold CI to the README's first
// command.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { ROOT } from "./engine";
import { readmeBlocks } from "./readme";

const SCRIPT = path.join(ROOT, "scripts", "readme-block.sh");
const block = (id: string, file?: string) => spawnSync(SCRIPT, file === undefined ? [id] : [id, file], { encoding: "utf8" });
const fixture = (text: string): string => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "readme-block-")), "README.md");
    writeFileSync(file, text);
    return file;
};

describe("the README blocks CI runs", () => {
    it("scripts/readme-block.sh prints what test/readme.ts reads, for every ci block of the README", () => {
        const blocks = readmeBlocks(undefined, "ci");
        assert.deepEqual(blocks.map((b) => b.id), ["see-it-work", "set-up-and-test"]);
        for (const b of blocks) {
            const printed = block(b.id);
            assert.equal(printed.status, 0, printed.stderr);
            assert.equal(printed.stdout, `${b.script}\n`);
        }
    });

    it("CI starts with the README's first command, the one a newcomer types", () => {
        const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
        const firstRunnable = readme.indexOf("<!-- ci: see-it-work -->");
        assert.ok(firstRunnable >= 0 && firstRunnable < readme.indexOf("<!-- ci: set-up-and-test -->"));
        // The first block a newcomer is told to run (the one under "See it work") is CI's first.
        assert.equal(block("see-it-work").stdout.trim(), "npm ci && npm run demo");
        const ciRun = readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
        const order = [...ciRun.matchAll(/^run_readme_block ([a-z-]+)$/gm)].map((m) => m[1]);
        assert.deepEqual(order, ["see-it-work", "set-up-and-test"], ".ci/run runs the README's blocks in README order, and nothing before them");
        assert.doesNotMatch(ciRun.slice(0, ciRun.indexOf("run_readme_block see-it-work\n")), /^\s*(npm|npx|scripts\/)/m, "no command before the newcomer's");
    });

    it("refuses a missing, a doubled, an unfenced and an unclosed mark, as the suites' reader does", () => {
        const cases: [string, RegExp][] = [
            ["# x\n", /no block is marked <!-- ci: a -->/],
            ["<!-- ci: a -->\n```sh\nx\n```\n<!-- ci: a -->\n```sh\ny\n```\n", /is used twice/],
            ["<!-- ci: a -->\n\n```sh\nx\n```\n", /must be followed by a ```sh fence/],
            ["<!-- ci: a -->\n```sh\nx\n", /is not closed/],
        ];
        for (const [text, message] of cases) {
            const file = fixture(text);
            const printed = block("a", file);
            assert.equal(printed.status, 2, text);
            assert.match(printed.stderr, message);
            if (!/no block/.test(message.source) && !/not closed/.test(message.source)) assert.throws(() => readmeBlocks(file, "ci"));
        }
    });

    it("prints a block's lines exactly, comments and blank lines included", () => {
        const text = "<!-- ci: a -->\n```sh\nnpm ci   # set up\n\necho \"$HOME\" 'a b'\n```\n";
        assert.equal(execFileSync(SCRIPT, ["a", fixture(text)], { encoding: "utf8" }), "npm ci   # set up\n\necho \"$HOME\" 'a b'\n");
        assert.equal(readmeBlocks(fixture(text), "ci")[0].script, "npm ci   # set up\n\necho \"$HOME\" 'a b'");
    });
});
