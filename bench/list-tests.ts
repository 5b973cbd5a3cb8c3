// Preload (`node --require bin/bench/list-tests.js <test file>`) that prints the full names of the
// tests a node:test file declares, one JSON array on stdout, and runs none of them: no hook, no test
// body. bench/alone.ts uses it to run each end-to-end test alone. Written here because node:test has
// no listing mode (`--test-skip-pattern` and `--test-only` report nothing for what they leave out); it
// replaces describe/it and the hooks on node:test's exports, which the compiled files read at each call.
import test = require("node:test");

type Body = (...args: unknown[]) => unknown;

const names: string[] = [];
const path: string[] = [];

/** The name and the body of a describe/it call: (name, fn), (name, options, fn), (fn) or (options, fn). */
function parse(args: unknown[]): { name: string; body?: Body } {
    const name = typeof args[0] === "string" ? args[0] : typeof args[0] === "function" ? args[0].name : "<anonymous>";
    return { name, body: args.find((a): a is Body => typeof a === "function") };
}

const describe = (...args: unknown[]) => {
    const { name, body } = parse(args);
    path.push(name);
    try {
        // The body only declares tests (it may also read a fixture, as the README suite reads the README).
        void body?.();
    } finally {
        path.pop();
    }
};
const it = (...args: unknown[]) => {
    names.push([...path, parse(args).name].join(" "));
};
const hook = () => undefined;

const api = test as unknown as Record<string, unknown>;
Object.assign(api, { describe, suite: describe, it, test: it, before: hook, after: hook, beforeEach: hook, afterEach: hook });

process.on("exit", () => process.stdout.write(`${JSON.stringify(names)}\n`));
