// scripts/cluster.sh's own promises, which the other suites and the demo lean on: it runs the locally
// built binaries through kwokctl and downloads nothing; `up` is idempotent; stopping and restarting one
// component (the shim around kwokctl, which stops and starts whole clusters only) touches that component
// alone; the cluster's Prometheus scrapes what registers itself in its targets directory, keeps its port
// across a restart, and is absent when switched off; an interrupted `up` and `down` leave no process
// behind; bad input is one line. Needs the control plane built (`scripts/cluster.sh build`), not the engine.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import versions from "../../versions.json";
import { LocalCluster, portReservation, SCRIPT } from "../support/cluster";
import { processesMentioning, runCommand } from "../support/processes";

const COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"];
/** How long a registered target may take to be scraped: file_sd re-reads and Prometheus scrapes every 1 s; the rest is slack for a loaded machine. */
const SCRAPE_BOUND_MS = 30_000;

/**
 * `status` read back: each component's pid, or null when it is stopped (Prometheus among them unless
 * the cluster was started with COWSAY_CLUSTER_PROMETHEUS=0); and the exit code.
 */
async function status(env: NodeJS.ProcessEnv): Promise<{ code: number; pids: Record<string, number | null> }> {
    const result = await runCommand(SCRIPT, ["status"], { env });
    const pids: Record<string, number | null> = {};
    for (const m of result.stderr.matchAll(/^\[cluster [\d:]+\]\s+(\S+): (?:running, \S*\s?healthy \(pid (\d+)\)|stopped)$/gm)) {
        pids[m[1]] = m[2] === undefined ? null : Number(m[2]);
    }
    const expected = env.COWSAY_CLUSTER_PROMETHEUS === "0" ? COMPONENTS : [...COMPONENTS, "prometheus"];
    assert.deepEqual(Object.keys(pids).sort(), [...expected].sort(), result.stderr);
    return { code: result.code, pids };
}

