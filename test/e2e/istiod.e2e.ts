// istiod in the local control plane (scripts/cluster.sh up with COWSAY_CLUSTER_ISTIOD=1, started by
// scripts/istiod.sh) and the xDS client the other suites judge routes by (tools/xds, `cowsay-xds`): it
// comes up and goes down with the cluster; a VirtualService switch reaches the gateway's route as istiod
// pushes it within a bound (the time is printed); its validating webhook, registered by URL, refuses
// what the CRD schema lets through, also after `restart istiod`; it writes the Gateway API's status;
// three clusters with istiod run side by side. Needs the control plane built (`scripts/cluster.sh build`).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { LocalCluster, portReservation, SCRIPT } from "../support/cluster";
import { processesMentioning, runCommand, runUntil } from "../support/processes";

const HOST = "cowsay.example.com";
const GATEWAY = ["--role", "gateway", "--namespace", "istio-ingress", "--labels", "istio=ingressgateway"];
/** How long a switch may take to reach the client: istiod debounces for 100 ms; the rest is slack for a loaded machine. */
const PUSH_BOUND_S = 10;

/** What the app's objects look like to istiod, written by hand: the infrastructure is under test here, not the program. */
function objects(subset: "v1" | "v2"): string {
    return JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
            {
                apiVersion: "v1",
                kind: "Service",
                metadata: { name: "cowsay-nginx", namespace: "cowsay" },
                spec: { selector: { app: "cowsay" }, ports: [{ name: "http", port: 9080 }] },
            },
            {
                apiVersion: "networking.istio.io/v1",
                kind: "DestinationRule",
                metadata: { name: "cowsay-nginx", namespace: "cowsay" },
                spec: { host: "cowsay-nginx", subsets: ["v1", "v2"].map((v) => ({ name: v, labels: { version: v } })) },
            },
            {
                apiVersion: "networking.istio.io/v1",
                kind: "Gateway",
                metadata: { name: "cowsay-gateway", namespace: "cowsay" },
                spec: { selector: { istio: "ingressgateway" }, servers: [{ port: { number: 80, name: "http", protocol: "HTTP" }, hosts: [HOST] }] },
            },
            {
                apiVersion: "networking.istio.io/v1",
                kind: "VirtualService",
                metadata: { name: "cowsay", namespace: "cowsay" },
                spec: {
                    hosts: [HOST],
                    gateways: ["cowsay-gateway"],
                    http: [{ route: [{ destination: { host: "cowsay-nginx", subset, port: { number: 9080 } } }] }],
                },
            },
        ],
    });
}

async function apply(cluster: LocalCluster, manifest: string): Promise<void> {
    const file = path.join(cluster.state, "objects.json");
    writeFileSync(file, manifest);
    const result = await cluster.kubectl("apply", "-f", file);
    assert.equal(result.code, 0, result.stderr);
}

function istiodPid(cluster: LocalCluster): number {
    return Number(readFileSync(path.join(cluster.state, "clusters", "cowsay", "istiod", "pid"), "utf8"));
}

/** Whether a port is reserved for some cluster's istiod (scripts/istiod.sh keeps a link per port). */
const reserved = (port: string) => existsSync(portReservation(port));

