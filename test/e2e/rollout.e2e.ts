// The rollout end to end: `npm run fleet -- rollout` against two local control planes with istiod
// (a canary wave and a production wave, one stack per cluster, each with its own stand-in gateway),
// on the real engine. What it checks here needs no metrics: the refusals before anything changes, a
// preview that sends no query (docs/fleet.md's block, as written; a listening socket counts every
// connection), an unreachable
// Prometheus that never passes (the canary goes back to v1, production is never touched), Ctrl-C
// mid-analysis, and a rollout SIGKILLed mid-analysis that `rollback` converges from. Each test starts
// from every stack on v1 (FleetOfClusters.reset) and asserts on where each cluster's istiod sends the
// gateway's traffic afterwards, and on the stack files, the histories and the record.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import type { SwitchRecord } from "../../fleet/record";
import { configKey } from "../constants";
import { ROOT, requirePulumi } from "../engine";
import { FleetOfClusters } from "../fleet/harness";
import { readmeBlocks, runBlock, type ReadmeBlock } from "../readme";

const DOC = path.join(ROOT, "docs", "fleet.md");
const STACKS = ["staging", "eu"] as const;
const FLEET_FILE = "waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu]\nbake: 0\nonFailure: rollback\n";
/** Short analyses: two measurements 3 s apart (Prometheus scrapes every second), little traffic needed. */
const ANALYSIS = JSON.stringify({ preSwitch: false, checks: [{ name: "success-rate", metric: "success-rate", min: 99, interval: "3s", count: 2, minRequests: 2 }] });

/** A loopback port nothing listens on: connecting is refused, as with a Prometheus that is down. */
async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}

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

