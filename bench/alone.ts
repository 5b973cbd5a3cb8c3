// Runs every end-to-end test alone, each in a `node --test --test-name-pattern '^<its full name>$'` of
// its own, and prints pass or fail and the wall time of each (the suite's set-up included: its stack,
// its control plane), then a summary. It proves that no test depends on another having run first.
// Not a test itself (it runs the suites many times over); a tool:
//
//   eval "$(scripts/engine.sh env)"
//   npm run test:alone                            # every suite in bin/test/e2e (build first)
//   npm run test:alone -- lifecycle failures      # some suites
//   npm run test:alone -- readme 'walkthrough'    # the tests of a suite whose names match a regex
//
// The output of each failed run is kept in a log file, named in the summary. Exit code 1 if any failed.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import { ROOT } from "../test/support/constants";
import { runCommand } from "../test/support/processes";

const E2E = path.join(ROOT, "bin", "test", "e2e");
const LISTER = path.join(ROOT, "bin", "bench", "list-tests.js");

/** The full names (suite names and test name, space-separated, as --test-name-pattern matches them) of a suite's tests. */
async function listTests(file: string): Promise<string[]> {
    const listed = await runCommand(process.execPath, ["--require", LISTER, file], { env: process.env });
    if (listed.code !== 0) throw new Error(`listing the tests of ${file} failed:\n${listed.stderr}`);
    return JSON.parse(listed.stdout.trim().split("\n").pop() ?? "[]") as string[];
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** Runs one test alone; its TAP counts say whether exactly it ran and passed. */
function runAlone(file: string, name: string): Promise<{ passed: boolean; seconds: number; output: string }> {
    const start = performance.now();
    return new Promise((resolve) => {
        const child = spawn(process.execPath, ["--test", "--test-reporter=tap", `--test-name-pattern=^${escape(name)}$`, file], {
            env: process.env,
            stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.on("close", (code) => {
            const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, "m").exec(output)?.[1] ?? -1);
            // A pattern that matched nothing passes with no test run: that is not a pass.
            const passed = code === 0 && count("pass") >= 1 && count("fail") === 0 && count("cancelled") === 0;
            resolve({ passed, seconds: (performance.now() - start) / 1000, output });
        });
    });
}

async function main(): Promise<number> {
    const [suiteArgs, filters] = [process.argv.slice(2).filter((a) => /^[a-z-]+$/.test(a)), process.argv.slice(2).filter((a) => !/^[a-z-]+$/.test(a))];
    const available = readdirSync(E2E)
        .filter((f) => f.endsWith(".e2e.js"))
        .map((f) => f.replace(/\.e2e\.js$/, ""));
    const unknown = suiteArgs.filter((s) => !available.includes(s));
    if (unknown.length > 0) {
        process.stderr.write(`unknown suite ${unknown.join(", ")}; the suites in ${E2E} are: ${available.join(", ")}\n`);
        return 2;
    }
    const suites = suiteArgs.length > 0 ? suiteArgs : available;
    const logs = mkdtempSync(path.join(tmpdir(), "cowsay-alone-"));
    const failed: string[] = [];
    let total = 0;
    let count = 0;
    for (const suite of suites) {
        const file = path.join(E2E, `${suite}.e2e.js`);
        const names = (await listTests(file)).filter((name) => filters.every((f) => new RegExp(f).test(name)));
        process.stdout.write(`\n== ${suite}: ${names.length} tests, each alone\n`);
        for (const name of names) {
            const result = await runAlone(file, name);
            total += result.seconds;
            count++;
            process.stdout.write(`${result.passed ? "pass" : "FAIL"} ${result.seconds.toFixed(1).padStart(6)} s  ${name}\n`);
            if (!result.passed) {
                const log = path.join(logs, `${suite}-${failed.length + 1}.log`);
                writeFileSync(log, result.output);
                failed.push(`${suite}: ${name} (output: ${log})`);
            }
        }
    }
    process.stdout.write(`\n${count - failed.length} of ${count} passed alone, ${total.toFixed(0)} s in all\n`);
    for (const f of failed) process.stdout.write(`failed: ${f}\n`);
    return failed.length === 0 ? 0 : 1;
}

main().then(
    (code) => process.exit(code),
    (err: unknown) => {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
    },
);
