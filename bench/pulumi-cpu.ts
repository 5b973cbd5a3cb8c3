// The CPU one `pulumi preview` costs (its own and its children's: the CLI, the language host, Node, the
// provider), on a stack that renders YAML, in the ways the program can be started. It backs the figures
// in docs/testing.md ("End-to-end tests on the real engine"): why the test harness only transpiles, and
// what Node's compile cache (Pulumi.yaml's nodeargs, NODE_COMPILE_CACHE) spares. Prints medians:
//
//   eval "$(scripts/engine.sh env)"
//   npm run bench:pulumi-cpu            # BENCH_RUNS=7 by default
//
// "first" is the first command in a new project directory (ts-node's cache is keyed by the project's
// path); "again" the median of the next BENCH_RUNS, the modes interleaved so that a noisy machine
// weighs on each alike.
import { spawnSync } from "node:child_process";

import { NO_INSTALLS } from "../test/support/constants";
import { EngineStack, TYPE_CHECKED, pulumiOnPath } from "../test/support/engine";

const RUNS = Number(process.env.BENCH_RUNS ?? "7");
const MODES: { label: string; env: Record<string, string> }[] = [
    { label: "type-checked, no compile cache        ", env: { ...TYPE_CHECKED, NODE_DISABLE_COMPILE_CACHE: "1" } },
    { label: "type-checked, compile cache (users)   ", env: { ...TYPE_CHECKED } },
    { label: "transpile-only, compile cache (tests)", env: {} },
];

/** User + system CPU seconds of `pulumi preview` and everything it started (bash's `times`). */
function previewCpu(stack: EngineStack, env: Record<string, string>): number {
    const run = spawnSync("bash", ["-c", "pulumi preview --non-interactive >/dev/null || exit 1; times"], {
        cwd: stack.dir,
        env: { ...stack.env, ...env },
        encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`pulumi preview failed:\n${run.stderr}`);
    // times: the shell's user and system, then its children's: "0m1.234s 0m0.456s".
    const children = run.stdout.trim().split("\n").pop() ?? "";
    return [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
    if (!pulumiOnPath()) throw new Error('pulumi is not on PATH: eval "$(scripts/engine.sh env)" first');
    const stacks = await Promise.all(MODES.map(() => EngineStack.create({ config: { ...NO_INSTALLS, smokeCheck: "false" } })));
    try {
        const first = MODES.map((mode, i) => previewCpu(stacks[i], mode.env));
        const again: number[][] = MODES.map(() => []);
        for (let r = 0; r < RUNS; r++) MODES.forEach((mode, i) => again[i].push(previewCpu(stacks[i], mode.env)));
        console.log(`pulumi preview, CPU seconds (user + system, all processes), ${process.version}, median of ${RUNS}:`);
        MODES.forEach((mode, i) => console.log(`${mode.label}  first ${first[i].toFixed(2)} s   again ${median(again[i]).toFixed(2)} s`));
    } finally {
        for (const stack of stacks) stack.dispose();
    }
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
});