/** A process's parent, from /proc/<pid>/stat (its fourth field, after the command in parentheses). */
function parentOf(pid: number): number {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe("istiod in the local control plane", () => {
    let cluster: LocalCluster;
    before(async () => {
        cluster = await LocalCluster.up({ istiod: true, namespaces: ["cowsay", "istio-ingress", "cowsay-client"] });
    });
    after(async () => cluster?.down());

    it("up starts istiod on loopback ports and env exports its xDS address; cowsay-xds connects as the ingress gateway", async () => {
        const address = cluster.env.COWSAY_XDS_ADDRESS ?? "";
        assert.match(address, /^127\.0\.0\.1:\d+$/);
        const pid = istiodPid(cluster);
        assert.equal(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0], path.join(cluster.state, "clusters", "cowsay", "bin", "pilot-discovery"));
        // Every port it listens on is on loopback (ss prints local addresses of listening sockets).
        const ss = await runCommand("ss", ["-Htlnp"], { env: process.env });
        const mine = ss.stdout.split("\n").filter((l) => l.includes(`pid=${pid},`));
        assert.ok(mine.length >= 3, ss.stdout);
        for (const l of mine) assert.match(l.split(/\s+/)[3], /^127\.0\.0\.1:\d+$/, l);

        await apply(cluster, objects("v1"));
        const wait = await runCommand(
            "cowsay-xds",
            ["wait", ...GATEWAY, "--host", HOST, "--port", "80", "--cluster-contains", "|v1|", "--timeout", `${PUSH_BOUND_S}s`],
            { env: cluster.env },
        );
        assert.equal(wait.code, 0, wait.stderr);
        const dump = await runCommand("cowsay-xds", ["dump", ...GATEWAY], { env: cluster.env });
        assert.equal(dump.code, 0, dump.stderr);
        const state = JSON.parse(dump.stdout) as {
            node: string;
            listeners: { port: number; servicePort?: number; routeConfigs: string[] }[];
            routeConfigs: { name: string; virtualHosts: { domains: string[]; routes: { clusters?: { name: string }[] }[] }[] }[];
        };
        assert.match(state.node, /^router~127\.0\.0\.1~[^~]+\.istio-ingress~istio-ingress\.svc\.cluster\.local$/);
        const vhost = state.routeConfigs.flatMap((r) => r.virtualHosts).find((v) => v.domains.includes(HOST));
        assert.deepEqual(
            vhost?.routes.at(-1)?.clusters?.map((c) => c.name),
            ["outbound|9080|v1|cowsay-nginx.cowsay.svc.cluster.local"],
            dump.stdout,
        );

        // As a sidecar in a client namespace: the gateway's VirtualService does not apply in the mesh,
        // so the Service's own default route (no subset).
        const sidecar = ["--role", "sidecar", "--namespace", "cowsay-client", "--labels", "app=client"];
        const mesh = await runCommand(
            "cowsay-xds",
            [
                "wait",
                ...sidecar,
                "--host",
                "cowsay-nginx.cowsay.svc.cluster.local",
                "--port",
                "9080",
                "--cluster-contains",
                "outbound|9080||cowsay-nginx.cowsay.",
                "--timeout",
                `${PUSH_BOUND_S}s`,
            ],
            { env: cluster.env },
        );
        assert.equal(mesh.code, 0, mesh.stderr);
        assert.match(mesh.stderr, /^cowsay-xds: cowsay-nginx\.cowsay\.svc\.cluster\.local:9080\/: clusters /m);
    });

    it("a VirtualService switch reaches the gateway's route within the bound, every time (median printed)", async () => {
        await apply(cluster, objects("v1"));
        const times: number[] = [];
        const afterWrite: number[] = [];
        for (const [from, to] of [
            ["v1", "v2"],
            ["v2", "v1"],
            ["v1", "v2"],
            ["v2", "v1"],
            ["v1", "v2"],
        ] as const) {
            const args = ["wait", ...GATEWAY, "--host", HOST, "--port", "80", "--cluster-contains", `|${to}|`, "--timeout", `${PUSH_BOUND_S + 5}s`];
            // The first stderr line says it is connected and shows the route before the switch.
            const waiting = await runUntil("cowsay-xds", args, { env: cluster.env }, new RegExp(`clusters .*\\|${from}\\|`), 15_000);
            const start = performance.now();
            const patched = await cluster.kubectl(
                "patch",
                "virtualservice",
                "cowsay",
                "-n",
                "cowsay",
                "--type=json",
                "-p",
                JSON.stringify([{ op: "replace", path: "/spec/http/0/route/0/destination/subset", value: to }]),
            );
            const written = performance.now();
            assert.equal(patched.code, 0, patched.stderr);
            assert.equal(await waiting.exited, 0, waiting.output());
            times.push((performance.now() - start) / 1000);
            afterWrite.push((performance.now() - written) / 1000);
        }
        console.log(
            `switch (kubectl patch started) to istiod's push at the gateway client: median ${median(times).toFixed(3)} s of ${times.map((t) => t.toFixed(3)).join(", ")}`,
        );
        console.log(
            `of which after kubectl patch returned (istiod's share, upper bound): median ${median(afterWrite).toFixed(3)} s of ${afterWrite.map((t) => t.toFixed(3)).join(", ")}`,
        );
        for (const t of times) assert.ok(t < PUSH_BOUND_S, `${t} s`);
    });

    it("an object the CRD schema accepts and Istio refuses is refused by the API server with Istio's message, also after restart istiod (same webhook port)", async () => {
        const invalid = JSON.stringify({
            apiVersion: "networking.istio.io/v1",
            kind: "VirtualService",
            metadata: { name: "cowsay-bad-regex", namespace: "cowsay" },
            spec: {
                hosts: [HOST],
                gateways: ["cowsay-gateway"],
                http: [{ match: [{ uri: { regex: "/(unclosed" } }], route: [{ destination: { host: "cowsay-nginx" } }] }],
            },
        });
        const refused = async () => {
            writeFileSync(path.join(cluster.state, "invalid.json"), invalid);
            const result = await cluster.kubectl("apply", "-f", path.join(cluster.state, "invalid.json"));
            assert.equal(result.code, 1, result.stdout);
            assert.match(result.stderr, /admission webhook "rev\.validation\.istio\.io" denied the request: .*missing closing \)/);
            assert.equal((await cluster.kubectl("get", "virtualservice", "cowsay-bad-regex", "-n", "cowsay", "--ignore-not-found", "-o", "name")).stdout, "");
        };
        await refused();
        const before = istiodPid(cluster);
        const address = cluster.env.COWSAY_XDS_ADDRESS;
        await cluster.script("restart", "istiod");
        assert.notEqual(istiodPid(cluster), before);
        assert.equal((await runCommand(SCRIPT, ["env"], { env: cluster.env })).stdout.match(/COWSAY_XDS_ADDRESS=(\S+)/)?.[1], address);
        await refused();
        // Fail-close: with istiod stopped, Istio objects are refused rather than let through unchecked.
        await cluster.script("stop", "istiod");
        try {
            const result = await cluster.kubectl("apply", "-f", path.join(cluster.state, "objects.json"));
            assert.notEqual(result.code, 0, result.stdout);
            assert.match(result.stderr, /failed calling webhook "rev\.validation\.istio\.io"/);
        } finally {
            await cluster.script("start", "istiod");
        }
    });

    it("a Gateway API HTTPRoute gets Accepted and ResolvedRefs from istiod (GatewayClass istio, a Gateway bound to the existing gateway Service)", async () => {
        await apply(
            cluster,
            JSON.stringify({
                apiVersion: "v1",
                kind: "List",
                items: [
                    {
                        apiVersion: "v1",
                        kind: "Service",
                        metadata: { name: "istio-ingressgateway", namespace: "istio-ingress" },
                        spec: { selector: { istio: "ingressgateway" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
                    },
                    {
                        apiVersion: "v1",
                        kind: "Service",
                        metadata: { name: "cowsay-nginx-v1", namespace: "cowsay" },
                        spec: { selector: { app: "cowsay", version: "v1" }, ports: [{ name: "http", port: 9080 }] },
                    },
                    {
                        apiVersion: "gateway.networking.k8s.io/v1",
                        kind: "Gateway",
                        metadata: { name: "cowsay-gateway", namespace: "istio-ingress" },
                        spec: {
                            gatewayClassName: "istio",
                            addresses: [{ type: "Hostname", value: "istio-ingressgateway.istio-ingress.svc.cluster.local" }],
                            listeners: [
                                { name: "http", port: 80, protocol: "HTTP", hostname: "gw.example.com", allowedRoutes: { namespaces: { from: "All" } } },
                            ],
                        },
                    },
                    {
                        apiVersion: "gateway.networking.k8s.io/v1",
                        kind: "HTTPRoute",
                        metadata: { name: "cowsay", namespace: "cowsay" },
                        spec: {
                            parentRefs: [{ name: "cowsay-gateway", namespace: "istio-ingress" }],
                            hostnames: ["gw.example.com"],
                            rules: [{ backendRefs: [{ name: "cowsay-nginx-v1", port: 9080 }] }],
                        },
                    },
                ],
            }),
        );
        for (const condition of ["Accepted", "ResolvedRefs"]) {
            const waited = await cluster.kubectl(
                "wait",
                "-n",
                "cowsay",
                "httproute/cowsay",
                `--for=jsonpath={.status.parents[0].conditions[?(@.type=="${condition}")].status}=True`,
                "--timeout=60s",
            );
            assert.equal(waited.code, 0, `${condition}: ${waited.stderr}`);
        }
        const route = JSON.parse((await cluster.kubectl("get", "-n", "cowsay", "httproute/cowsay", "-o", "json")).stdout) as {
            status: { parents: { controllerName: string }[] };
        };
        assert.equal(route.status.parents[0].controllerName, "istio.io/gateway-controller");
        // And the gateway receives that route too.
        const wait = await runCommand(
            "cowsay-xds",
            ["wait", ...GATEWAY, "--host", "gw.example.com", "--port", "80", "--cluster-contains", "cowsay-nginx-v1.cowsay", "--timeout", `${PUSH_BOUND_S}s`],
            { env: cluster.env },
        );
        assert.equal(wait.code, 0, wait.stderr);
    });

    it("down stops istiod with the rest and releases its ports", async () => {
        const state = cluster.state;
        const pid = istiodPid(cluster);
        const ports = [...readFileSync(path.join(state, "clusters", "cowsay", "istiod", "ports"), "utf8").matchAll(/=(\d+)$/gm)].map((m) => m[1]);
        assert.equal(ports.length, 3);
        assert.deepEqual(ports.map(reserved), [true, true, true]);
        assert.equal(await cluster.down(), 0);
        assert.deepEqual(ports.map(reserved), [false, false, false]);
        // Gone, or a zombie nobody reaps (it was reparented): its command line is then empty.
        assert.equal(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, "utf8") !== "", false);
        assert.deepEqual(processesMentioning(`${state}/`), []);
    });
});

