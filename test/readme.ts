// The README as a test fixture: the shell blocks marked `<!-- e2e: <id> -->` on the line before
// their fence are the commands users copy. The end-to-end suite runs them as they are written, in
// order, with bash, and checks what each one changed; a marked block that fails fails CI.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";

import { ROOT } from "./engine";

export interface ReadmeBlock {
    readonly id: string;
    /** The commands, exactly as the README shows them. */
    readonly script: string;
    /** 1-based line of the opening fence, for messages. */
    readonly line: number;
}

/**
 * Every marked block of the README, in order. `e2e` blocks are run by the end-to-end suites; `ci`
 * blocks (set-up and "see it work") by `.ci/run` through scripts/readme-block.sh, which reads the same
 * marks (test/readme.test.ts holds the two readers equal).
 */
export function readmeBlocks(file = path.join(ROOT, "README.md"), kind: "e2e" | "ci" = "e2e"): ReadmeBlock[] {
    const MARK = new RegExp(`^<!-- ${kind}: ([a-z0-9-]+) -->$`);
    const lines = readFileSync(file, "utf8").split("\n");
    const blocks: ReadmeBlock[] = [];
    for (let i = 0; i < lines.length; i++) {
        const mark = MARK.exec(lines[i]);
        if (mark === null) continue;
        if (lines[i + 1] !== "```sh") throw new Error(`README.md:${i + 1}: the ${kind} mark ${mark[1]} must be followed by a \`\`\`sh fence`);
        const end = lines.indexOf("```", i + 2);
        if (end < 0) throw new Error(`README.md:${i + 2}: unclosed block ${mark[1]}`);
        blocks.push({ id: mark[1], script: lines.slice(i + 2, end).join("\n"), line: i + 2 });
    }
    const ids = blocks.map((b) => b.id);
    const twice = ids.find((id, n) => ids.indexOf(id) !== n);
    if (twice !== undefined) throw new Error(`README.md: the ${kind} mark ${twice} is used twice`);
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