/** `cluster.sh env` of a state directory, as name → value. */
async function exportsOf(env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
    const result = await runCommand(SCRIPT, ["env"], { env });
    assert.equal(result.code, 0, result.stderr);
    return Object.fromEntries([...result.stdout.matchAll(/^export (\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
}

/**
 * A stand-in for a proxy's metrics endpoint on 127.0.0.1: each path serves one counter in Prometheus's
 * text format, with the value `set` last gave it, and every scrape's path is recorded.
 */
async function counterServer(counters: Record<string, string>) {
    const values = new Map(Object.entries(counters).map(([route, metric]) => [route, { metric, value: 0 }]));
    const scraped: string[] = [];
    const server = createServer((req, res) => {
        const counter = values.get(req.url ?? "");
        scraped.push(req.url ?? "");
        if (counter === undefined) {
            res.writeHead(404).end();
            return;
        }
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(`# HELP ${counter.metric} Requests the stand-in served.\n# TYPE ${counter.metric} counter\n${counter.metric}{code="200"} ${counter.value}\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
        address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
        scraped,
        set(route: string, value: number) {
            const counter = values.get(route);
            assert.ok(counter !== undefined, route);
            counter.value = value;
        },
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
}

/** Registers a target as a data plane would: a file_sd file, written whole (a rename) so Prometheus never reads half of it. */
function register(targets: string, name: string, address: string, labels: Record<string, string>): void {
    const file = path.join(targets, `${name}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify([{ targets: [address], labels }]));
    renameSync(`${file}.tmp`, file);
}

/** The values of an instant query through Prometheus's HTTP API (`/api/v1/query`), one per series. */
async function query(url: string, promql: string): Promise<number[]> {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { result: { value: [number, string] }[] } };
    assert.equal(body.status, "success", `${promql}: ${body.error ?? ""}`);
    return (body.data?.result ?? []).map((r) => Number(r.value[1]));
}

/** Polls the query until it returns exactly `expected`; fails after SCRAPE_BOUND_MS with the last answer. */
async function waitForValues(url: string, promql: string, expected: number[]): Promise<void> {
    const deadline = Date.now() + SCRAPE_BOUND_MS;
    let last: number[] | string = [];
    while (Date.now() < deadline) {
        try {
            last = await query(url, promql);
            if (JSON.stringify(last) === JSON.stringify(expected)) return;
        } catch (err) {
            last = String(err);
        }
        await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`${promql} after ${SCRAPE_BOUND_MS / 1000} s: ${JSON.stringify(last)}, expected ${JSON.stringify(expected)}`);
}

const readyCode = async (url: string) => (await fetch(`${url}/-/ready`)).status;

describe("scripts/cluster.sh on kwokctl: one cluster", () => {
    let cluster: LocalCluster;
    before(async () => {
        cluster = await LocalCluster.up();
    });
    after(async () => cluster?.down());

    it("runs the binaries built here: each component kwokctl started, and Prometheus, is a link into the build cache, and kwokctl downloaded nothing", () => {
        const bin = (cluster.env.PATH ?? "").split(path.delimiter)[0];
        const links = path.join(cluster.state, "clusters", "cowsay", "bin");
        const names = readdirSync(links).sort();
        assert.deepEqual(names, ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller", "prometheus"]);
        for (const name of names.filter((n) => n !== "prometheus")) {
            assert.ok(lstatSync(path.join(links, name)).isSymbolicLink(), name);
            assert.equal(readlinkSync(path.join(links, name)), path.join(bin, name === "kwok-controller" ? "kwok" : name));
        }
        // Prometheus has a cache key of its own beside the control plane's: <cache>/prometheus-<pin>_src-<hash>/bin.
        const prometheus = readlinkSync(path.join(links, "prometheus"));
        assert.equal(path.dirname(path.dirname(path.dirname(prometheus))), path.dirname(path.dirname(bin)));
        assert.match(
            path.relative(path.dirname(path.dirname(bin)), prometheus),
            new RegExp(`^prometheus-${versions.prometheus.replaceAll(".", "\\.")}_src-[0-9a-f]{12}/bin/prometheus$`),
        );
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

    it("Prometheus is ready at COWSAY_PROMETHEUS_URL and scrapes what registers in COWSAY_PROMETHEUS_TARGETS: Envoy's path by default, a target's __metrics_path__ otherwise, and a counter's increase shows", async () => {
        const prometheus = cluster.prometheus;
        assert.ok(prometheus !== undefined, "LocalCluster.up() runs a Prometheus");
        assert.match(prometheus.url, /^http:\/\/127\.0\.0\.1:\d+$/);
        assert.equal(cluster.env.COWSAY_PROMETHEUS_URL, prometheus.url);
        assert.equal(prometheus.targets, path.join(cluster.state, "clusters", "cowsay", "prometheus", "targets"));
        assert.equal(await readyCode(prometheus.url), 200);

        // Given a metrics endpoint that starts after the cluster, and registers itself twice.
        const server = await counterServer({ "/stats/prometheus": "cowsay_envoy_requests_total", "/custom": "cowsay_custom_requests_total" });
        try {
            server.set("/stats/prometheus", 3);
            server.set("/custom", 7);
            register(prometheus.targets, "envoy", server.address, { app: "envoy" });
            register(prometheus.targets, "custom", server.address, { app: "custom", __metrics_path__: "/custom" });
            // Then each is scraped on its own path, with the target's labels and the job's name.
            await waitForValues(prometheus.url, 'cowsay_envoy_requests_total{job="istio-mesh",app="envoy",code="200"}', [3]);
            await waitForValues(prometheus.url, 'cowsay_custom_requests_total{job="istio-mesh",app="custom"}', [7]);
            assert.deepEqual([...new Set(server.scraped)].sort(), ["/custom", "/stats/prometheus"]);
            // And an increase is visible: the new value, and an increase() over the window.
            server.set("/stats/prometheus", 8);
            await waitForValues(prometheus.url, 'cowsay_envoy_requests_total{app="envoy"}', [8]);
            const increase = await query(prometheus.url, 'increase(cowsay_envoy_requests_total{app="envoy"}[1m])');
            assert.equal(increase.length, 1);
            assert.ok(increase[0] > 0, `increase() over 1m: ${increase[0]}`);
        } finally {
            rmSync(path.join(prometheus.targets, "envoy.json"), { force: true });
            rmSync(path.join(prometheus.targets, "custom.json"), { force: true });
            await server.close();
        }
    });

    it("restart prometheus: a new process on the same port, its registered targets still scraped; the other components untouched", async () => {
        const prometheus = cluster.prometheus;
        assert.ok(prometheus !== undefined);
        const server = await counterServer({ "/stats/prometheus": "cowsay_restart_requests_total" });
        try {
            server.set("/stats/prometheus", 1);
            register(prometheus.targets, "restart", server.address, { app: "restart" });
            await waitForValues(prometheus.url, "cowsay_restart_requests_total", [1]);
            const before = await status(cluster.env);

            await cluster.script("restart", "prometheus");

            const after = await status(cluster.env);
            assert.equal(after.code, 0);
            assert.ok(
                after.pids.prometheus !== null && after.pids.prometheus !== before.pids.prometheus,
                `prometheus pid ${before.pids.prometheus} → ${after.pids.prometheus}`,
            );
            for (const c of COMPONENTS) assert.equal(after.pids[c], before.pids[c], c);
            assert.equal((await exportsOf(cluster.env)).COWSAY_PROMETHEUS_URL, prometheus.url, "the same URL");
            assert.equal(await readyCode(prometheus.url), 200);
            server.set("/stats/prometheus", 2);
            await waitForValues(prometheus.url, "cowsay_restart_requests_total", [2]);
            assert.equal((await cluster.kubectl("get", "--raw", "/readyz")).stdout, "ok");

            // stop: the URL stops answering, status says so; up brings it back on the same port.
            await cluster.script("stop", "prometheus");
            assert.equal((await status(cluster.env)).pids.prometheus, null);
            await assert.rejects(fetch(`${prometheus.url}/-/ready`));
            const up = await runCommand(SCRIPT, ["up"], { env: cluster.env });
            assert.equal(up.code, 0, up.stderr);
            assert.equal(await readyCode(prometheus.url), 200);
            assert.notEqual((await status(cluster.env)).pids.prometheus, null);
        } finally {
            rmSync(path.join(prometheus.targets, "restart.json"), { force: true });
            await server.close();
        }
    });
});

describe("scripts/cluster.sh: COWSAY_CLUSTER_PROMETHEUS=0", () => {
    it("up starts no Prometheus: no process, no env, no status line; start prometheus adds one to that cluster; down leaves none", async () => {
        const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-noprom-"));
        const env = { ...process.env, COWSAY_CLUSTER_STATE: state, COWSAY_CLUSTER_PROMETHEUS: "0" };
        try {
            const up = await runCommand(SCRIPT, ["up"], { env });
            assert.equal(up.code, 0, up.stderr);
            const exports = await exportsOf(env);
            assert.ok(exports.KUBECONFIG !== undefined);
            assert.equal(exports.COWSAY_PROMETHEUS_URL, undefined);
            assert.equal(exports.COWSAY_PROMETHEUS_TARGETS, undefined);
            assert.equal((await status(env)).code, 0);
            const cluster = path.join(state, "clusters", "cowsay");
            assert.deepEqual(processesMentioning(path.join(cluster, "bin", "prometheus")), []);
            assert.equal(existsSync(path.join(cluster, "prometheus")), false);

            // start prometheus on that cluster: the same script, the URL now in env.
            const start = await runCommand(SCRIPT, ["start", "prometheus"], { env });
            assert.equal(start.code, 0, start.stderr);
            const url = (await exportsOf(env)).COWSAY_PROMETHEUS_URL;
            assert.ok(url !== undefined);
            assert.equal(await readyCode(url), 200);
            assert.equal(processesMentioning(path.join(cluster, "bin", "prometheus")).length, 1);

            const down = await runCommand(SCRIPT, ["down"], { env });
            assert.equal(down.code, 0, down.stderr);
            assert.deepEqual(processesMentioning(`${state}/`), []);
            await assert.rejects(fetch(`${url}/-/ready`));
        } finally {
            await runCommand(SCRIPT, ["down"], { env });
            rmSync(state, { recursive: true, force: true });
        }
    });
});

describe("scripts/cluster.sh: clusters started at once", () => {
    it("three ups at once each get a cluster of their own, on ports of their own (kwokctl probes for free ports and binds them later)", async () => {
        // Before cluster.sh held a machine-wide lock around `kwokctl create`, two of three failed here:
        // all three took the same API server port.
        const started = await Promise.allSettled([LocalCluster.up(), LocalCluster.up(), LocalCluster.up()]);
        const clusters = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
        try {
            assert.deepEqual(
                started.map((s) => s.status),
                ["fulfilled", "fulfilled", "fulfilled"],
                started.map((s) => (s.status === "rejected" ? String(s.reason) : "")).join("\n"),
            );
            const servers = await Promise.all(
                clusters.map(async (c) => (await c.kubectl("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")).stdout),
            );
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

/** Whether a path exists as a link, whatever it points at (existsSync follows it). */
function lstatExists(file: string): boolean {
    try {
        lstatSync(file);
        return true;
    } catch {
        return false;
    }
}

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
            assert.deepEqual(
                kwokPorts.filter((p) => taken.has(p)),
                [],
                `the new cluster's ports: ${[...taken].join(", ")}`,
            );
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
    for (const [signal, code] of [
        ["SIGINT", 130],
        ["SIGTERM", 143],
    ] as const) {
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

    it("down --keep-logs stops every process, Prometheus's included, releases its port and keeps the components' logs, nothing else", async () => {
        const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-logs-"));
        const env = { ...process.env, COWSAY_CLUSTER_STATE: state };
        try {
            const up = await runCommand(SCRIPT, ["up"], { env });
            assert.equal(up.code, 0, up.stderr);
            const exports = await exportsOf(env);
            const url = exports.COWSAY_PROMETHEUS_URL;
            assert.ok(url !== undefined, "up starts Prometheus by default");
            const reservation = portReservation(new URL(url).port);
            assert.equal(readlinkSync(reservation), path.join(state, "clusters", "cowsay"), "the port is reserved for this cluster");
            assert.equal(processesMentioning(path.join(state, "clusters", "cowsay", "bin", "prometheus")).length, 1);

            const down = await runCommand(SCRIPT, ["down", "--keep-logs"], { env });
            assert.equal(down.code, 0, down.stderr);
            assert.deepEqual(processesMentioning(`${state}/`), []);
            await assert.rejects(fetch(`${url}/-/ready`));
            assert.equal(lstatExists(reservation), false, "the reservation is released");
            assert.deepEqual(readdirSync(state), ["logs"]);
            assert.deepEqual(readdirSync(path.join(state, "logs")).sort(), [...COMPONENTS, "prometheus"].map((c) => `${c}.log`).sort());
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
        [
            "an unknown component",
            ["restart", "kube"],
            {},
            "unknown component 'kube'; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod, prometheus",
        ],
        [
            "a stop without a component",
            ["stop"],
            {},
            "stop needs a COMPONENT; allowed: etcd, apiserver, controller-manager, scheduler, kwok, istiod, prometheus",
        ],
        ["an unknown option of down", ["down", "--force"], {}, "down takes --keep-logs or nothing, not '--force'"],
        ["a node count that is not a number", ["up"], { COWSAY_CLUSTER_NODES: "two" }, "COWSAY_CLUSTER_NODES is 'two'; allowed: a whole number of 1 or more"],
        ["an istiod switch that is not 0, 1 or chart", ["up"], { COWSAY_CLUSTER_ISTIOD: "yes" }, "COWSAY_CLUSTER_ISTIOD is 'yes'; allowed: 0, 1 or chart"],
        ["a Prometheus switch that is not 0 or 1", ["up"], { COWSAY_CLUSTER_PROMETHEUS: "true" }, "COWSAY_CLUSTER_PROMETHEUS is 'true'; allowed: 0 or 1"],
        [
            "an unknown command",
            ["deploy"],
            {},
            "unknown command 'deploy'; allowed: build, built, up, down, env, status, crds, apply-crds, istio-charts, stop, start, restart, clean, help",
        ],
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