describe("istiod: teardown", () => {
    it("SIGINT to up while istiod starts: exit 130, istiod stopped with the rest, its ports released, the state directory removed", async () => {
        const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-istiod-interrupted-"));
        const env = { ...process.env, COWSAY_CLUSTER_STATE: state, COWSAY_CLUSTER_ISTIOD: "1" };
        try {
            const up = await runUntil(SCRIPT, ["up"], { env }, /starting istiod/, 180_000);
            // istiod.sh writes the pid file as it starts pilot-discovery, seconds before istiod is ready
            // (a file, not a scan of every process: on a loaded machine a scan took as long as the start).
            const pidFile = path.join(state, "clusters", "cowsay", "istiod", "pid");
            while (!existsSync(pidFile) || readFileSync(pidFile, "utf8") === "") {
                assert.equal(up.ended(), false, up.output());
                await new Promise((r) => setTimeout(r, 20));
            }
            // Frozen, istiod.sh cannot finish the start before the signal: on a loaded machine this
            // test's timers fell behind, and the signal came after "istiod ready", in other code.
            const script = parentOf(Number(readFileSync(pidFile, "utf8")));
            process.kill(script, "SIGSTOP");
            const ports = [...up.output().matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => m[1]);
            const code = up.stop("SIGINT", 60_000);
            // The SIGTERM `up` passes on stays pending until the script runs again.
            await new Promise((r) => setTimeout(r, 500));
            // Gone already is no failure: `up` may have stopped it while frozen (the checks below hold
            // either way); CI once saw that within the 500 ms.
            try {
                process.kill(script, "SIGCONT");
            } catch (err) {
                if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
            }
            assert.equal(await code, 130, up.output());
            assert.doesNotMatch(up.output(), /istiod ready/, "the signal came while istiod was starting");
            assert.equal(existsSync(`/proc/${script}`) && readFileSync(`/proc/${script}/cmdline`, "utf8") !== "", false, "istiod.sh stopped with `up`");
            assert.deepEqual(processesMentioning(`${state}/`), []);
            assert.equal(existsSync(state), false, up.output());
            assert.equal(ports.length, 3, up.output());
            assert.deepEqual(ports.map(reserved), [false, false, false]);
        } finally {
            await runCommand(SCRIPT, ["down"], { env });
            rmSync(state, { recursive: true, force: true });
        }
    });
});

