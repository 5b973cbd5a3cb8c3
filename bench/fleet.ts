// Benchmark (not a test): wall time of `npm run fleet -- switch` (the compiled command, as a user's
// run minus npm and tsc) against three local control planes, one stack each, bake 0 (one round of
// checks after each wave). Three shapes, median of BENCH_RUNS switches each (alternately to v2 and
// back to v1): one stack; three stacks in one wave; three waves of one stack. The goal: three
// clusters in one wave in at most 2x the time of one. Needs `pulumi` on PATH and the control plane
// built (`scripts/cluster.sh build`); everything it starts is torn down at the end, also on Ctrl-C.
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import { pulumiOnPath } from "../test/support/engine";
import { FleetOfClusters } from "../test/fleet/harness";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const STACKS = ["one", "two", "three"];

const SHAPES: { label: string; file: string }[] = [
    { label: "one stack", file: "waves:\n  - name: all\n    stacks: [one]\n" },
    { label: "three stacks in one wave", file: "waves:\n  - name: all\n    stacks: [one, two, three]\n" },
    {
        label: "three waves of one",
        file: "waves:\n  - name: first\n    stacks: [one]\n  - name: second\n    stacks: [two]\n  - name: third\n    stacks: [three]\n",
    },
];

// Ctrl-C (or SIGTERM) stops after the switch that runs now, so that the control planes are stopped.
let stopSignal: NodeJS.Signals | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => (stopSignal ??= signal));

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeShape(fleet: FleetOfClusters, file: string): Promise<number> {
    writeFileSync(path.join(fleet.dir, "fleet.yaml"), `${file}bake: 0\n`);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
        if (stopSignal !== undefined) throw new Error(`stopped by ${stopSignal}`);
        const start = performance.now();
        const result = await fleet.fleet("switch", i % 2 === 0 ? "v2" : "v1");
        if (result.code !== 0) throw new Error(`npm run fleet -- switch exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
        times.push((performance.now() - start) / 1000);
    }
    // Every shape starts from v1 everywhere.
    if (RUNS % 2 === 1) {
        const back = await fleet.fleet("switch", "v1");
        if (back.code !== 0) throw new Error(`switching back to v1 exited ${back.code}:\n${back.stderr}`);
    }
    return median(times);
}

async function main(): Promise<void> {
    if (!pulumiOnPath()) throw new Error('no pulumi on PATH: run `eval "$(scripts/engine.sh env)"` first');
    const fleet = await FleetOfClusters.create(STACKS);
    try {
        const figures: number[] = [];
        console.log(
            `npm run fleet -- switch, wall time, median of ${RUNS} (${process.version}, ${new Date().toISOString().slice(0, 10)}; 3 local API servers, bake 0):`,
        );
        for (const shape of SHAPES) {
            figures.push(await timeShape(fleet, shape.file));
            const ratio = figures.length === 1 ? "" : `   ${(figures[figures.length - 1] / figures[0]).toFixed(2)}x one stack`;
            console.log(`${shape.label.padEnd(26)} ${figures[figures.length - 1].toFixed(1).padStart(6)} s${ratio}`);
        }
        const ratio = figures[1] / figures[0];
        console.log(
            `goal, three stacks in one wave <= 2x one stack: ${ratio <= 2 ? "met" : "NOT met"} (${ratio.toFixed(2)}x); load average ${loadavg()
                .map((l) => l.toFixed(1))
                .join(" ")}`,
        );
    } finally {
        await fleet.dispose();
    }
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
});
