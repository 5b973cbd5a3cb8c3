// Benchmark (not a test): what the metric analysis costs and how fast it swings a bad release back,
// on one local control plane with istiod and its Prometheus (the fleet harness, test/fleet/harness.ts,
// with one stack; its stand-in gateway exports Istio's metrics for that Prometheus to scrape).
// 1. Time to swing back: `npm run fleet -- rollout v2 --steps 10,100 --stack bench` under live load;
//    once istiod pushes the gateway the 10% step, v2 starts answering 20% 503s, and the clock runs from
//    that moment to istiod's push of the route back on v1 (and to the end of the rollout's rollback).
//    For each analysis interval, against the goal: at most one interval plus one `pulumi up`.
// 2. What the analysis adds to a healthy switch: `pulumi config set activeVersion v2 && pulumi up`
//    with prometheusUrl unset (analysis off) and set (a short pre-switch analysis in the gate), then
//    back to v1 (a rollback, never analysed). The `pulumi up` of the goal in 1 is a rollback's under
//    the same live load, timed between the swings back (part 2's run on an idle gateway).
// Every measurement is checked to have happened as designed (the rollout failed on the fault at its
// 10% step, the route is back on v1, the gate analysed v2 only when on); else it exits 1 and prints
// no figure. Needs `pulumi` on PATH and the control plane built; torn down at the end, also on Ctrl-C.
// BENCH_RUNS (default 3) repetitions of each; BENCH_INTERVALS (default 5,10) the intervals, seconds.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import type { SwitchRecord } from "../fleet/record";
import { configKey } from "../test/support/constants";
import { pulumiOnPath } from "../test/support/engine";
import { FleetOfClusters, type Member } from "../test/fleet/harness";
import { startLoad } from "../test/support/load";

const STACK = "bench";
/** Live load through the gateway during a rollout: at the 10% step v2 takes about 4 a second. */
const LOAD_PER_SECOND = 40;
const FAULT = { errorPercent: 20 } as const;
/** The short pre-switch analysis of part 2: two measurements 5 s apart on the gate's synthetic traffic. */
const PRE_SWITCH = { checks: [{ name: "success-rate", metric: "success-rate", min: 99, interval: "5s", count: 2, minRequests: 3 }] };
/** Part 1's analysis at each step of the rollout, on live traffic (no pre-switch analysis). */
const atSteps = (interval: number) => ({
    preSwitch: false,
    checks: [{ name: "success-rate", metric: "success-rate", min: 99, interval: `${interval}s`, count: 2, minRequests: 3 }],
});
/** How long any one wait here may take before the benchmark calls the measurement failed. */
const BOUND_SECONDS = 300;

/** A positive integer from the environment, or one line naming the variable, its value and what is allowed. */
function positiveInt(name: string, fallback: string, max: number): number {
    const raw = process.env[name] ?? fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < 1 || value > max) throw new Error(`${name} is ${JSON.stringify(raw)}; allowed: a whole number from 1 to ${max}`);
    return value;
}

function intervals(): number[] {
    const raw = process.env.BENCH_INTERVALS ?? "5,10";
    const values = raw.split(",").map(Number);
    if (!/^\d+(,\d+)*$/.test(raw) || values.some((v) => v < 2 || v > 300)) {
        throw new Error(
            `BENCH_INTERVALS is ${JSON.stringify(raw)}; allowed: comma-separated whole seconds from 2 to 300 (at least twice Prometheus's 1 s scrape)`,
        );
    }
    return values;
}

// Ctrl-C (or SIGTERM) stops after the measurement that runs now, so that the control plane is stopped.
let stopSignal: NodeJS.Signals | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => (stopSignal ??= signal));
const checkStop = () => {
    if (stopSignal !== undefined) throw new Error(`stopped by ${stopSignal}`);
};