describe("cowsay-xds: bad input is one line", () => {
    const cases: [string, string[], string][] = [
        ["an unknown role", ["dump", "--address", "127.0.0.1:1", "--role", "proxy", "--namespace", "x"], "--role is 'proxy'; allowed: gateway, sidecar"],
        ["no namespace", ["dump", "--address", "127.0.0.1:1"], "--namespace is empty; allowed: the proxy's namespace, a DNS label"],
        [
            "a wait without its target",
            ["wait", "--address", "127.0.0.1:1", "--namespace", "x", "--host", "h"],
            "wait needs --host, --port (1-65535) and --cluster-contains; got host 'h', port 0, cluster-contains ''",
        ],
        [
            "a label without a value",
            ["dump", "--address", "127.0.0.1:1", "--namespace", "x", "--labels", "istio"],
            "invalid value \"istio\" for flag -labels: 'istio' is not name=value",
        ],
    ];
    let env: NodeJS.ProcessEnv;
    before(async () => {
        // cowsay-xds from the build, without starting a cluster: `env` prints the PATH before any `up`.
        const exports = (await runCommand(SCRIPT, ["env"], { env: { ...process.env, COWSAY_CLUSTER_STATE: "/nonexistent" } })).stdout;
        const bin = /^export PATH=(\S+?)"/m.exec(exports)?.[1] ?? "";
        env = { ...process.env, PATH: [bin, process.env.PATH ?? ""].join(path.delimiter), COWSAY_XDS_ADDRESS: "" };
    });
    for (const [what, args, message] of cases) {
        it(`refuses ${what}`, async () => {
            const result = await runCommand("cowsay-xds", args, { env });
            assert.equal(result.code, 2, result.stderr);
            assert.equal(result.stderr, `cowsay-xds: ${message}\n`);
        });
    }
});

