// `npm run demo`: the blog post's blue-green story on a machine with Node and Go and no cluster.
// It builds what is missing (the engine, scripts/engine.sh; the control plane, scripts/cluster.sh),
// and runs the README's walkthrough blocks as written, with the real pulumi CLI, on a temporary copy
// of the program and a temporary file backend, against a local API server of its own. It uses the
// end-to-end suites' harness: the control plane is test/support/cluster.ts's LocalCluster, with istiod (Istio's
// control plane, built from Istio's main branch at the 1.31 branch point), the project and its
// environment test/support/engine.ts's EngineStack, the blocks are read and run by test/support/readme.ts, and the
// stand-in gateway (test/support/gateway.ts) answers for Istio's ingress gateway by the route table istiod
// pushes to it (test/support/istio-routes.ts), so the gate really fetches each version before the switch. What
// is its own is the narration: after each block it prints the commands, the plan, the live route as the
// API server has it and as istiod pushes it to the gateway (with how long a switch took to get there),
// the pods, and what a visitor sees, and checks each; a step that does not do what it should fails the
// demo. Whatever happens (a failure, Ctrl-C, SIGTERM), the control plane is stopped and
// every temporary directory removed.
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import { GATEWAY_NAME } from "../config";
import { LocalCluster } from "../test/support/cluster";
import { APP, APP_NAMESPACE, configKey, GATEWAY_SELECTOR, HEADER, HOST, INGRESS_NAMESPACE, NO_INSTALLS, ROOT, VERSIONS } from "../test/support/constants";
import { EngineStack, TYPE_CHECKED, liveWeights } from "../test/support/engine";
import type { StandInGateway, KubeObject } from "../test/support/gateway";
import { createGatewayService, createTlsSecret, IstioRoutes } from "../test/support/istio-routes";
import { descendants, processesIn, processesMentioning, runCommand, runToEnd, signalAll } from "../test/support/processes";
import { readmeBlocks, runBlock, type ReadmeBlock } from "../test/support/readme";

/** What the demo shows: the app's routing objects and Deployments on the API server. */
const APP_KINDS = "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io";
/** How a visitor tells the versions apart. */
const LOOKS: Record<string, string> = { v1: "the cow", v2: "the hotdog" };

/** A step did not do what it should; the message says what was seen and what was expected. */
class StepFailed extends Error {}
/** Ctrl-C or SIGTERM: the demo stops after what runs now, and tears down. */
class Interrupted extends Error {}

const say = (line = "") => process.stdout.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// ------------------------------------------------------------------------------------------ signals

let stopSignal: NodeJS.Signals | undefined;
let tearingDown = false;

/**
 * Ctrl-C reaches every process of the terminal's foreground group, pulumi and the build scripts
 * included, and each stops in its own way (pulumi cancels cleanly, cluster.sh stops what it started);
 * the demo then tears down. A SIGTERM reaches the demo alone, so it hands a Ctrl-C (SIGINT) to those
 * same processes: its descendants in its own process group. The control plane runs in sessions of its
 * own (setsid) and is not one of them; the teardown stops it.
 */
function onSignal(signal: NodeJS.Signals): void {
    if (tearingDown) {
        say(`\n[demo] ${signal}: still tearing down (stopping the control plane, removing temporary files) ...`);
        return;
    }
    const first = stopSignal === undefined;
    stopSignal ??= signal;
    if (first) say(`\n[demo] ${signal}: stopping after the command that runs now, then tearing down ...`);
    if (signal === "SIGTERM") signalAll(descendants(process.pid, { sameGroup: true }), "SIGINT");
}

function checkStop(): void {
    if (stopSignal !== undefined) throw new Interrupted(`stopped by ${stopSignal}`);
}

// ------------------------------------------------------------------------------------------- builds

/** What a script's `built` verb says: cached, what it would build, or nothing it knows of. */
async function cacheState(script: string): Promise<{ cached: boolean; toBuild: string[]; unknown?: string }> {
    const result = await runCommand(path.join(ROOT, "scripts", script), ["built"], { env: process.env });
    const toBuild = result.stdout.split("\n").filter((line) => line.trim() !== "");
    if (result.code === 0) return { cached: true, toBuild: [] };
    if (toBuild.length > 0) return { cached: false, toBuild };
    // A script without the verb (or one that failed) says so on stderr; `build` will decide.
    return { cached: false, toBuild: [], unknown: result.stderr.trim().split("\n").pop() ?? `exited ${result.code}` };
}

