// scripts/cluster.sh's own promises, which the other suites and the demo lean on: it runs the locally
// built binaries through kwokctl and downloads nothing; `up` is idempotent; stopping and restarting one
// component (the shim around kwokctl, which stops and starts whole clusters only) touches that component
// alone; an interrupted `up` and `down` leave no process behind; bad input is one line. Needs the control
// plane built (`scripts/cluster.sh build`), not the engine.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { LocalCluster } from "../cluster";
import { processesMentioning, runCommand } from "../processes";

const SCRIPT = path.resolve(__dirname, "..", "..", "..", "scripts", "cluster.sh");
const COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"];

/** `status` read back: each component's pid, or null when it is stopped; and the exit code. */
async function status(env: NodeJS.ProcessEnv): Promise<{ code: number; pids: Record<string, number | null> }> {
    const result = await runCommand(SCRIPT, ["status"], { env });
    const pids: Record<string, number | null> = {};
    for (const m of result.stderr.matchAll(/^\[cluster [\d:]+\]\s+(\S+): (?:running, \S*\s?healthy \(pid (\d+)\)|stopped)$/gm)) {
        pids[m[1]] = m[2] === undefined ? null : Number(m[2]);
    }
    assert.deepEqual(Object.keys(pids).sort(), [...COMPONENTS].sort(), result.stderr);
    return { code: result.code, pids };
}