describe("istiod: three clusters at once", () => {
    it("three ups with istiod each get istiod on ports of their own", async () => {
        const started = await Promise.allSettled([0, 1, 2].map(() => LocalCluster.up({ istiod: true })));
        const clusters = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
        try {
            assert.deepEqual(
                started.map((s) => s.status),
                ["fulfilled", "fulfilled", "fulfilled"],
                started.map((s) => (s.status === "rejected" ? String(s.reason) : "")).join("\n"),
            );
            assert.equal(new Set(clusters.map((c) => c.env.COWSAY_XDS_ADDRESS)).size, 3);
            // Each istiod serves its own cluster: the route made in the first reaches that one's gateway only.
            await clusters[0].createNamespace("cowsay");
            await apply(clusters[0], objects("v1"));
            const args = ["wait", ...GATEWAY, "--host", HOST, "--port", "80", "--cluster-contains", "|v1|", "--timeout", `${PUSH_BOUND_S}s`];
            const waited = await runCommand("cowsay-xds", args, { env: clusters[0].env });
            assert.equal(waited.code, 0, waited.stderr);
            for (const c of clusters.slice(1)) {
                const dump = await runCommand("cowsay-xds", ["dump", ...GATEWAY], { env: c.env });
                assert.equal(dump.code, 0, dump.stderr);
                assert.deepEqual((JSON.parse(dump.stdout) as { routeConfigs: unknown[] }).routeConfigs, [], dump.stdout);
            }
        } finally {
            await Promise.all(clusters.map((c) => c.down()));
        }
    });
});