describe("a rollout across two clusters (real engine, two API servers with istiod, a stand-in gateway each)", () => {
    let fleet: FleetOfClusters;
    let silent: SilentPort;
    const stackFiles = () => Object.fromEntries(STACKS.map((s) => [s, fleet.stackFile(s)]));
    const record = () => JSON.parse(readFileSync(path.join(fleet.dir, ".fleet", "last-switch.json"), "utf8")) as SwitchRecord;
    const history = async (stack: string) => JSON.parse((await fleet.pulumi(stack, "stack", "history", "--json")).stdout) as { message: string; result: string }[];
    const setPrometheus = (url: string) => Promise.all(STACKS.map((s) => fleet.pulumi(s, "config", "set", configKey("prometheusUrl"), url)));
    /**
     * Every stack on v1, the fleet file written, each stack's Prometheus at `url`. A rollout rolled
     * back from its 10% step leaves each stack's gate trusting v2 (the version that just stopped taking
     * traffic): these tests judge the analysis, not whether the gate fetches v2.
     */
    const fresh = async (url: string) => {
        await fleet.reset({ gateMayTrustV2: true });
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), FLEET_FILE);
        await setPrometheus(url);
    };

    before(async () => {
        silent = await SilentPort.start();
        fleet = await FleetOfClusters.create(STACKS, { analysis: ANALYSIS, prometheusUrl: silent.url });
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
            readmeBlocks(DOC).map((b) => b.id).filter((id) => id.startsWith("fleet-rollout")),
            ["fleet-rollout-preview"],
            "every rollout block of docs/fleet.md is run by this suite",
        );
        const block = readmeBlocks(DOC).find((b) => b.id === "fleet-rollout-preview") as ReadmeBlock;
        const result = await runBlock(block, fleet.dir, fleet.project.env);
        assert.equal(result.code, 0, result.output);
        const report = readFileSync(path.join(fleet.dir, "rollout-preview.md"), "utf8");
        assert.equal(report.split("\n")[0], "## Fleet preview: rollout of v2 in steps 10%, 50%, 100%");
        assert.match(report, /^\| canary \| staging \| v1 \| v1 90% \/ v2 10% \(first step\) \| \d+ to update \|$/m);
        assert.match(report, /^\| production \| eu \| v1 \| v1 90% \/ v2 10% \(first step\) \| \d+ to update \|$/m);
        // Two waves, three steps: six rounds of one 6 s analysis.
        assert.ok(report.includes("It takes at least 36 s: after each wave of each step"), report);
        assert.ok(report.includes("| 50% | v1 50% / v2 50% | success-rate | min 99 | 3 s | 2 | 2 |"), report);
        assert.ok(report.includes('success-rate (v2): sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5.."}[3s]))'), report);
        assert.ok(report.includes("<details><summary>staging: "), report);
        assert.deepEqual(stackFiles(), files);
        assert.equal(silent.connections, 0, "the preview sent no query");
    });

    it("an unreachable Prometheus never passes: the canary's first step is inconclusive, it goes back to v1, production is never touched (exit 1)", async () => {
        const port = await closedPort();
        await fresh(`http://127.0.0.1:${port}`);
        const euHistory = (await history("eu")).length;
        const result = await fleet.fleet("rollout", "v2");
        assert.equal(result.code, 1, result.stdout + result.stderr);
        assert.match(
            result.stderr,
            new RegExp(
                `^fleet: staging failed at step 10% \\(analysis\\): analysis of v2 on staging at 10% was inconclusive \\(not a pass\\): check success-rate measurement 1/2: Prometheus did not answer \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); unreachable is inconclusive \\(bound: min 99\\); query at http://127\\.0\\.0\\.1:${port}: sum\\(rate\\(istio_requests_total\\{`,
                "m",
            ),
        );
        assert.match(result.stdout, /^analysis \(every measurement, also in \.fleet\/last-switch\.json\):\nstaging at 10%: inconclusive: /m);
        assert.match(result.stdout, /^ {2}\S+Z {2}success-rate 1\/2 {2}inconclusive {2}value no data \(bound: min 99\): Prometheus did not answer/m);
        assert.match(result.stdout, /^ {4}query: sum\(rate\(istio_requests_total\{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"/m);
        assert.match(result.stdout, /^staging +canary +runs v1; rolled back\neu +production +runs v1; not touched\n$/m);
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        assert.match(fleet.stackFile("staging"), /cowsay-bluegreen:activeVersion: v1$/m);
        assert.doesNotMatch(fleet.stackFile("staging"), /trafficSplit/);
        const [rolledBack, stepped] = await history("staging");
        assert.match(stepped.message, /^fleet rollout \S+: v1 90% \/ v2 10%$/);
        assert.match(rolledBack.message, /^fleet rollback \S+$/);
        assert.equal((await history("eu")).length, euHistory, "eu: no update");
        const kept = record();
        assert.equal(kept.state, "rolled-back");
        assert.deepEqual(kept.rollout?.steps, [10, 50, 100]);
        assert.deepEqual(kept.rollout?.analyses.map((a) => [a.stack, a.step, a.verdict]), [["staging", 10, "inconclusive"]]);
        assert.match(kept.rollout?.analyses[0].measurements[0].reason ?? "", /^Prometheus did not answer \(connect ECONNREFUSED/);
    });

    it("Ctrl-C mid-analysis stops at once: nothing more starts, the canary stays at its step, rollback returns it (exit 130)", async () => {
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
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 100 } });
        const again = await fleet.fleet("rollout", "v2");
        assert.match(again.stderr, /^error: the last fleet rollout \(to v2, started \S+\) ended interrupted: run npm run fleet -- rollback first\n$/);
        const back = await fleet.fleet("rollback");
        assert.equal(back.code, 0, back.stdout + back.stderr);
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
    });

    it("a rollout SIGKILLed mid-analysis leaves its record; rollback converges from it", async () => {
        await fresh(silent.url);
        const before = silent.connections;
        const run = await fleet.startFleet(/^\[staging *\] step 10%: switched$/m, "rollout", "v2");
        for (const deadline = Date.now() + 30_000; silent.connections === before; await new Promise((r) => setTimeout(r, 100))) {
            if (Date.now() > deadline || run.ended()) throw new Error(`no query reached Prometheus:\n${run.output()}`);
        }
        process.kill(-run.pid, "SIGKILL");
        assert.equal(await run.exited, 128 + 9);
        assert.equal(record().state, "switching", "the record says the rollout did not finish");
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 100 } });
        const back = await fleet.fleet("rollback");
        assert.equal(back.code, 0, back.stdout + back.stderr);
        assert.match(back.stdout, /^staging +canary +runs v1; rolled back\neu +production +runs v1; not touched\n$/m);
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 } });
        assert.match(fleet.stackFile("staging"), /cowsay-bluegreen:activeVersion: v1$/m);
        assert.doesNotMatch(fleet.stackFile("staging"), /trafficSplit/);
    });
});
