// The rollout end to end: `npm run fleet -- rollout` against two local control planes, each with
// istiod and its own Prometheus (a canary wave and a production wave, one stack per cluster, each with
// its own stand-in gateway, which exports Istio's request metrics for its cluster's Prometheus to
// scrape), on the real engine, under live load through each gateway. A healthy v2 goes live through
// 10, 50 and 100% (docs/fleet.md's block, as written); a v2 answering 20% 5xx in the second wave
// fails its first step there, and a v2 answering late fails its first step in the canary on
// request-duration, each time every stack the rollout touched back on v1; a v2 with no traffic (no
// data) never passes. And, needing no metrics: the refusals before anything changes, a preview that
// sends no query (docs/fleet.md's block; a listening socket counts every connection), an unreachable
// Prometheus that never passes, Ctrl-C mid-analysis, and a rollout SIGKILLed mid-analysis or in a
// step's update, which `rollback` converges from. Each test starts from every stack on v1
// (FleetOfClusters.reset) and asserts on where each cluster's istiod sends the gateway's traffic
// afterwards, and on the stack files, outputs, locks, the histories and the record.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import type { SwitchRecord } from "../../fleet/record";
import type { CommandResult } from "../support/processes";
import { configKey } from "../support/constants";
import { ROOT, requirePulumi } from "../support/engine";
import { closedPort } from "../support/faults";
import { FleetOfClusters } from "../fleet/harness";
import { startLoad } from "../support/load";
import { readmeBlocks, runBlock, type ReadmeBlock } from "../support/readme";

const DOC = path.join(ROOT, "docs", "fleet.md");
const LOAD_PER_SECOND = 40;
const STACKS = ["staging", "eu"] as const;
const FLEET_FILE = "waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu]\nbake: 0\nonFailure: rollback\n";
/**
 * Short analyses: two measurements 5 s apart (Prometheus scrapes every second), each over the last
 * 5 s; at 10% of LOAD_PER_SECOND, v2 takes about 20 requests in a window, minRequests asks 3. Both
 * checks run at once, so the second costs no time.
 */
const ANALYSIS = JSON.stringify({
    preSwitch: false,
    checks: [
        { name: "success-rate", metric: "success-rate", min: 99, interval: "5s", count: 2, minRequests: 3 },
        { name: "request-duration", metric: "request-duration", max: 500, interval: "5s", count: 2, minRequests: 3 },
    ],
});
/** A late v2: each answer takes 700 ms, inside the load's 2 s timeout (so every request is counted), above the 500 ms bound. */
const LATE_MS = 700;
/** The stack summary line a rollout prints last, per stack, for a failed first step. */
type StepEnd = "rolled back" | "not touched";
const WAVES: Readonly<Record<(typeof STACKS)[number], string>> = { staging: "canary", eu: "production" };
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A socket that accepts and never answers, and counts who came: a Prometheus that hangs, and a witness. */
class SilentPort {
    connections = 0;
    private readonly sockets = new Set<Socket>();
    private constructor(private readonly server: Server) {}

