// Benchmark (not a test): how long the program takes to evaluate under Pulumi mocks, for the
// 2-version example stack and for a 50-version stack. Prints the median of several runs and the
// ratio of the two medians, all measured in this one process.
import { performance } from "node:perf_hooks";

import { runProgram } from "../test/support/helpers";

const RUNS = Number(process.env.BENCH_RUNS ?? 7);

function stackWith(count: number): Record<string, string> {
    const versions: Record<string, { image: string; expect: string }> = {};
    for (let i = 1; i <= count; i++) versions[`v${i}`] = { image: `dougbtv/nginx-cowsay:v${i}`, expect: `version ${i}` };
    return { versions: JSON.stringify(versions), gatewayUrl: "https://203.0.113.10" };
}

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function measure(label: string, config: Record<string, string>): Promise<number> {
    await runProgram(config); // warm-up: module loading and JIT are not the program's cost
    const times: number[] = [];
    let resources = 0;
    for (let i = 0; i < RUNS; i++) {
        const start = performance.now();
        const run = await runProgram(config);
        times.push(performance.now() - start);
        resources = run.resources.length;
    }
    const m = median(times);
    console.log(
        `${label.padEnd(12)} resources=${String(resources).padStart(4)}  median=${m.toFixed(1)} ms  min=${Math.min(...times).toFixed(1)} ms  max=${Math.max(...times).toFixed(1)} ms  (runs=${RUNS})`,
    );
    return m;
}

async function main(): Promise<void> {
    console.log(`node ${process.version}; program evaluation under mocks, including the mocks' own registration work`);
    const two = await measure("2 versions", stackWith(2));
    const fifty = await measure("50 versions", stackWith(50));
    console.log(`ratio 50/2: ${(fifty / two).toFixed(2)}x`);
}

main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
