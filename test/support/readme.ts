// The README and the docs as a test fixture: the shell blocks marked `<!-- e2e: <id> -->` on the line
// before their fence are the commands users copy. The end-to-end suites run them as they are written,
// in order, with bash, and check what each one changed; a marked block that fails fails CI.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";

import { ROOT } from "./engine";

export interface ReadmeBlock {
    readonly id: string;
    /** The commands, exactly as the file shows them. */
    readonly script: string;
    /** The file the block is in, relative to the repository root when it is inside it, for messages. */
    readonly file: string;
    /** 1-based line of the opening fence, for messages. */
    readonly line: number;
}

/**
 * The files whose e2e blocks the README suite (test/e2e/readme.e2e.ts) runs, in this order. Their
 * blocks are one story on one stack: each starts from the state the block before it left (the
 * walkthrough's stack, then its weighted steps, ...), so the order of this list is the story's order.
 * Docs without a marked block yet are listed too, so that a block added to one runs in its place.
 */
export const README_SUITE_FILES: readonly string[] = [
    "README.md",
    "docs/operations.md",
    "docs/security.md",
    "docs/routing.md",
    "docs/configuration.md",
    "docs/engine.md",
    "docs/testing.md",
];

/** Docs whose e2e blocks another suite runs, and which suite: the README suite leaves them alone. */
export const OTHER_SUITES_FILES: Readonly<Record<string, string>> = {
    "docs/fleet.md": "the fleet suite",
    "docs/analysis.md": "the analysis suite (test/e2e/analysis.e2e.ts)",
};

/** `file` as messages show it: relative to the repository root when it is inside it. */
const shown = (file: string): string => {
    const relative = path.relative(ROOT, file);
    return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
};

/**
 * Every marked block of one file (README.md unless told), in order. `e2e` blocks are run by the
 * end-to-end suites; `ci` blocks (set-up and "see it work") by `.ci/run` through
 * scripts/readme-block.sh, which reads the same marks (test/readme.test.ts holds the two readers equal).
 */
export function readmeBlocks(file = path.join(ROOT, "README.md"), kind: "e2e" | "ci" = "e2e"): ReadmeBlock[] {
    const MARK = new RegExp(`^<!-- ${kind}: ([a-z0-9-]+) -->$`);
    const name = shown(file);
    const lines = readFileSync(file, "utf8").split("\n");
    const blocks: ReadmeBlock[] = [];
    for (let i = 0; i < lines.length; i++) {
        const mark = MARK.exec(lines[i]);
        if (mark === null) continue;
        if (lines[i + 1] !== "```sh") throw new Error(`${name}:${i + 1}: the ${kind} mark ${mark[1]} must be followed by a \`\`\`sh fence`);
        const end = lines.indexOf("```", i + 2);
        if (end < 0) throw new Error(`${name}:${i + 2}: unclosed block ${mark[1]}`);
        blocks.push({ id: mark[1], script: lines.slice(i + 2, end).join("\n"), file: name, line: i + 2 });
    }
    const ids = blocks.map((b) => b.id);
    const twice = ids.findIndex((id, n) => ids.indexOf(id) !== n);
    if (twice >= 0)
        throw new Error(`${name}:${blocks[twice].line}: the ${kind} mark ${ids[twice]} is used twice (first at line ${blocks[ids.indexOf(ids[twice])].line})`);
    return blocks;
}

/**
 * The e2e blocks of README_SUITE_FILES under `root`, in story order. Fails on a listed file that is
 * missing, on an id used in two files, and on a docs/*.md with e2e blocks that no suite claims (its
 * blocks would otherwise never run).
 */
export function storyBlocks(root = ROOT): ReadmeBlock[] {
    const docs = existsSync(path.join(root, "docs")) ? readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")) : [];
    for (const doc of docs.map((f) => `docs/${f}`)) {
        if (README_SUITE_FILES.includes(doc) || doc in OTHER_SUITES_FILES) continue;
        const unclaimed = readmeBlocks(path.join(root, doc));
        if (unclaimed.length > 0) {
            const where = unclaimed.map((b) => `${b.id} (line ${b.line})`).join(", ");
            throw new Error(
                `${shown(path.join(root, doc))}: e2e blocks that no suite runs: ${where}; add the file to README_SUITE_FILES in test/support/readme.ts, in story order, or to OTHER_SUITES_FILES with the suite that runs them`,
            );
        }
    }
    const blocks: ReadmeBlock[] = [];
    for (const file of README_SUITE_FILES) {
        const full = path.join(root, file);
        if (!existsSync(full)) throw new Error(`${shown(full)}: listed in README_SUITE_FILES (test/support/readme.ts) but missing`);
        for (const block of readmeBlocks(full)) {
            const first = blocks.find((b) => b.id === block.id);
            if (first !== undefined)
                throw new Error(`${block.file}:${block.line}: the e2e mark ${block.id} is used twice (first at ${first.file}:${first.line})`);
            blocks.push(block);
        }
    }
    return blocks;
}

export interface BlockResult {
    readonly code: number;
    /** stdout and stderr, interleaved as a user would see them. */
    readonly output: string;
}

/** Runs a block with bash (-e: the first failing command fails the block) in `cwd` with `env`. */
export function runBlock(block: ReadmeBlock, cwd: string, env: NodeJS.ProcessEnv): Promise<BlockResult> {
    return new Promise((resolve) => {
        const child = spawn("bash", ["-e", "-o", "pipefail", "-c", block.script], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.on("close", (code) => resolve({ code: code ?? 1, output }));
    });
}