function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const seconds = (ms: number) => ms / 1000;
const range = (xs: readonly number[]) => `${median(xs).toFixed(1)} s (${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
const load = () =>
    loadavg()
        .map((l) => l.toFixed(1))
        .join(" ");

/** Fails the benchmark with what was seen, when a measurement did not happen as designed. */
function expect(condition: boolean, what: string, output: string): asserts condition {
    if (!condition) throw new Error(`not measured as designed: ${what}\n${output}`);
}

/** One swing back of part 1. */
interface SwingBack {
    /** From fault-on to the failed measurement's verdict (its `at` in the rollout's record) (s). */
    readonly toVerdict: number;
    /** From fault-on to istiod pushing the gateway's live route back to v1 (s). */
    readonly toGateway: number;
    /** From fault-on to the end of the rollout command (its rollback update done) (s). */
    readonly toEnd: number;
    /** Which measurement failed, e.g. "1/2". */
    readonly measurement: string;
}

async function swingBack(fleet: FleetOfClusters, member: Member, interval: number): Promise<SwingBack> {
    await fleet.reset();
    await fleet.pulumi(STACK, "config", "set", configKey("analysis"), JSON.stringify(atSteps(interval)));
    const traffic = startLoad({ url: `https://${member.gateway.address}`, requestsPerSecond: LOAD_PER_SECOND, durationMs: BOUND_SECONDS * 1000 });
    try {
        const rollout = fleet.fleet("rollout", "v2", "--steps", "10,100", "--stack", STACK);
        // The first step is live once istiod pushes it to the gateway; the rollout ending first is a failure.
        const live = await Promise.race([member.istio.expectGatewayLive("v1:90 v2:10", BOUND_SECONDS).then(() => true), rollout.then(() => false)]);
        if (!live) {
            const r = await rollout;
            expect(false, "the rollout ended before its 10% step reached the gateway", r.stdout + r.stderr);
        }
        const faultOn = performance.now();
        // The record's times are the fleet process's wall clock.
        const faultOnWall = Date.now();
        member.gateway.faults.set("v2", FAULT);
        await member.istio.expectGatewayLive("v1", interval * 2 + BOUND_SECONDS);
        const atGateway = performance.now();
        const result = await rollout;
        const ended = performance.now();
        const output = result.stdout + result.stderr;
        expect(result.code === 1, `the rollout exits 1 (a failed step), not ${result.code}`, output);
        const failed =
            /^fleet: bench failed at step 10% \(analysis\): analysis of v2 on bench at 10% failed: check success-rate measurement (\d+\/\d+): \d+(?:\.\d+)? is below min 99/m.exec(
                result.stderr,
            );
        expect(failed !== null, "the step failed on the analysis of v2 at 10%, its success rate below 99", output);
        expect(/^bench +alone +runs v1; rolled back$/m.test(result.stdout), "the stack was rolled back to v1", output);
        const record = JSON.parse(readFileSync(path.join(fleet.dir, ".fleet", "last-switch.json"), "utf8")) as SwitchRecord;
        expect(record.state === "rolled-back", `the record says rolled-back, not ${record.state}`, output);
        const verdict = record.rollout?.analyses
            .find((a) => a.stack === STACK && a.step === 10 && a.verdict === "failed")
            ?.measurements.find((m) => m.verdict === "failed");
        expect(verdict !== undefined, "the record holds the failed measurement", JSON.stringify(record.rollout));
        expect(
            /:activeVersion: v1$/m.test(fleet.stackFile(STACK)) && !/:trafficSplit:/.test(fleet.stackFile(STACK)),
            "the stack file is back on v1 alone",
            fleet.stackFile(STACK),
        );
        return {
            toVerdict: seconds(Date.parse(verdict.at) - faultOnWall),
            toGateway: seconds(atGateway - faultOn),
            toEnd: seconds(ended - faultOn),
            measurement: failed[1],
        };
    } finally {
        await traffic.stop();
        member.gateway.faults.clear();
    }
}