describe("scripts/cluster.sh on kwokctl: one cluster", () => {
    let cluster: LocalCluster;
    before(async () => {
        cluster = await LocalCluster.up();
    });
    after(async () => cluster?.down());

    it("runs the binaries built here: each component kwokctl started is a link into the build cache, and kwokctl downloaded nothing", () => {
        const bin = (cluster.env.PATH ?? "").split(path.delimiter)[0];
        const links = path.join(cluster.state, "clusters", "cowsay", "bin");
        const names = readdirSync(links).sort();
        assert.deepEqual(names, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"]);
        for (const name of names) {
            assert.ok(lstatSync(path.join(links, name)).isSymbolicLink(), name);
            assert.equal(readlinkSync(path.join(links, name)), path.join(bin, name === "kwok-controller" ? "kwok" : name));
        }
        // kwokctl keeps whatever it downloads in <KWOK_WORKDIR>/cache.
        assert.equal(existsSync(path.join(cluster.state, "cache")), false);
    });

    it("up on a running, ready cluster says so and leaves every process as it was", async () => {
        const before = await status(cluster.env);
        const up = await runCommand(SCRIPT, ["up"], { env: cluster.env });
        assert.equal(up.code, 0, up.stderr);
        assert.match(up.stderr, /already running and ready/);
        assert.deepEqual(await status(cluster.env), before);
    });

    it("restart apiserver restarts the API server alone: a stopped kwok stays stopped, the other pids stay; start kwok brings the nodes back", async () => {
        const { pids } = await status(cluster.env);
        await cluster.script("stop", "kwok");
        const stopped = await status(cluster.env);
        assert.notEqual(stopped.code, 0, "status fails while a component is stopped");
        assert.equal(stopped.pids["kwok-controller"], null);

        await cluster.script("restart", "apiserver");
        const restarted = await status(cluster.env);
        assert.notEqual(restarted.pids["kube-apiserver"], pids["kube-apiserver"]);
        assert.equal(restarted.pids["kwok-controller"], null, "kwok was not started with the API server");
        for (const c of ["etcd", "kube-controller-manager", "kube-scheduler"]) assert.equal(restarted.pids[c], pids[c], c);
        assert.equal((await cluster.kubectl("get", "--raw", "/readyz")).stdout, "ok");

        await cluster.script("start", "kwok");
        const started = await status(cluster.env);
        assert.equal(started.code, 0);
        assert.notEqual(started.pids["kwok-controller"], null);
        const ready = await cluster.kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=60s");
        assert.equal(ready.code, 0, ready.stderr);
    });
});

describe("scripts/cluster.sh: clusters started at once", () => {
    it("three ups at once each get a cluster of their own, on ports of their own (kwokctl probes for free ports and binds them later)", async () => {
        // Before cluster.sh held a machine-wide lock around `kwokctl create`, two of three failed here:
        // all three took the same API server port.
        const started = await Promise.allSettled([LocalCluster.up(), LocalCluster.up(), LocalCluster.up()]);
        const clusters = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
        try {
            assert.deepEqual(started.map((s) => s.status), ["fulfilled", "fulfilled", "fulfilled"], started.map((s) => (s.status === "rejected" ? String(s.reason) : "")).join("\n"));
            const servers = await Promise.all(clusters.map(async (c) => (await c.kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")).stdout));
            assert.equal(new Set(servers).size, 3, servers.join(", "));
            for (const c of clusters) {
                const nodes = await c.kubectl("get", "nodes", "-o", "name");
                assert.equal(nodes.code, 0, nodes.stderr);
                assert.equal(nodes.stdout.trim().split("\n").length, 2, nodes.stdout);
            }
        } finally {
            await Promise.all(clusters.map((c) => c.down()));
        }
    });
});

/** A process that runs: not gone, and not a zombie its new parent has yet to reap. */
function running(pid: number): boolean {
    try {
        return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
        return false;
    }
}

describe("scripts/cluster.sh: a stopped component keeps its ports", () => {
    it("a cluster created while kwok is stopped takes none of kwok's ports, and start kwok listens on them again", async () => {
        // kwokctl scans down from 32767 for a port nothing listens on: without the placeholder that
        // holds a stopped component's ports, the new cluster took kwok's, and `start kwok` failed with
        // "address already in use".
        const first = await LocalCluster.up();
        let second: LocalCluster | undefined;
        try {
            const portsOf = async (cluster: LocalCluster) => {
                const pids = Object.values((await status(cluster.env)).pids).filter((p): p is number => p !== null);
                const listening = (await runCommand("ss", ["-Hltnp"], { env: process.env })).stdout.split("\n");
                return new Set(listening.filter((l) => pids.some((p) => l.includes(`pid=${p},`))).map((l) => l.split(/\s+/)[3].split(":").pop()));
            };
            const kwokPid = (await status(first.env)).pids["kwok-controller"];
            const listening = (await runCommand("ss", ["-Hltnp"], { env: process.env })).stdout.split("\n");
            const kwokPorts = listening.filter((l) => l.includes(`pid=${kwokPid},`)).map((l) => l.split(/\s+/)[3].split(":").pop());
            assert.ok(kwokPorts.length > 0, "kwok listens on a port");
            await first.script("stop", "kwok");
            const holder = Number(readFileSync(path.join(first.state, "clusters", "cowsay", "holders", "kwok-controller.pid"), "utf8"));
            assert.ok(running(holder), "a placeholder holds kwok's ports while it is stopped");
            second = await LocalCluster.up();
            const taken = await portsOf(second);
            assert.deepEqual(kwokPorts.filter((p) => taken.has(p)), [], `the new cluster's ports: ${[...taken].join(", ")}`);
            const start = await first.script("start", "kwok");
            assert.equal(start.code, 0, start.stderr);
            assert.deepEqual([...(await portsOf(first))].filter((p) => kwokPorts.includes(p)).sort(), [...kwokPorts].sort(), "kwok listens on its ports again");
            assert.ok(!running(holder), "the placeholder is gone once kwok starts");
        } finally {
            await second?.down();
            await first.down();
        }
    });
});

describe("scripts/cluster.sh: teardown", () => {
    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
        it(`${signal} to up while kwokctl starts the cluster: exit ${code}, every process it started stopped, the state directory removed`, async () => {
            const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-interrupted-"));
            try {
                const child = spawn(SCRIPT, ["up"], { env: { ...process.env, COWSAY_CLUSTER_STATE: state }, stdio: ["ignore", "pipe", "pipe"] });
                let output = "";
                child.stdout.on("data", (c: Buffer) => (output += c.toString()));
                child.stderr.on("data", (c: Buffer) => (output += c.toString()));
                const closed = new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
                // The components' command lines name the state directory; the script's and kwokctl's do not.
                while (processesMentioning(`${state}/`).length === 0) {
                    assert.equal(child.exitCode, null, `up ended before it started anything:\n${output}`);
                    await new Promise((r) => setTimeout(r, 100));
                }
                child.kill(signal);
                // unref: a pending timer would keep the test process alive after the test.
                const exit = await Promise.race([closed, new Promise<"hung">((r) => setTimeout(() => r("hung"), 60_000).unref())]);
                assert.equal(exit, code, output);
                assert.deepEqual(processesMentioning(`${state}/`), []);
                assert.equal(existsSync(state), false, `${state} is left:\n${output}`);
            } finally {
                await runCommand(SCRIPT, ["down"], { env: { ...process.env, COWSAY_CLUSTER_STATE: state } });
                rmSync(state, { recursive: true, force: true });
            }
        });
    }

    it("down --keep-logs stops every process and keeps the components' logs, nothing else", async () => {
        const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-logs-"));
        const env = { ...process.env, COWSAY_CLUSTER_STATE: state };
        try {
            const up = await runCommand(SCRIPT, ["up"], { env });
            assert.equal(up.code, 0, up.stderr);
            const down = await runCommand(SCRIPT, ["down", "--keep-logs"], { env });
            assert.equal(down.code, 0, down.stderr);
            assert.deepEqual(processesMentioning(`${state}/`), []);
            assert.deepEqual(readdirSync(state), ["logs"]);
            assert.deepEqual(readdirSync(path.join(state, "logs")).sort(), COMPONENTS.map((c) => `${c}.log`));
        } finally {
            await runCommand(SCRIPT, ["down"], { env });
            rmSync(state, { recursive: true, force: true });
        }
    });
});

describe("scripts/cluster.sh: bad input is one line, and nothing is started or removed", () => {
    // Made in a hook, not when the tests are declared (listing them, bench/alone.ts, runs no hook).
    let state: string;
    before(() => {
        state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-bad-"));
    });
    after(() => rmSync(state, { recursive: true, force: true }));

    const cases: [string, string[], Record<string, string>, string][] = [
        ["an unknown component", ["restart", "kube"], {}, "unknown component 'kube'; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod"],
        ["an unknown option of down", ["down", "--force"], {}, "down takes --keep-logs or nothing, not '--force'"],
        ["a node count that is not a number", ["up"], { COWSAY_CLUSTER_NODES: "two" }, "COWSAY_CLUSTER_NODES is 'two'; allowed: a whole number of 1 or more"],
        ["an istiod switch that is not 0, 1 or chart", ["up"], { COWSAY_CLUSTER_ISTIOD: "yes" }, "COWSAY_CLUSTER_ISTIOD is 'yes'; allowed: 0, 1 or chart"],
        ["an unknown command", ["deploy"], {}, "unknown command 'deploy'; allowed: build, built, up, down, env, status, crds, apply-crds, istio-charts, stop, start, restart, clean, help"],
    ];
    for (const [what, args, extraEnv, message] of cases) {
        it(`refuses ${what}`, async () => {
            const result = await runCommand(SCRIPT, args, { env: { ...process.env, COWSAY_CLUSTER_STATE: state, ...extraEnv } });
            assert.equal(result.code, 1);
            assert.equal(result.stderr, `[cluster] error: ${message}\n`);
            assert.deepEqual(readdirSync(state), []);
        });
    }
});