/** Builds what is missing, saying up front what that is (the scripts' `built`), then takes on the engine's environment. */
async function prepare(): Promise<void> {
    const builds = [
        { what: "engine", script: "engine.sh" },
        { what: "control plane", script: "cluster.sh" },
    ];
    say("== Building what is missing");
    const states = await Promise.all(builds.map((b) => cacheState(b.script)));
    for (const [i, b] of builds.entries()) {
        const state = states[i];
        if (state.cached) say(`   ${b.what}: cached, reused`);
        else if (state.unknown !== undefined)
            say(`   ${b.what}: not known in advance (scripts/${b.script} built: ${state.unknown}); its build says what it does`);
        else say(`   ${b.what}: to build: ${state.toBuild.join("; ")}`);
    }
    if (states.some((s) => !s.cached)) {
        say("   Builds compile from the Go module proxy (Go 1.26 or newer); less if the Go build cache");
        say("   (~/.cache/cowsay-bluegreen/go) already holds the packages. Once built, the next run reuses them.");
        say("   Ctrl-C stops a build.");
    }
    for (const [i, b] of builds.entries()) {
        checkStop();
        if (!states[i].cached) say(`\n$ scripts/${b.script} build      # ${b.what}`);
        const code = await runToEnd(path.join(ROOT, "scripts", b.script), ["build"], { env: process.env, output: "inherit" });
        checkStop();
        if (code !== 0) throw new StepFailed(`scripts/${b.script} build exited ${code}; its messages are above`);
    }
    // `eval "$(scripts/engine.sh env)"`, done by bash, taken over into this process (a cache hit here).
    const dump = await runCommand("bash", ["-c", 'eval "$("$0" env)" && env -0', path.join(ROOT, "scripts", "engine.sh")], { env: process.env });
    if (dump.code !== 0) throw new StepFailed(`scripts/engine.sh env exited ${dump.code}: ${dump.stderr}`);
    for (const entry of dump.stdout.split("\0")) {
        const eq = entry.indexOf("=");
        const [name, value] = [entry.slice(0, eq), entry.slice(eq + 1)];
        if (eq > 0 && /^(PATH|PULUMI_\w+|COWSAY_\w+)$/.test(name)) process.env[name] = value;
    }
}

// -------------------------------------------------------------------------------------- what we show

/** Joins items with ", " into lines of at most `width` characters, each indented. */
function wrap(items: string[], indent: string, width = 100): string[] {
    const lines: string[] = [];
    let line = "";
    for (const item of items) {
        if (line !== "" && indent.length + line.length + 2 + item.length > width) {
            lines.push(`${indent}${line},`);
            line = "";
        }
        line = line === "" ? item : `${line}, ${item}`;
    }
    if (line !== "") lines.push(`${indent}${line}`);
    return lines;
}

/**
 * The plan of the block's `pulumi up`, from its own preview (the last "Previewing update" of the
 * block's output): "~ VirtualService cowsay-route (update)" per resource that changes, by type and
 * Pulumi name. The stack itself and the default provider are left out (every first `up` creates them).
 */
function planOf(output: string): string[] {
    const start = output.lastIndexOf("Previewing update");
    if (start < 0) return [];
    const end = output.indexOf("\nResources:", start);
    const section = output.slice(start, end < 0 ? undefined : end);
    const steps = new Map<string, string>();
    for (const m of section.matchAll(/^ (\+-|[~+-]) +(\S+) +(\S+) +(create|update|delete|replace)(?=\s|$)/gm)) {
        // A step that takes a moment is printed when it starts and again when it is done: once here.
        if (!/^pulumi:(pulumi:Stack|providers:)/.test(m[2])) steps.set(`${m[2]} ${m[3]}`, `${m[1]} ${m[2].split(":").pop() ?? m[2]} ${m[3]} (${m[4]})`);
    }
    return [...steps.values()];
}

interface Pod {
    readonly name: string;
    readonly uid: string;
    readonly version: string;
    readonly ready: boolean;
}