/**
 * One rollback `pulumi up` under the live load of part 1 (the stack on v2 first, untimed): the
 * `pulumi up` of part 1's goal, measured as the swing back runs it, with the gateway serving and
 * Prometheus scraping. Part 2's rollbacks run on an idle gateway and are the cheaper of the two.
 */
async function rollbackUnderLoad(fleet: FleetOfClusters, member: Member): Promise<number> {
    const traffic = startLoad({ url: `https://${member.gateway.address}`, requestsPerSecond: LOAD_PER_SECOND, durationMs: BOUND_SECONDS * 1000 });
    try {
        await switchTo(fleet, member, "v2", false);
        return (await switchTo(fleet, member, "v1", false)).up;
    } finally {
        await traffic.stop();
    }
}

/** One switch of part 2 (`config set activeVersion && pulumi up`), checked at the gateway; its durations. */
async function switchTo(fleet: FleetOfClusters, member: Member, version: "v1" | "v2", analysed: boolean): Promise<{ total: number; up: number }> {
    const start = performance.now();
    await fleet.pulumi(STACK, "config", "set", configKey("activeVersion"), version);
    const upStart = performance.now();
    const up = await fleet.pulumi(STACK, "up", "--yes", "--skip-preview", "--non-interactive");
    const end = performance.now();
    const output = up.stdout + up.stderr;
    await member.istio
        .expectGatewayLive(version, BOUND_SECONDS)
        .catch((err: unknown) => expect(false, `the gateway's route is ${version}: ${(err as Error).message}`, output));
    if (version === "v2") {
        expect(/gate: v2 answered with its own page/.test(output), "the gate fetched v2", output);
        expect(
            analysed === /gate: analysis of v2 passed: success-rate 2\/2 at http:\/\/127\.0\.0\.1:\d+/.test(output),
            analysed ? "the gate's analysis of v2 passed" : "no analysis ran (prometheusUrl unset)",
            output,
        );
    } else {
        expect(
            /gate: not fetching v1: live already, or live just before this switch \(a rollback\)/.test(output) && !/gate: analys/.test(output),
            "the switch back to v1 was a rollback: not fetched, not analysed",
            output,
        );
    }
    return { total: seconds(end - start), up: seconds(end - upStart) };
}

