// Benchmark (not a test): wall time of `pulumi up` on the real engine, rendering YAML (no
// cluster), median of 5 runs each: a blue-green switch of this program, and an update of a
// one-resource TypeScript program (the floor: what any program pays on this engine). Repeated for
// each way the program can reach the engine: ts-node with type-checking (Pulumi's default for a
// TypeScript project, and what Pulumi.yaml uses), ts-node transpile-only, and JavaScript pre-built
// by `npm run build`. Then the same comparison against a local API server (scripts/cluster.sh: one
// control plane for the run, torn down at the end), for the way the program runs by default: there
// the figures include the provider's calls to the server and its wait for the Deployments. Last, on
// an API server with istiod (Istio's own control plane, scripts/cluster.sh with COWSAY_CLUSTER_ISTIOD),
// how long a rollback takes to reach the gateway: from the start of its `pulumi up` to istiod's push of
// the new route to a client connected as the ingress gateway (tools/xds), and istiod's share of that
// (from the API server's watch seeing the new VirtualService to the push). Needs `pulumi` on PATH; the
// control plane is built if missing.
import { performance } from "node:perf_hooks";

import { LocalCluster } from "../test/support/cluster";
import { APP, APP_NAMESPACE, configKey, GATEWAY_SELECTOR, HOST, INGRESS_NAMESPACE, NO_INSTALLS } from "../test/support/constants";
import { EngineStack, TYPE_CHECKED, pulumiOnPath } from "../test/support/engine";
import { createGatewayService, createTlsSecret, IstioRoutes } from "../test/support/istio-routes";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

const FLOOR: Record<string, string> = {
    "Pulumi.yaml": "name: floor\nruntime:\n  name: nodejs\n",
    "package.json": JSON.stringify({ name: "floor", main: "index.ts" }),
    "tsconfig.json": JSON.stringify({
        compilerOptions: { strict: true, target: "ES2022", module: "node20", moduleResolution: "node16", types: ["node"] },
        files: ["index.ts"],
    }),
    "index.ts": [
        'import * as k8s from "@pulumi/kubernetes";',
        'import * as pulumi from "@pulumi/pulumi";',
        'const value = new pulumi.Config().require("value");',
        'export const name = new k8s.core.v1.ConfigMap("floor", { data: { value } }).metadata.name;',
        "",
    ].join("\n"),
};

interface Mode {
    readonly label: string;
    readonly prebuilt: boolean;
    readonly env: Record<string, string>;
}

const MODES: Mode[] = [
    { label: "ts-node, type-checked (used)", prebuilt: false, env: TYPE_CHECKED },
    { label: "ts-node, transpile-only", prebuilt: false, env: { PULUMI_NODEJS_TRANSPILE_ONLY: "true" } },
    { label: "pre-built JavaScript", prebuilt: true, env: TYPE_CHECKED },
];

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Ctrl-C (or SIGTERM) stops the benchmark after the update that runs now, so that the finally blocks
// remove the stacks and stop the control plane, whose processes run in sessions of their own.
const SIGNALS = ["SIGINT", "SIGTERM"] as const;
let stopSignal: NodeJS.Signals | undefined;
for (const signal of SIGNALS) process.on(signal, () => (stopSignal ??= signal));

/** Times RUNS updates; `change(i)` sets the config that makes update i differ from the one before. */
async function timeUpdates(stack: EngineStack, change: (i: number) => Promise<unknown>): Promise<number> {
    await stack.up(); // the first up creates everything; not timed
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
        if (stopSignal !== undefined) throw new Error(`stopped by ${stopSignal}`);
        await change(i);
        const start = performance.now();
        await stack.up();
        times.push((performance.now() - start) / 1000);
    }
    return median(times);
}