async function appPods(cluster: LocalCluster): Promise<Pod[]> {
    const pods = (await cluster.get("pods", APP_NAMESPACE)) as (KubeObject & {
        metadata: { uid: string };
        status?: { conditions?: { type: string; status: string }[] };
    })[];
    return pods
        .filter((p) => p.metadata.labels?.service === APP)
        .map((p) => ({
            name: p.metadata.name,
            uid: p.metadata.uid,
            version: p.metadata.labels?.version ?? "?",
            ready: (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
        }))
        .sort((a, b) => a.version.localeCompare(b.version) || a.name.localeCompare(b.name));
}

const routeText = (weights: Record<string, number>) =>
    Object.entries(weights)
        .map(([subset, weight]) => `subset ${subset}: weight ${weight}`)
        .join(", ");

/** What curl gets through the stand-in: the drawing lines of the page, and which version's page it is. */
async function visit(gateway: StandInGateway, version?: string): Promise<{ command: string; page: string; looks: string; drawing: string[] }> {
    const args = ["-sk", "--connect-to", `::${gateway.address}`, ...(version === undefined ? [] : ["-H", `${HEADER}: ${version}`]), `https://${HOST}/`];
    const page = (await runCommand("curl", args, { env: process.env })).stdout;
    const lines = page.split("\n");
    // The drawing starts below the speech bubble's lower border.
    const below = lines.findIndex((l) => /^ -+$/.test(l));
    const drawing = below < 0 ? [lines[0] ?? ""] : lines.slice(below + 1).filter((l) => l !== "" && l !== "</pre>");
    const looks = Object.entries(VERSIONS).find(([, v]) => page.includes(v.expect));
    const header = version === undefined ? "" : `-H '${HEADER}: ${version}' `;
    return {
        command: `curl -sk --connect-to ::${gateway.address} ${header}https://${HOST}/`,
        page,
        looks: looks === undefined ? "not a cowsay page" : `${LOOKS[looks[0]]} (${looks[0]})`,
        drawing,
    };
}

// ------------------------------------------------------------------------------------------- steps

interface Step {
    /** The README block this step runs, as written. */
    readonly block: string;
    readonly title: string;
    /** What the blog post did at this point. */
    readonly story: string;
    /** The live route the API server must have afterwards. */
    readonly route: Record<string, number>;
    /** Versions whose pods must all be Ready afterwards. */
    readonly versions: string[];
    /** Requests a visitor makes, and the version each must reach: undefined = no test-route header. */
    readonly visits: { header?: string; sees: string }[];
    /** The plan must touch exactly these (sorted "op type name (op)" labels), when given. */
    readonly plan?: string[];
    /** The versions the gate must fetch through the gateway during the block, and why when none. */
    readonly gate: { fetches: string[]; why?: string };
    /** The pods must be the very ones from before the step (nothing restarted). */
    readonly samePods?: boolean;
}

const SWITCH_PLAN = ["~ Gate cowsay-gate (update)", "~ VirtualService cowsay-route (update)"];

const STEPS: Step[] = [
    {
        block: "walkthrough-1",
        title: "Deploy version 1",
        story: "The post created a v1 Deployment and a route rule to v1.",
        route: { v1: 100 },
        versions: ["v1"],
        visits: [{ sees: "v1" }],
        gate: { fetches: [], why: "gatewayUrl is not set yet, so only the Deployment's readiness gates the route" },
    },
    {
        block: "walkthrough-gate",
        title: "Tell the program where the gateway is",
        story: "With the gateway's address, each version is fetched through it before it takes traffic; the live v1 once now.",
        route: { v1: 100 },
        versions: ["v1"],
        visits: [{ sees: "v1" }],
        gate: { fetches: ["v1"] },
        samePods: true,
    },
    {
        block: "walkthrough-2",
        title: "Add version 2, idle",
        story: "The post applied cowsay-v2.yaml; here v2 joins the DestinationRule and the test route, the live route stays on v1.",
        route: { v1: 100 },
        versions: ["v1", "v2"],
        visits: [{ sees: "v1" }, { header: "v2", sees: "v2" }],
        gate: { fetches: [], why: "no version starts taking traffic" },
    },
    {
        block: "walkthrough-3",
        title: "Go live with v2",
        story: "The post edited routerules.yaml and ran istioctl replace.",
        route: { v2: 100 },
        versions: ["v1", "v2"],
        visits: [{ sees: "v2" }, { header: "v1", sees: "v1" }],
        plan: SWITCH_PLAN,
        gate: { fetches: ["v2"] },
        samePods: true,
    },
    {
        block: "walkthrough-4",
        title: "Roll back to v1",
        story: '"HOLY GUACAMOLE, our hotdogs aren\'t READY FOR SALE": v1 never stopped, so the rollback is one route update.',
        route: { v1: 100 },
        versions: ["v1", "v2"],
        visits: [{ sees: "v1" }, { header: "v2", sees: "v2" }],
        plan: SWITCH_PLAN,
        gate: { fetches: [], why: "v1 took the live traffic just before this switch; a rollback does not depend on the gateway" },
        samePods: true,
    },
];

interface Demo {
    readonly cluster: LocalCluster;
    readonly istio: IstioRoutes;
    readonly gateway: StandInGateway;
    readonly stack: EngineStack;
    readonly blocks: ReadonlyMap<string, ReadmeBlock>;
}

async function runStep(demo: Demo, step: Step, n: number): Promise<void> {
    const { cluster, gateway, stack, istio } = demo;
    const fail = (what: string) => new StepFailed(`step ${n} (${step.title}): ${what}`);
    const block = demo.blocks.get(step.block);
    if (block === undefined) throw fail(`the README has no block marked ${step.block}`);
    say(`\n== Step ${n}/${STEPS.length}: ${step.title}`);
    say(`   ${step.story}`);
    const podsBefore = await appPods(cluster);
    const routeBefore = n === 1 ? undefined : liveWeights(await cluster.get(APP_KINDS, APP_NAMESPACE));

    checkStop();
    for (const line of block.script.split("\n")) say(`$ ${line}`);
    const from = gateway.requests.length;
    const live = Object.keys(step.route).length === 1 ? Object.keys(step.route)[0] : undefined;
    // A switch is timed to the gateway: from the block's start (for the rollback, the user's one
    // command) and from the API server's write of the VirtualService, to istiod's push.
    const clock =
        step.plan === SWITCH_PLAN && live !== undefined ? istio.switchClock(live, `virtualservices.networking.istio.io/${APP}`, APP_NAMESPACE) : undefined;
    const start = performance.now();
    const result = await runBlock(block, stack.dir, stack.env).finally(() => clock?.stop());
    checkStop();
    if (result.code !== 0) throw fail(`the README's block ${step.block} exited ${result.code}:\n${result.output}`);
    const plan = planOf(result.output);
    say(`   plan of pulumi up (${plan.length}):`);
    for (const line of wrap(plan, "     ")) say(line);
    say(`   done in ${seconds(performance.now() - start)}`);
    if (step.plan !== undefined && JSON.stringify([...plan].sort()) !== JSON.stringify(step.plan)) {
        throw fail(`pulumi up planned ${plan.join(", ") || "nothing"}; expected exactly ${step.plan.join(", ")}`);
    }
    // The gate's requests, not the block's own curl (curl names itself; the gate sends no User-Agent).
    const gate = gateway.requests.slice(from).filter((r) => r.userAgent?.startsWith("curl/") !== true);
    say(
        gate.length === 0
            ? `   the gate fetched nothing: ${step.gate.why ?? "?"}`
            : `   the gate fetched through the gateway: ${gate.map((r) => `${HEADER}: ${r.header ?? "(none)"} -> ${r.routedTo ?? "?"} (${r.status})`).join("; ")}`,
    );
    const fetched = [...new Set(gate.filter((r) => r.status === 200 && r.header === r.routedTo).map((r) => r.routedTo ?? "?"))].sort();
    if (JSON.stringify(fetched) !== JSON.stringify(step.gate.fetches)) {
        throw fail(`the gate fetched ${fetched.join(", ") || "nothing"} through the gateway; expected ${step.gate.fetches.join(", ") || "nothing"}`);
    }

    // What the API server has now: the live route and the pods.
    const route = liveWeights(await cluster.get(APP_KINDS, APP_NAMESPACE));
    say(
        `\n   live route, VirtualService ${APP_NAMESPACE}/${APP} on the API server: ${routeText(route)}${routeBefore === undefined ? "" : `   (before: ${routeText(routeBefore)})`}`,
    );
    if (JSON.stringify(route) !== JSON.stringify(step.route)) throw fail(`the live route is ${routeText(route)}; expected ${routeText(step.route)}`);
    // What Istio made of it: the route table istiod pushes to the ingress gateway for the host on 443.
    if (live !== undefined) {
        try {
            await istio.expectGatewayLive(live, 30);
        } catch (err) {
            throw fail(err instanceof Error ? err.message : String(err));
        }
    }
    say(`   the gateway's route for https://${HOST}/, as istiod pushes it (Envoy's order, first match wins):`);
    for (const line of await istio.gatewayTable()) say(`     ${line}`);
    if (clock !== undefined) {
        const [pushed, written] = await Promise.all([clock.pushed, clock.written]);
        say(
            `   istiod pushed it to the gateway ${seconds(pushed - start)} after the block started, ${((pushed - written) / 1000).toFixed(2)} s after the API server had the new VirtualService`,
        );
    }
    const pods = await appPods(cluster);
    say(`   pods in namespace ${APP_NAMESPACE}:`);
    for (const pod of pods) say(`     ${pod.name.padEnd(40)} version=${pod.version}  ${pod.ready ? "Ready" : "not Ready"}`);
    for (const version of step.versions) {
        const mine = pods.filter((p) => p.version === version);
        if (mine.length === 0 || mine.some((p) => !p.ready))
            throw fail(`version ${version} has ${mine.filter((p) => p.ready).length} Ready pods of ${mine.length}; expected all Ready`);
    }
    if (step.samePods === true) {
        const same = JSON.stringify(pods.map((p) => p.uid).sort()) === JSON.stringify(podsBefore.map((p) => p.uid).sort());
        if (!same) throw fail("pods were replaced; this step must only change routing");
        say(`     (the same ${pods.length} pods as before the step: none restarted)`);
    }

    say("\n   what a visitor sees through the gateway:");
    for (const v of step.visits) {
        const seen = await visit(gateway, v.header);
        say(`   $ ${seen.command}`);
        say(`     ${seen.looks}:`);
        for (const line of seen.drawing) say(`       ${line}`);
        if (!seen.page.includes(VERSIONS[v.sees].expect)) {
            throw fail(
                `${v.header === undefined ? "a visitor" : `a request with ${HEADER}: ${v.header}`} got ${seen.looks}; expected ${LOOKS[v.sees]} (${v.sees})`,
            );
        }
    }
}

// --------------------------------------------------------------------------------------------- main

async function main(): Promise<number> {
    const started = performance.now();
    const blocks = new Map(readmeBlocks().map((b) => [b.id, b]));
    await prepare();
    checkStop();

    let cluster: LocalCluster | undefined;
    let gateway: StandInGateway | undefined;
    let istio: IstioRoutes | undefined;
    let stack: EngineStack | undefined;
    let home: string | undefined;
    try {
        say("\n== Starting a local control plane of its own (kube-apiserver, etcd, scheduler, controller-manager, kwok, istiod)");
        let t = performance.now();
        say("$ COWSAY_CLUSTER_ISTIOD=1 scripts/cluster.sh up     # applies the CRDs, then starts istiod");
        // A cluster that runs a mesh has its ingress namespace, the gateway chart's Service and, once
        // cert-manager has issued it, the TLS Secret; the TLS Certificate goes there.
        say(`$ kubectl create namespace ${INGRESS_NAMESPACE}; kubectl -n ${INGRESS_NAMESPACE} create service clusterip ${GATEWAY_NAME} ...`);
        cluster = await LocalCluster.up({ crds: true, istiod: true });
        await createGatewayService(cluster, INGRESS_NAMESPACE, GATEWAY_SELECTOR);
        const secret = await createTlsSecret(cluster, INGRESS_NAMESPACE, HOST);
        checkStop();
        say(`   ready in ${seconds(performance.now() - t)}, in a temporary state directory: KUBECONFIG=${cluster.env.KUBECONFIG ?? "?"}`);
        say("   Istio's and cert-manager's CRDs are applied; istiod runs (Istio's main branch at the 1.31 branch point,");
        say(`   not the 1.31.4 release); cert-manager does not (the Secret it would issue, ${secret}, is made here).`);
        say("   kwok's fake nodes make pods Ready without running them. A stand-in answers for the Istio ingress gateway");
        say("   (no Envoy): it routes each request by the route table istiod pushes to it over xDS.");
        istio = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR });
        gateway = await istio.startGateway();
        say(`   stand-in gateway: https://${gateway.address} (GATEWAY_ADDRESS=${gateway.address})`);

        // Its own PULUMI_HOME, so the workspace and log files pulumi writes go with the temporary
        // directory; the plugins are the engine cache's.
        home = mkdtempSync(path.join(tmpdir(), "cowsay-demo-home-"));
        const plugins = path.join(process.env.PULUMI_HOME ?? "", "plugins");
        if (existsSync(plugins)) symlinkSync(plugins, path.join(home, "plugins"));
        else mkdirSync(path.join(home, "plugins"));
        // Type-checked, as a user's pulumi runs the program (the test harness only transpiles).
        stack = EngineStack.project({
            config: {},
            target: "cluster",
            env: { ...cluster.env, ...TYPE_CHECKED, PULUMI_HOME: home, GATEWAY_ADDRESS: gateway.address },
        });
        // The local cluster has Istio's and cert-manager's CRDs but not their charts (no internet here).
        stack.writeStackFiles({ blog: Object.fromEntries(Object.entries(NO_INSTALLS).map(([key, value]) => [configKey(key), value])) });
        say(`\n== Setup: a copy of the program in ${stack.dir}, state in ${stack.env.PULUMI_BACKEND_URL ?? "?"}`);
        say(
            `   Pulumi.blog.yaml starts with ${Object.entries(NO_INSTALLS)
                .map(([key, value]) => `${key}: ${value}`)
                .join(", ")} (the charts cannot be fetched here);`,
        );
        say("   the steps are the README's walkthrough blocks, run as written with GATEWAY_ADDRESS set.");
        const demo: Demo = { cluster, istio, gateway, stack, blocks };

        for (const [i, step] of STEPS.entries()) {
            t = performance.now();
            await runStep(demo, step, i + 1);
            say(`   step ${i + 1} took ${seconds(performance.now() - t)}`);
        }
        say(`\n== Done: v1 live again, v2 warm beside it. The demo took ${seconds(performance.now() - started)} (teardown follows).`);
        return 0;
    } finally {
        tearingDown = true;
        await teardown(cluster, gateway, stack, home);
    }
}