async function main(): Promise<void> {
    const runs = positiveInt("BENCH_RUNS", "3", 20);
    const steps = intervals();
    if (!pulumiOnPath()) throw new Error('no pulumi on PATH: run `eval "$(scripts/engine.sh env)"` first');
    const startedAt = Date.now();
    console.log(
        `analysis benchmark (${process.version}, ${new Date().toISOString().slice(0, 10)}): BENCH_RUNS=${runs}, BENCH_INTERVALS=${steps.join(",")}; load average at start ${load()}`,
    );
    console.log(
        `one local API server with istiod and Prometheus (1 s scrape), one stack, the stand-in gateway under ${LOAD_PER_SECOND} requests/s during rollouts`,
    );
    // The gateway reads istiod's push and the workloads once a second under load, as in the rollout suite.
    const fleet = await FleetOfClusters.create([STACK], {}, { routeCacheMs: 1000 });
    try {
        const member = fleet.member(STACK);
        const prometheus = member.cluster.prometheus;
        if (prometheus === undefined) throw new Error("the control plane runs no Prometheus (COWSAY_CLUSTER_PROMETHEUS)");

        // Part 2 first, on an idle gateway.
        await fleet.pulumi(STACK, "config", "set", configKey("analysis"), JSON.stringify(PRE_SWITCH));
        // One untimed switch and back first: the first update after the stack's creation starts what
        // later ones find running (the gate's first fetch, the provider's caches), and would fall on "off".
        await fleet.project.run("config", "rm", configKey("prometheusUrl"), "--stack", STACK);
        await switchTo(fleet, member, "v2", false);
        await switchTo(fleet, member, "v1", false);
        const switches = { off: [] as number[], on: [] as number[] };
        const rollbacks: number[] = [];
        for (let i = 0; i < runs; i++) {
            // Interleaved, so that a change in the machine's load falls on both alike.
            for (const mode of ["off", "on"] as const) {
                checkStop();
                if (mode === "off") await fleet.project.run("config", "rm", configKey("prometheusUrl"), "--stack", STACK);
                else await fleet.pulumi(STACK, "config", "set", configKey("prometheusUrl"), prometheus.url);
                switches[mode].push((await switchTo(fleet, member, "v2", mode === "on")).total);
                rollbacks.push((await switchTo(fleet, member, "v1", false)).up);
            }
        }

        await fleet.pulumi(STACK, "config", "set", configKey("prometheusUrl"), prometheus.url);
        const swings = new Map<number, SwingBack[]>();
        const loadedRollbacks: number[] = [];
        for (const interval of steps) {
            swings.set(interval, []);
            for (let i = 0; i < runs; i++) {
                checkStop();
                swings.get(interval)?.push(await swingBack(fleet, member, interval));
                // Interleaved with the swings back, so that both see the same machine.
                checkStop();
                loadedRollbacks.push(await rollbackUnderLoad(fleet, member));
            }
        }

        const upMedian = median(loadedRollbacks);
        console.log(
            `\n1. a v2 answering ${FAULT.errorPercent}% 503s from the moment its 10% step reaches the gateway (npm run fleet -- rollout v2 --steps 10,100 --stack ${STACK};`,
        );
        console.log(
            `   check success-rate min 99, count 2, minRequests 3, preSwitch false), until istiod pushes the gateway v1 again; median of ${runs} (min-max):`,
        );
        console.log(
            `   one pulumi up = the median rollback \`pulumi up --yes --skip-preview\` under the same ${LOAD_PER_SECOND} requests/s, between the swings back: ${range(loadedRollbacks)} (${loadedRollbacks.length} runs; on an idle gateway, part 2: ${median(rollbacks).toFixed(1)} s)`,
        );
        for (const [interval, xs] of swings) {
            const toGateway = xs.map((s) => s.toGateway);
            const goal = interval + upMedian;
            const ratio = median(toGateway) / goal;
            console.log(
                `   interval ${String(interval).padStart(3)} s   to the gateway ${range(toGateway)}   ${ratio.toFixed(2)}x interval + one pulumi up (${goal.toFixed(1)} s): goal ${ratio <= 1 ? "met" : "NOT met"}\n` +
                    `                  to the failed verdict ${range(xs.map((s) => s.toVerdict))} (measurement ${xs.map((s) => s.measurement).join(", ")})   to the rollback's end ${range(xs.map((s) => s.toEnd))}`,
            );
        }
        const off = median(switches.off);
        const on = median(switches.on);
        console.log(
            `\n2. a healthy switch, pulumi config set activeVersion v2 && pulumi up --yes --skip-preview (the gate fetches v2), median of ${runs} (min-max):`,
        );
        console.log(`   analysis off (prometheusUrl unset)                            ${range(switches.off)}`);
        console.log(`   analysis on  (success-rate min 99, interval 5s, count 2)       ${range(switches.on)}`);
        console.log(`   the analysis adds ${(on - off).toFixed(1)} s (${(on / off).toFixed(2)}x); its two measurements alone span count x interval = 10 s`);
        console.log(`   back to v1 (a rollback: not fetched, not analysed), its pulumi up: ${range(rollbacks)} (${rollbacks.length} runs)`);
        console.log(`\ntotal ${((Date.now() - startedAt) / 60_000).toFixed(1)} min; load average at end ${load()}`);
    } finally {
        await fleet.dispose();
    }
}

main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    // The control plane is down already (finally); a route watch of a failed wait may still run to
    // its own bound, which must not keep a failed benchmark alive for minutes.
    process.exit(1);
});