/** A switch and the floor, both timed on the same stack pair; "switch … floor … ratio …". */
async function compare(program: EngineStack, floor: EngineStack): Promise<string> {
    const switchTime = await timeUpdates(program, (i) => program.pulumi("config", "set", "cowsay-bluegreen:activeVersion", i % 2 === 0 ? "v2" : "v1"));
    const floorTime = await timeUpdates(floor, (i) => floor.pulumi("config", "set", "floor:value", String(i + 1)));
    return `switch ${switchTime.toFixed(2)} s   floor ${floorTime.toFixed(2)} s   ratio ${(switchTime / floorTime).toFixed(2)}`;
}

/**
 * The comparison on the local API server, ts-node type-checked (Pulumi.yaml has no `main`). The gate
 * is off so that the figure is the engine and the provider; the floor's ConfigMap goes to the
 * `default` namespace of the same cluster.
 */
async function onApiServer(): Promise<string> {
    const cluster = await LocalCluster.up();
    try {
        await cluster.script("apply-crds");
        // As in the end-to-end tests: a cluster that runs a mesh has its ingress namespace (the Certificate goes there).
        const ns = await cluster.kubectl("create", "namespace", "istio-ingress");
        if (ns.code !== 0) throw new Error(`kubectl create namespace istio-ingress: ${ns.stderr}`);
        const program = await EngineStack.create({
            config: { installIstio: "false", installCertManager: "false", smokeCheck: "false" },
            target: "cluster",
            env: { ...cluster.env, ...TYPE_CHECKED },
        });
        const floor = await EngineStack.create({ config: { value: "0" }, files: FLOOR, target: "cluster", env: cluster.env });
        try {
            return await compare(program, floor);
        } finally {
            program.dispose();
            floor.dispose();
        }
    } finally {
        await cluster.down();
    }
}

/**
 * Rollbacks on an API server with istiod, each timed to the gateway; RUNS of them, each after a switch
 * to v2 (not timed). Three ways: the gate off; the gate on (the default; gatewayUrl set to a stand-in
 * gateway that routes by istiod's push: a rollback fetches nothing, but the gate's update runs before
 * the route's, in the program's own provider process); and the gate on with `pulumi up` previewing
 * first, as a person types it. Resolves with the printed lines.
 */
async function rollbackToGateway(): Promise<string> {
    const cluster = await LocalCluster.up({ istiod: true });
    try {
        // What the gateway chart and cert-manager would have made: the gateway's Service (istiod finds the
        // gateway's pods and ports by it) and the TLS Secret its HTTPS server names.
        await createGatewayService(cluster, INGRESS_NAMESPACE, GATEWAY_SELECTOR);
        await createTlsSecret(cluster, INGRESS_NAMESPACE, HOST);
        const istio = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR });
        const gateway = await istio.startGateway();
        const lines: string[] = [];
        try {
            for (const [label, config, preview] of [
                ["gate off, pulumi up --skip-preview       ", { smokeCheck: "false" }, false],
                ["gate on,  pulumi up --skip-preview       ", { gatewayUrl: `https://${gateway.address}` }, false],
                ["gate on,  pulumi up (previews first; -y) ", { gatewayUrl: `https://${gateway.address}` }, true],
            ] as const) {
                const stack = await EngineStack.create({
                    config: { ...NO_INSTALLS, ...config, activeVersion: "v1" },
                    target: "cluster",
                    env: { ...cluster.env, ...TYPE_CHECKED },
                });
                try {
                    await stack.up();
                    await istio.expectGatewayLive("v1", 30);
                    const { totals, shares, switches } = await timeRollbacks(stack, istio, preview);
                    const range = (xs: number[], digits: number) =>
                        `${median(xs).toFixed(digits)} s (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
                    lines.push(
                        `${label}: rollback, pulumi up start -> route at the gateway ${range(totals, 2)}   istiod's share, write -> push ${range(shares, 3)}   ` +
                            `goal <= 3 s: ${median(totals) <= 3 ? "met" : "NOT met"}   (the switch to v2 before each: ${range(switches, 2)})`,
                    );
                    console.log(lines[lines.length - 1]);
                } finally {
                    await stack.pulumi("destroy", "--yes", "--skip-preview").catch(() => undefined);
                    stack.dispose();
                }
            }
        } finally {
            await gateway.stop();
        }
        return lines.join("\n");
    } finally {
        await cluster.down();
    }
}