    static async start(): Promise<SilentPort> {
        const server = createServer();
        const port = new SilentPort(server);
        server.on("connection", (socket) => {
            port.connections += 1;
            port.sockets.add(socket);
            socket.on("close", () => port.sockets.delete(socket));
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        return port;
    }

    get url(): string {
        return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    async stop(): Promise<void> {
        for (const socket of this.sockets) socket.destroy();
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
}

before(requirePulumi);

describe("a rollout across two clusters (real engine, two API servers with istiod and Prometheus, a stand-in gateway each)", () => {
    let fleet: FleetOfClusters;
    let silent: SilentPort;
    const stackFiles = () => Object.fromEntries(STACKS.map((s) => [s, fleet.stackFile(s)]));
    const record = () => JSON.parse(readFileSync(path.join(fleet.dir, ".fleet", "last-switch.json"), "utf8")) as SwitchRecord;
    // Every update: the CLI's history shows 10 by default, and the tests count what a rollout added.
    const history = async (stack: string) =>
        JSON.parse((await fleet.pulumi(stack, "stack", "history", "--json", "--page-size", "10000")).stdout) as { message: string; result: string }[];
    const setPrometheus = (url: string) => Promise.all(STACKS.map((s) => fleet.pulumi(s, "config", "set", configKey("prometheusUrl"), url)));
    /**
     * Every stack on v1, the fleet file written, each stack's Prometheus at `url`. A rollout rolled
     * back from its 10% step leaves no gate trusting v2 (reset refuses a stack whose gate would skip v2).
     */
    const fresh = async (url: string) => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), FLEET_FILE);
        await setPrometheus(url);
    };

    /** As fresh, each stack judged by its own cluster's Prometheus, which scrapes its gateway. */
    const freshOnPrometheus = async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), FLEET_FILE);
        await Promise.all(STACKS.map((s) => fleet.pulumi(s, "config", "set", configKey("prometheusUrl"), fleet.member(s).cluster.prometheus?.url ?? "")));
    };
    /** Live traffic through each gateway while `run` runs. */
    const underLoad = async <T>(run: () => Promise<T>): Promise<T> => {
        const load = fleet.members.map((m) => startLoad({ url: `https://${m.gateway.address}`, requestsPerSecond: LOAD_PER_SECOND, durationMs: 600_000 }));
        try {
            return await run();
        } finally {
            await Promise.all(load.map((l) => l.stop()));
        }
    };
    const historyLengths = async () => Object.fromEntries(await Promise.all(STACKS.map(async (s) => [s, (await history(s)).length] as const)));
    const prometheusOf = (stack: string) => fleet.member(stack).cluster.prometheus?.url ?? "";

    /**
     * What a rollout whose first step did not pass leaves (exit 1, docs/fleet.md): the one line that
     * says why (the stack, the step, the check, `reason`, the bound and the query as sent to `url`),
     * every measurement on stdout, each stack rolled back or not touched as `ends` says; every stack
     * on v1 in istiod's push, its outputs, its stack file and its history (a touched stack: its step's
     * update and the rollback's; an untouched one: none since `historiesBefore`), no lock left; the
     * record rolled back with the deciding measurement. `reason` is a regular expression's source; its
     * groups come back in `match` (after the check's name).
     */
    const expectFirstStepFailed = async (
        result: CommandResult,
        expected: {
            stack: string;
            verdict: "failed" | "inconclusive";
            checks: readonly string[];
            reason: string;
            url: string;
            ends: Readonly<Record<string, StepEnd>>;
            historiesBefore: Record<string, number>;
        },
    ) => {
        const { stack, verdict } = expected;
        assert.equal(result.code, 1, result.stdout + result.stderr);
        const said = verdict === "failed" ? "failed" : "was inconclusive \\(not a pass\\)";
        const line = new RegExp(
            `^fleet: ${stack} failed at step 10% \\(analysis\\): analysis of v2 on ${stack} at 10% ${said}: check (${expected.checks.map(escape).join("|")}) measurement [12]/2: ${expected.reason} \\(bound: (?:min|max) \\d+\\); query at ${escape(expected.url)}: (.+)$`,
            "m",
        ).exec(result.stderr);
        assert.ok(line !== null, result.stderr);
        const [check, query] = [line[1], line[line.length - 1]];
        assert.match(result.stdout, /^analysis \(every measurement, also in \.fleet\/last-switch\.json\):$/m);
        assert.ok(result.stdout.includes(`\n    query: ${query}\n`), `the query as sent is printed under its measurement:\n${result.stdout}`);
        const summary = STACKS.map((s) => `${s} +${WAVES[s]} +runs v1; ${expected.ends[s]}`).join("\n");
        assert.match(result.stdout, new RegExp(`^${summary}\n$`, "m"));
        await fleet.expectPushed(Object.fromEntries(STACKS.map((s) => [s, { v1: 100 }])));
        // Every stack at once: each pulumi run costs its start.
        await Promise.all(
            STACKS.map(async (s) => {
                const [outputs, entries] = await Promise.all([fleet.outputs(s), history(s)]);
                assert.deepEqual(outputs.trafficSplit, { v1: 100 }, `${s}: its outputs`);
                assert.match(fleet.stackFile(s), /cowsay-bluegreen:activeVersion: v1$/m);
                assert.doesNotMatch(fleet.stackFile(s), /trafficSplit/);
                const added = entries.length - expected.historiesBefore[s];
                if (expected.ends[s] === "not touched") {
                    assert.equal(added, 0, `${s}: no update`);
                    return;
                }
                const [rolledBack, stepped] = entries;
                assert.deepEqual([added, rolledBack.result, stepped.result], [2, "succeeded", "succeeded"], `${s}: its step and its rollback`);
                assert.match(stepped.message, /^fleet rollout \S+: v1 90% \/ v2 10%$/);
                assert.match(rolledBack.message, /^fleet rollback \S+$/);
            }),
        );
        assert.deepEqual(fleet.project.locks(), [], "no lock left");
        const kept = record();
        assert.equal(kept.state, "rolled-back");
        assert.deepEqual(kept.rollout?.steps, [10, 50, 100]);
        const decided = kept.rollout?.analyses.find((a) => a.stack === stack && a.step === 10 && a.verdict === verdict);
        assert.ok(decided !== undefined, JSON.stringify(kept.rollout));
        const measurement = decided.measurements.find((m) => m.check === check && m.verdict === verdict && m.query === query);
        assert.ok(measurement !== undefined, JSON.stringify(decided));
        return { match: line.slice(2, -1), measurement };
    };

    before(async () => {
        silent = await SilentPort.start();
        // Live load through each stand-in gateway: it reads istiod's push and the workloads once a second.
        fleet = await FleetOfClusters.create(STACKS, { analysis: ANALYSIS, prometheusUrl: silent.url }, { routeCacheMs: 1000 });
    });
    after(async () => {
        await fleet?.dispose();
        await silent?.stop();
    });

    it("refuses before anything changes (exit 4): a stack without prometheusUrl, a version no stack declares, a stack that is not one", async () => {
        await fresh(silent.url);
        await fleet.project.run("config", "rm", configKey("prometheusUrl"), "--stack", "eu");
        const withoutUrlFiles = stackFiles();
        const withoutUrl = await fleet.fleet("rollout", "v2");
        assert.equal(withoutUrl.code, 4, withoutUrl.stdout + withoutUrl.stderr);
        assert.equal(
            withoutUrl.stderr,
            "error: stack eu: prometheusUrl is not set; a rollout judges every step on the stack's Prometheus (pulumi config set prometheusUrl http://prometheus:9090 --stack eu; docs/analysis.md). Nothing was changed.\n",
        );
        assert.deepEqual(stackFiles(), withoutUrlFiles, "no stack file written");
        await setPrometheus(silent.url);
        const files = stackFiles();
        const v3 = await fleet.fleet("rollout", "v3");
        assert.equal(v3.code, 4);
        assert.equal(v3.stderr, 'error: stack staging: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.\n');
        const mars = await fleet.fleet("rollout", "v2", "--stack", "mars");
        assert.equal(mars.code, 4);
        assert.equal(mars.stderr, "error: --stack mars is not a stack of this project; allowed: eu, staging\n");
        assert.deepEqual(stackFiles(), files, "no stack file written");
        assert.equal(existsSync(path.join(fleet.dir, ".fleet")), false, "no rollout recorded");
        assert.equal(silent.connections, 0, "no Prometheus asked");
    });

    it("the preview: per stack the steps, each check's bound and resolved query, the least time, and the first step's diff; no query sent, no stack file written", async () => {
        await fresh(silent.url);
        const files = stackFiles();
        assert.deepEqual(
            readmeBlocks(DOC)
                .map((b) => b.id)
                .filter((id) => id.startsWith("fleet-rollout")),
            ["fleet-rollout-preview", "fleet-rollout"],
            "every rollout block of docs/fleet.md is run by this suite",
        );
        const block = readmeBlocks(DOC).find((b) => b.id === "fleet-rollout-preview") as ReadmeBlock;
        const result = await runBlock(block, fleet.dir, fleet.project.env);
        assert.equal(result.code, 0, result.output);
        const report = readFileSync(path.join(fleet.dir, "rollout-preview.md"), "utf8");
        assert.equal(report.split("\n")[0], "## Fleet preview: rollout of v2 in steps 10%, 50%, 100%");
        assert.match(report, /^\| canary \| staging \| v1 \| v1 90% \/ v2 10% \(first step\) \| \d+ to update \|$/m);
        assert.match(report, /^\| production \| eu \| v1 \| v1 90% \/ v2 10% \(first step\) \| \d+ to update \|$/m);
        // Two waves, three steps: six rounds of one 10 s analysis.
        assert.ok(report.includes("It takes at least 1 min: after each wave of each step"), report);
        assert.ok(report.includes("| 50% | v1 50% / v2 50% | success-rate | min 99 | 5 s | 2 | 3 |"), report);
        assert.ok(report.includes("| 50% | v1 50% / v2 50% | request-duration | max 500 | 5 s | 2 | 3 |"), report);
        assert.ok(
            report.includes(
                'success-rate (v2): sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5.."}[5s]))',
            ),
            report,
        );
        assert.ok(
            report.includes(
                'request-duration (v2): histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[5s])))',
            ),
            report,
        );
        assert.ok(report.includes("<details><summary>staging: "), report);
        assert.deepEqual(stackFiles(), files);
        assert.equal(silent.connections, 0, "the preview sent no query");
    });

    it("an unreachable Prometheus never passes: the canary's first step is inconclusive, it goes back to v1, production is never touched (exit 1)", async () => {
        const port = await closedPort();
        const url = `http://127.0.0.1:${port}`;
        await fresh(url);
        const historiesBefore = await historyLengths();
        const result = await fleet.fleet("rollout", "v2");
        const { measurement } = await expectFirstStepFailed(result, {
            stack: "staging",
            verdict: "inconclusive",
            checks: ["success-rate", "request-duration"],
            reason: `Prometheus did not answer \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); unreachable is inconclusive`,
            url,
            ends: { staging: "rolled back", eu: "not touched" },
            historiesBefore,
        });
        assert.equal(measurement.value, undefined, "no value without an answer");
        assert.match(
            result.stdout,
            /^ {2}\S+Z {2}(success-rate|request-duration) 1\/2 {2}inconclusive {2}value no data \(bound: (min 99|max 500)\): Prometheus did not answer/m,
        );
    });

    it("no data: a v2 that takes no traffic (no load) is inconclusive at the canary's first step on its own Prometheus, never a pass; it goes back to v1, production is never touched (exit 1)", async () => {
        await freshOnPrometheus();
        const historiesBefore = await historyLengths();
        // No load: only the gate's and the bake's few fetches reach v2, fewer than minRequests in a window.
        const result = await fleet.fleet("rollout", "v2");
        await expectFirstStepFailed(result, {
            stack: "staging",
            verdict: "inconclusive",
            checks: ["success-rate", "request-duration"],
            reason: "\\d+(?:\\.\\d+)? requests in 5s, fewer than minRequests 3: too little traffic to judge",
            url: prometheusOf("staging"),
            ends: { staging: "rolled back", eu: "not touched" },
            historiesBefore,
        });
        assert.doesNotMatch(result.stdout, /^staging at 10%: passed/m, "no pass on no data");
    });

    it("Ctrl-C mid-analysis stops at once: nothing more starts, the canary stays at its step, unlocked, rollback returns it (exit 130)", async () => {
        await fresh(silent.url);
        const run = await fleet.startFleet(/^\[staging *\] step 10%: switched$/m, "rollout", "v2");
        // Into the analysis: its first query reached the Prometheus that never answers.
        for (const deadline = Date.now() + 30_000; silent.connections === 0; await new Promise((r) => setTimeout(r, 100))) {
            if (Date.now() > deadline || run.ended()) throw new Error(`no query reached Prometheus:\n${run.output()}`);
        }
        const signalled = Date.now();
        process.kill(-run.pid, "SIGINT");
        assert.equal(await run.exited, 130, run.output());
        // The query's own bound is 5 s; the signal ends it sooner, and nothing waits for the next measurement.
        assert.ok(Date.now() - signalled < 5000, `stopped in ${Date.now() - signalled} ms`);
        assert.match(run.output(), /^staging +canary +runs v1 90% \/ v2 10%; switched$/m);
        assert.match(run.output(), /^eu +production +runs v1; not touched$/m);
        assert.doesNotMatch(run.output(), /step 10%: switching \(wave production\)/);
        assert.equal(record().state, "interrupted");
        // One consistent state per stack: the step's, in istiod's push and in the outputs alike; no lock.
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 100 } });
        assert.deepEqual((await fleet.outputs("staging")).trafficSplit, { v1: 90, v2: 10 });
        assert.deepEqual(fleet.project.locks(), [], "no lock left");
        const again = await fleet.fleet("rollout", "v2");
        assert.match(again.stderr, /^error: the last fleet rollout \(to v2, started \S+\) ended interrupted: run npm run fleet -- rollback first\n$/);
        const back = await fleet.fleet("rollback");
        assert.equal(back.code, 0, back.stdout + back.stderr);
        assert.match(back.stdout, /^staging +canary +runs v1; rolled back$/m);
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        assert.equal(record().state, "rolled-back");
        assert.deepEqual((await fleet.outputs("staging")).trafficSplit, { v1: 100 });
    });

    it("a rollout SIGKILLed mid-analysis leaves its record; rollback converges from it", async () => {
        await fresh(silent.url);
        const before = silent.connections;
        const run = await fleet.startFleet(/^\[staging *\] step 10%: switched$/m, "rollout", "v2", "--stack", "staging");
        for (const deadline = Date.now() + 30_000; silent.connections === before; await new Promise((r) => setTimeout(r, 100))) {
            if (Date.now() > deadline || run.ended()) throw new Error(`no query reached Prometheus:\n${run.output()}`);
        }
        process.kill(-run.pid, "SIGKILL");
        assert.equal(await run.exited, 128 + 9);
        assert.equal(record().state, "switching", "the record says the rollout did not finish");
        // Killed between updates: the step's update had ended, so no lock, and the push is the step's.
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 100 } });
        assert.deepEqual(fleet.project.locks(), [], "no lock: no update was in flight");
        const back = await fleet.fleet("rollback");
        assert.equal(back.code, 0, back.stdout + back.stderr);
        // The one stack, in the wave a rollout of one stack has; eu was never part of it.
        assert.equal(back.stdout, "staging  alone  runs v1; rolled back\n");
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        assert.equal(record().state, "rolled-back");
        assert.match(fleet.stackFile("staging"), /cowsay-bluegreen:activeVersion: v1$/m);
        assert.doesNotMatch(fleet.stackFile("staging"), /trafficSplit/);
    });

    it("a rollout SIGKILLed in a step's update: every stack keeps its old route (not half a step), the lock it left is cleared by rollback, which converges every stack to v1", async () => {
        await fresh(silent.url);
        const queries = silent.connections;
        const gateway = fleet.member("staging").gateway;
        // The canary's gate asks its gateway for v2, which never answers: the step's update is in flight.
        gateway.mode = "silent";
        const run = await fleet.startFleet(/^\[staging *\] step 10%: switching/m, "rollout", "v2");
        try {
            for (const deadline = Date.now() + 60_000; gateway.unanswered === 0; await new Promise((r) => setTimeout(r, 100))) {
                if (Date.now() > deadline || run.ended()) throw new Error(`the gate never asked the gateway:\n${run.output()}`);
            }
            process.kill(-run.pid, "SIGKILL");
            assert.equal(await run.exited, 128 + 9);
        } finally {
            gateway.mode = "serving";
        }
        assert.equal(record().state, "switching", "the record says the rollout did not finish");
        assert.equal(silent.connections, queries, "killed before any analysis");
        // The gate comes before the route in the program: the route was never written, so istiod
        // pushes the old one and the outputs still say v1 (the stack file already holds the step).
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        assert.deepEqual((await fleet.outputs("staging")).trafficSplit, { v1: 100 });
        assert.ok(fleet.project.locks().length > 0, "the killed update left its lock");
        const back = await fleet.fleet("rollback");
        assert.equal(back.code, 0, back.stdout + back.stderr);
        assert.match(back.stdout + back.stderr, /^\[staging *\] removed the lock left by pid \d+, which no longer runs \(pulumi cancel\)$/m);
        assert.match(back.stdout, /^staging +canary +runs v1; rolled back$/m);
        assert.match(back.stdout, /^eu +production +runs v1; /m);
        assert.deepEqual(fleet.project.locks(), []);
        assert.equal(record().state, "rolled-back");
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        for (const stack of STACKS) {
            assert.match(fleet.stackFile(stack), /cowsay-bluegreen:activeVersion: v1$/m);
            assert.doesNotMatch(fleet.stackFile(stack), /trafficSplit/);
            assert.deepEqual((await fleet.outputs(stack)).trafficSplit, { v1: 100 }, `${stack}: its outputs`);
        }
    });

    it("a v2 answering late in the canary fails its first step on request-duration, judged by staging's Prometheus; it goes back to v1, production is never touched, the failing query and value printed (exit 1)", async () => {
        await freshOnPrometheus();
        fleet.member("staging").gateway.faults.set("v2", { delayMs: LATE_MS });
        const historiesBefore = await historyLengths();
        const result = await underLoad(() => fleet.fleet("rollout", "v2"));
        const { match, measurement } = await expectFirstStepFailed(result, {
            stack: "staging",
            verdict: "failed",
            checks: ["request-duration"],
            reason: "(\\d+(?:\\.\\d+)?) is above max 500",
            url: prometheusOf("staging"),
            ends: { staging: "rolled back", eu: "not touched" },
            historiesBefore,
        });
        assert.match(
            result.stderr,
            /query at \S+: histogram_quantile\(0\.99, sum by \(le\) \(rate\(istio_request_duration_milliseconds_bucket\{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"\}\[5s\]\)\)\)$/m,
        );
        // As printed: to three decimals. Every answer takes LATE_MS or more (on a loaded machine one in
        // a window may take over 1000 ms, and the p99 then lies in a higher bucket): above the bound.
        const value = Number(match[0]);
        assert.ok(value > 500, `v2's p99: ${value}`);
        assert.ok(Math.abs((measurement.value ?? 0) - value) < 0.001 && (measurement.requests ?? 0) >= 3, JSON.stringify(measurement));
    });

    it("a v2 answering 20% 5xx in eu fails its first step there, judged by eu's Prometheus; both stacks go back to v1, the failing query and value printed (exit 1)", async () => {
        await freshOnPrometheus();
        fleet.member("eu").gateway.faults.set("v2", { errorPercent: 20 });
        const historiesBefore = await historyLengths();
        const result = await underLoad(() => fleet.fleet("rollout", "v2"));
        const { match, measurement } = await expectFirstStepFailed(result, {
            stack: "eu",
            verdict: "failed",
            checks: ["success-rate"],
            reason: "(\\d+(?:\\.\\d+)?) is below min 99",
            url: prometheusOf("eu"),
            ends: { staging: "rolled back", eu: "rolled back" },
            historiesBefore,
        });
        assert.match(
            result.stderr,
            /query at \S+: sum\(rate\(istio_requests_total\{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5\.\."\}\[5s\]\)\)/m,
        );
        // As printed: to three decimals.
        const value = Number(match[0]);
        assert.ok(value > 50 && value < 99, `a fifth of v2's answers fail: ${value}`);
        assert.ok(Math.abs((measurement.value ?? 0) - value) < 0.001 && (measurement.requests ?? 0) >= 3, JSON.stringify(measurement));
        // The canary passed its step on its own Prometheus first.
        assert.match(
            result.stdout,
            /^staging at 10%: passed: analysis of v2 on staging at 10% passed: success-rate 2\/2, request-duration 2\/2 at http:\/\/127\.0\.0\.1:\d+$/m,
        );
    });

    // Last: it ends with v2 live everywhere.
    it("a healthy v2 rolls out through 10%, 50% and 100% across both clusters, each step judged by its cluster's Prometheus, and goes live (exit 0)", async () => {
        await freshOnPrometheus();
        // docs/fleet.md's block, as written.
        const result = await underLoad(() => runBlock(readmeBlocks(DOC).find((b) => b.id === "fleet-rollout") as ReadmeBlock, fleet.dir, fleet.project.env));
        assert.equal(result.code, 0, result.output);
        assert.match(result.output, /^staging +canary +runs v2; switched\neu +production +runs v2; switched$/m);
        assert.match(result.output, /^fleet: every stack runs v2: rolled out \(exit 0\)$/m);
        await fleet.expectPushed({ staging: { v2: 100 }, eu: { v2: 100 } });
        for (const stack of STACKS) {
            const steps = (await history(stack)).slice(0, 3).map((h) => h.message.replace(/^fleet rollout \S+: /, ""));
            assert.deepEqual(steps, ["v2", "v1 50% / v2 50%", "v1 90% / v2 10%"], `${stack}: one update per step`);
            assert.match(fleet.stackFile(stack), /cowsay-bluegreen:activeVersion: v2$/m);
            assert.doesNotMatch(fleet.stackFile(stack), /trafficSplit/);
        }
        // After each wave of each step, every stack moved so far: 1 + 2 + 2 + 2 + 2 + 2 analyses, each passed on real numbers (p99 of a prompt v2 well under 500 ms).
        const analyses = record().rollout?.analyses ?? [];
        // (Those of one round end in any order.)
        assert.deepEqual(
            analyses.map((a) => `${a.stack} ${a.step}`).sort(),
            ["staging 10", "staging 10", "eu 10", "staging 50", "eu 10", "staging 50", "eu 50", "staging 100", "eu 50", "staging 100", "eu 100"].sort(),
        );
        for (const a of analyses) {
            assert.equal(a.verdict, "passed", a.summary);
            for (const m of a.measurements) {
                const within = m.check === "success-rate" ? (m.value ?? 0) >= 99 : m.value !== undefined && m.value <= 500;
                assert.ok(within && (m.requests ?? 0) >= 3, JSON.stringify(m));
            }
            assert.deepEqual([...new Set(a.measurements.map((m) => m.check))].sort(), ["request-duration", "success-rate"], "both checks measured");
        }
        assert.equal(record().state, "switched");
    });
});