/** Stops the control plane and removes every temporary directory, then says whether anything was left. */
async function teardown(cluster?: LocalCluster, gateway?: StandInGateway, stack?: EngineStack, home?: string): Promise<void> {
    say("\n== Teardown");
    await gateway?.stop().catch(() => undefined);
    if (stack !== undefined) {
        // A pulumi stopped hard (a second Ctrl-C) leaves its plugins to exit on their own, the provider
        // within minutes; they run in the temporary project, which is how they are found.
        signalAll(processesIn(stack.dir), "SIGKILL");
        stack.dispose();
    }
    if (home !== undefined) rmSync(home, { recursive: true, force: true });
    const code = (await cluster?.down({ output: "inherit" })) ?? 0;
    if (code !== 0) say(`[demo] scripts/cluster.sh down exited ${code}`);
    // What a user would look for afterwards: a control plane or a plugin still running, a directory left.
    const dirs = [stack?.root, home, cluster?.state].filter((d): d is string => d !== undefined);
    const left = [
        ...dirs.filter((d) => existsSync(d)),
        ...[...dirs.flatMap((d) => [...processesIn(d), ...processesMentioning(`${d}/`)]), ...descendants(process.pid, { sameGroup: true })].map(
            (p) => `process ${p.pid} (${p.command})`,
        ),
    ];
    if (left.length === 0) say("   nothing left behind: the control plane is stopped, the temporary directories are removed");
    else {
        say(`[demo] left behind: ${[...new Set(left)].join(", ")}`);
        process.exitCode = 1;
    }
}

process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

main().then(
    (code) => process.exit(process.exitCode ?? code),
    (err: unknown) => {
        if (stopSignal !== undefined) {
            say(`[demo] stopped by ${stopSignal}.`);
            process.exit(stopSignal === "SIGINT" ? 130 : 143);
        }
        if (err instanceof StepFailed) say(`\n[demo] FAILED: ${err.message}`);
        else say(`\n[demo] FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        process.exit(1);
    },
);