/** RUNS pairs of a switch to v2 and a rollback to v1; their times (s) to the push, and istiod's share of the rollbacks'. */
async function timeRollbacks(stack: EngineStack, istio: IstioRoutes, preview: boolean): Promise<{ totals: number[]; shares: number[]; switches: number[] }> {
    const totals: number[] = [];
    const shares: number[] = [];
    // The switch to v2 is timed the same way: with the gate on it includes the gate's fetch of v2.
    const switches: number[] = [];
    for (let i = 0; i < RUNS; i++) {
        for (const version of ["v2", "v1"]) {
            if (stopSignal !== undefined) throw new Error(`stopped by ${stopSignal}`);
            await stack.pulumi("config", "set", configKey("activeVersion"), version);
            const clock = istio.switchClock(version, `virtualservices.networking.istio.io/${APP}`, APP_NAMESPACE);
            const start = performance.now();
            try {
                // With its preview, as a person types it (`pulumi up`, the confirmation answered by -y).
                if (preview) await stack.pulumi("up", "--yes", "--non-interactive");
                else await stack.up();
                const [pushed, written] = await Promise.all([clock.pushed, clock.written]);
                if (version === "v1") {
                    totals.push((pushed - start) / 1000);
                    shares.push((pushed - written) / 1000);
                } else {
                    switches.push((pushed - start) / 1000);
                }
            } finally {
                clock.stop();
            }
        }
    }
    return { totals, shares, switches };
}

async function main(): Promise<void> {
    if (!pulumiOnPath()) throw new Error('no pulumi on PATH: run `eval "$(scripts/engine.sh env)"` first');
    // `npm run bench:engine -- rollback`: only the rollback to the gateway.
    if (process.argv[2] === "rollback") {
        console.log(
            `local API server with istiod, median of ${RUNS} rollbacks (${process.version}, ${new Date().toISOString().slice(0, 10)}):\n${await rollbackToGateway()}`,
        );
        return;
    }
    const rows: string[] = [];
    for (const mode of MODES) {
        const program = await EngineStack.create({
            config: { installIstio: "false", installCertManager: "false", smokeCheck: "false" },
            prebuilt: mode.prebuilt,
            env: mode.env,
        });
        const floor = await EngineStack.create({ config: { value: "0" }, files: mode.prebuilt ? prebuiltFloor() : FLOOR, env: mode.env });
        try {
            rows.push(`${mode.label.padEnd(34)} ${await compare(program, floor)}`);
            console.log(rows[rows.length - 1]);
        } finally {
            program.dispose();
            floor.dispose();
        }
    }
    const server = `${MODES[0].label.padEnd(34)} ${await onApiServer()}`;
    console.log(`${server}   (API server)`);
    console.log(`\npulumi up wall time, median of ${RUNS} (${process.version}, ${new Date().toISOString().slice(0, 10)}):`);
    console.log(`rendering YAML (no cluster):\n${rows.join("\n")}`);
    console.log(`local API server (kube-apiserver, etcd, kwok nodes; smokeCheck false):\n${server}`);
    const rollback = await rollbackToGateway();
    console.log(`local API server with istiod, median of ${RUNS} rollbacks:\n${rollback}`);
}

/** The floor program as JavaScript, for the pre-built mode. */
function prebuiltFloor(): Record<string, string> {
    return {
        "Pulumi.yaml": "name: floor\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n",
        "package.json": JSON.stringify({ name: "floor", main: "index.js" }),
        "index.js": [
            'const k8s = require("@pulumi/kubernetes");',
            'const pulumi = require("@pulumi/pulumi");',
            'const value = new pulumi.Config().require("value");',
            'exports.name = new k8s.core.v1.ConfigMap("floor", { data: { value } }).metadata.name;',
            "",
        ].join("\n"),
    };
}

main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
