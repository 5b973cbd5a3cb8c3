// `npm run demo`: the blog post's blue-green story on a machine with Node and Go and no cluster.
// It builds what is missing (the engine, scripts/engine.sh; the control plane, scripts/cluster.sh),
// starts a local control plane of its own, and walks the four steps of the README's walkthrough with
// the real pulumi CLI, on a temporary copy of the program and a temporary file backend, against that
// API server. The stand-in gateway (test/gateway.ts) answers for Istio's ingress gateway with the
// objects it reads from the API server, so the gate really fetches each version before the switch,
// and curl shows what a visitor sees. After each step it prints what a user would look at and checks
// it; a step that does not do what it should fails the demo. Whatever happens (a failure, Ctrl-C,
// SIGTERM), the control plane is stopped and every temporary directory removed.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";

import { LocalCluster } from "../test/cluster";
import { CommandError, EngineStack, liveWeights, plannedChanges, type PreviewStep } from "../test/engine";
import { StandInGateway, type KubeObject } from "../test/gateway";
import { processesMentioning, runCommand } from "../test/processes";

const ROOT = path.resolve(__dirname, "..", "..");
const APP_NAMESPACE = "cowsay";
const HOST = "cowsay.example.com";
const HEADER = "x-cowsay-version";
/** What the stand-in reads at every request, and what the demo shows: the app's routing objects. */
const APP_KINDS = "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io";
/** The two versions of the blog post, as the README's walkthrough declares them. */
const VERSIONS: Record<string, { image: string; expect: string; looks: string }> = {
    v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^", looks: "the cow" },
    v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O", looks: "the hotdog" },
};

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
    if (signal === "SIGTERM") for (const pid of foregroundDescendants()) signalPid(pid, "SIGINT");
}

function foregroundDescendants(): number[] {
    const table = readdirSync("/proc")
        .filter((entry) => /^\d+$/.test(entry))
        .map((entry) => {
            try {
                // Fields after the command name (which may hold spaces): state ppid pgrp ...
                const fields = readFileSync(`/proc/${entry}/stat`, "utf8").replace(/^.*\) /s, "").split(" ");
                return { pid: Number(entry), ppid: Number(fields[1]), pgrp: Number(fields[2]) };
            } catch {
                return undefined; // gone meanwhile
            }
        })
        .filter((row) => row !== undefined);
    const ownGroup = table.find((row) => row.pid === process.pid)?.pgrp;
    const found: number[] = [];
    const walk = (parent: number) => {
        for (const row of table.filter((r) => r.ppid === parent)) {
            if (row.pgrp === ownGroup) found.push(row.pid);
            walk(row.pid);
        }
    };
    walk(process.pid);
    return found;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
    try {
        process.kill(pid, signal);
    } catch {
        // already gone
    }
}

function checkStop(): void {
    if (stopSignal !== undefined) throw new Interrupted(`stopped by ${stopSignal}`);
}

// ------------------------------------------------------------------------------------------- builds

interface Build {
    readonly what: string;
    readonly script: string;
    /** Pieces to build, each with its cold time in minutes on 2 cores (low, high); empty = cached. */
    readonly missing: { readonly piece: string; readonly minutes: readonly [number, number] }[];
    readonly cache: string;
}

const coldTime = ([low, high]: readonly [number, number]) => (low === high ? `~${low} min` : `~${low}-${high} min`);
const describeMissing = (b: Build) => b.missing.map((m) => `${m.piece} (cold: ${coldTime(m.minutes)})`).join("; ");

/**
 * scripts/*.sh key their caches by versions and a hash of the Go sources under tools/<name>; this is
 * the same hash (`find … | LC_ALL=C sort | xargs sha256sum | sha256sum`), so the demo can say before it
 * starts what it will build. If the scripts change their key, only this message is wrong: they decide.
 */
function sourceHash(dir: string): string {
    const files: string[] = [];
    const walk = (sub: string) => {
        for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
            const rel = `${sub}/${entry.name}`;
            if (entry.isDirectory()) walk(rel);
            else if (entry.isFile() && /(\.go|^go\.mod|^go\.sum)$/.test(entry.name)) files.push(rel);
        }
    };
    walk(".");
    files.sort();
    const sums = files.map((f) => `${createHash("sha256").update(readFileSync(path.join(dir, f))).digest("hex")}  ${f}\n`).join("");
    return createHash("sha256").update(sums).digest("hex").slice(0, 12);
}

function scriptVar(script: string, name: string): string {
    const value = new RegExp(`^${name}=(\\S+)$`, "m").exec(readFileSync(path.join(ROOT, "scripts", script), "utf8"))?.[1];
    if (value === undefined) throw new Error(`scripts/${script} no longer sets ${name}=`);
    return value;
}

function executable(file: string): boolean {
    try {
        accessSync(file, constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

function engineBuild(): Build {
    const cache = process.env.COWSAY_ENGINE_CACHE ?? path.join(homedir(), ".cache", "cowsay-bluegreen", "engine");
    const [cli, k8s] = [scriptVar("engine.sh", "PULUMI_VERSION"), scriptVar("engine.sh", "K8S_VERSION")];
    const dir = path.join(cache, `pulumi-v${cli}_kubernetes-v${k8s}_src-${sourceHash(path.join(ROOT, "tools", "engine"))}`);
    // A pulumi of the user's own on PATH is used as it is; the script then builds only the provider.
    const ownCli =
        process.env.COWSAY_ENGINE_BUILD_CLI === "1" ||
        !(process.env.PATH ?? "").split(path.delimiter).some((d) => d !== "" && !d.startsWith(cache) && executable(path.join(d, "pulumi")));
    const missing: Build["missing"] = [];
    if (ownCli && !(executable(path.join(dir, "bin", "pulumi")) && executable(path.join(dir, "bin", "pulumi-language-nodejs")))) {
        missing.push({ piece: `the Pulumi CLI v${cli}`, minutes: [6, 13] });
    }
    if (!executable(path.join(dir, "provider", "pulumi-resource-kubernetes"))) missing.push({ piece: `the Kubernetes provider v${k8s}`, minutes: [8, 11] });
    return { what: "engine", script: "engine.sh", missing, cache: dir };
}

function clusterBuild(): Build {
    const cache = process.env.COWSAY_CLUSTER_CACHE ?? path.join(homedir(), ".cache", "cowsay-bluegreen", "cluster");
    const pins = JSON.parse(readFileSync(path.join(ROOT, "versions.json"), "utf8")) as { kubernetes: string; etcd: string; kwok: string };
    const dir = path.join(cache, `k8s-v${pins.kubernetes}_etcd-v${pins.etcd}_kwok-v${pins.kwok}_src-${sourceHash(path.join(ROOT, "tools", "cluster"))}`);
    const binaries = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok"].filter((b) => !executable(path.join(dir, "bin", b)));
    const missing: Build["missing"] =
        binaries.length === 0 && existsSync(path.join(dir, "share", "kwok-stages.yaml")) ? [] : [{ piece: binaries.join(", ") || "kwok's stages", minutes: [10, 22] }];
    return { what: "control plane", script: "cluster.sh", missing, cache: dir };
}

/** Runs a script with the demo's stdio, so its progress shows as it goes. */
function runScript(script: string, args: string[]): Promise<number> {
    return new Promise((resolve) => {
        const child = spawn(path.join(ROOT, "scripts", script), args, { stdio: ["ignore", "inherit", "inherit"] });
        child.on("close", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    });
}

/** Builds what is missing, saying up front what that is and how long it takes, then takes on the engine's environment. */
async function prepare(): Promise<void> {
    const builds = [engineBuild(), clusterBuild()];
    const pieces = builds.flatMap((b) => b.missing);
    say("== Building what is missing");
    for (const b of builds) say(b.missing.length === 0 ? `   ${b.what}: cached, reused (${b.cache})` : `   ${b.what}: to build: ${describeMissing(b)}`);
    if (pieces.length > 0) {
        const total: [number, number] = [pieces.reduce((t, p) => t + p.minutes[0], 0), pieces.reduce((t, p) => t + p.minutes[1], 0)];
        say(`   That is ${coldTime(total)} on 2 cores with empty caches, compiled from the Go module proxy (Go 1.26 or`);
        say("   newer); less if the Go build cache (~/.cache/cowsay-bluegreen/go) already holds the packages. Once built,");
        say("   the next run reuses them. Ctrl-C stops a build.");
    }
    for (const b of builds) {
        checkStop();
        if (b.missing.length > 0) say(`\n$ scripts/${b.script} build      # ${b.what}: ${describeMissing(b)}`);
        const code = await runScript(b.script, ["build"]);
        checkStop();
        if (code !== 0) throw new StepFailed(`scripts/${b.script} build exited ${code}; its messages are above`);
    }
    // `eval "$(scripts/engine.sh env)"`, done by bash, taken over into this process (a cache hit here).
    const dump = await new Promise<string>((resolve, reject) => {
        const child = spawn("bash", ["-c", 'eval "$("$0" env)" && env -0', path.join(ROOT, "scripts", "engine.sh")], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
        child.on("close", (code) => (code === 0 ? resolve(out) : reject(new StepFailed(`scripts/engine.sh env exited ${code}`))));
    });
    for (const entry of dump.split("\0")) {
        const eq = entry.indexOf("=");
        const [name, value] = [entry.slice(0, eq), entry.slice(eq + 1)];
        if (eq > 0 && /^(PATH|PULUMI_\w+|COWSAY_\w+)$/.test(name)) process.env[name] = value;
    }
}

// -------------------------------------------------------------------------------------- what we show

/** `a b 'c d'`: arguments as a user types them in a POSIX shell. */
function shellLine(args: readonly string[]): string {
    return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

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

interface PlannedStep extends PreviewStep {
    readonly newState?: { inputs?: { metadata?: { name?: string } } };
    readonly oldState?: { inputs?: { metadata?: { name?: string } } };
}

const SYMBOL: Record<string, string> = { create: "+", update: "~", delete: "-", replace: "+-", "create-replacement": "+-", "delete-replaced": "-" };

/**
 * "~ VirtualService cowsay-nginx (update)" for each step that changes something: Kubernetes objects by
 * kind and their name on the server, other resources by type and Pulumi name. The stack itself and the
 * default provider are left out (every first `up` creates them), as is the program's read of its own
 * outputs (op "read", plannedChanges).
 */
function describePlan(steps: readonly PreviewStep[]): string[] {
    return plannedChanges(steps)
        .filter((s) => !/::pulumi:pulumi:Stack::|::pulumi:providers:/.test(s.urn))
        .map((s) => {
            const step = s as PlannedStep;
            const [, , types = "", name = ""] = s.urn.split("::");
            const kind = (types.split("$").pop() ?? "").split(":").pop() ?? "";
            const kubeName = step.newState?.inputs?.metadata?.name ?? step.oldState?.inputs?.metadata?.name;
            const label = types.split("$").pop()?.startsWith("kubernetes:") === true && kubeName !== undefined ? `${kind} ${kubeName}` : `${kind} ${name}`;
            return `${SYMBOL[s.op] ?? "?"} ${label} (${s.op})`;
        });
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
        .filter((p) => p.metadata.labels?.service === "cowsay-nginx")
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
    return { command: shellLine(["curl", ...args]), page, looks: looks === undefined ? "not a cowsay page" : `${looks[1].looks} (${looks[0]})`, drawing };
}

// ------------------------------------------------------------------------------------------- steps

interface Step {
    readonly title: string;
    /** What the blog post did at this point. */
    readonly story: string;
    /** `pulumi config set` arguments, as the README's walkthrough types them. */
    readonly config: string[][];
    /** The live route the API server must have afterwards. */
    readonly route: Record<string, number>;
    /** Versions whose pods must all be Ready afterwards. */
    readonly versions: string[];
    /** Requests a visitor makes, and the version each must reach: undefined = no test-route header. */
    readonly visits: { header?: string; sees: string }[];
    /** The plan must touch exactly these (sorted "op kind name" labels), when given. */
    readonly plan?: string[];
    /** The versions the gate must fetch through the gateway during `pulumi up`, and why when none. */
    readonly gate: { fetches: string[]; why?: string };
    /** The pods must be the very ones from before the step (nothing restarted). */
    readonly samePods?: boolean;
}

const SWITCH_PLAN = ["~ Gate cowsay-gate (update)", "~ VirtualService cowsay-nginx (update)"];

const STEPS: Step[] = [
    {
        title: "Deploy version 1",
        story: "The post created a v1 Deployment and a route rule to v1.",
        config: [
            ["--path", "versions.v1.image", VERSIONS.v1.image],
            ["--path", "versions.v1.expect", VERSIONS.v1.expect],
        ],
        route: { v1: 100 },
        versions: ["v1"],
        visits: [{ sees: "v1" }],
        gate: { fetches: ["v1"] },
    },
    {
        title: "Add version 2, idle",
        story: "The post applied cowsay-v2.yaml; here v2 joins the DestinationRule and the test route, the live route stays on v1.",
        config: [
            ["--path", "versions.v2.image", VERSIONS.v2.image],
            ["--path", "versions.v2.expect", VERSIONS.v2.expect],
        ],
        route: { v1: 100 },
        versions: ["v1", "v2"],
        visits: [{ sees: "v1" }, { header: "v2", sees: "v2" }],
        gate: { fetches: [], why: "no version starts taking traffic" },
    },
    {
        title: "Go live with v2",
        story: "The post edited routerules.yaml and ran istioctl replace.",
        config: [["activeVersion", "v2"]],
        route: { v2: 100 },
        versions: ["v1", "v2"],
        visits: [{ sees: "v2" }, { header: "v1", sees: "v1" }],
        plan: SWITCH_PLAN,
        gate: { fetches: ["v2"] },
        samePods: true,
    },
    {
        title: "Roll back to v1",
        story: '"HOLY GUACAMOLE, our hotdogs aren\'t READY FOR SALE": v1 never stopped, so the rollback is one route update.',
        config: [["activeVersion", "v1"]],
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
    readonly gateway: StandInGateway;
    readonly stack: EngineStack;
}

/** Runs `pulumi args...` in the stack's project, printed first as the user would type it. */
async function pulumi(stack: EngineStack, ...args: string[]): Promise<void> {
    checkStop();
    say(`$ ${shellLine(["pulumi", ...args])}`);
    await stack.pulumi(...args);
}

async function runStep(demo: Demo, step: Step, n: number): Promise<void> {
    const { cluster, gateway, stack } = demo;
    const fail = (what: string) => new StepFailed(`step ${n} (${step.title}): ${what}`);
    say(`\n== Step ${n}/${STEPS.length}: ${step.title}`);
    say(`   ${step.story}`);
    const podsBefore = await appPods(cluster);
    const routeBefore = n === 1 ? undefined : liveWeights(await cluster.get(APP_KINDS, APP_NAMESPACE));

    for (const args of step.config) await pulumi(stack, "config", "set", ...args);

    checkStop();
    say(`$ pulumi preview --diff --json --non-interactive`);
    const preview = await stack.preview();
    if (preview.result.code !== 0) throw new CommandError(["preview", "--diff", "--json", "--non-interactive"], preview.result);
    const plan = describePlan(preview.steps);
    say(`   plan (${plan.length}):`);
    for (const line of wrap(plan, "     ")) say(line);
    if (step.plan !== undefined && JSON.stringify([...plan].sort()) !== JSON.stringify(step.plan)) {
        throw fail(`the preview plans ${plan.join(", ") || "nothing"}; expected exactly ${step.plan.join(", ")}`);
    }

    checkStop();
    const from = gateway.requests.length;
    say(`$ pulumi up --yes --skip-preview --non-interactive`);
    const start = performance.now();
    await stack.up();
    say(`   done in ${seconds(performance.now() - start)}`);
    const gate = gateway.requests.slice(from);
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
    say(`\n   live route, VirtualService ${APP_NAMESPACE}/cowsay-nginx on the API server: ${routeText(route)}${routeBefore === undefined ? "" : `   (before: ${routeText(routeBefore)})`}`);
    if (JSON.stringify(route) !== JSON.stringify(step.route)) throw fail(`the live route is ${routeText(route)}; expected ${routeText(step.route)}`);
    const pods = await appPods(cluster);
    say(`   pods in namespace ${APP_NAMESPACE}:`);
    for (const pod of pods) say(`     ${pod.name.padEnd(40)} version=${pod.version}  ${pod.ready ? "Ready" : "not Ready"}`);
    for (const version of step.versions) {
        const mine = pods.filter((p) => p.version === version);
        if (mine.length === 0 || mine.some((p) => !p.ready)) throw fail(`version ${version} has ${mine.filter((p) => p.ready).length} Ready pods of ${mine.length}; expected all Ready`);
    }
    if (step.samePods === true) {
        const same = JSON.stringify(pods.map((p) => p.uid).sort()) === JSON.stringify(podsBefore.map((p) => p.uid).sort());
        if (!same) throw fail("pods were replaced; a switch must only move the route");
        say(`     (the same ${pods.length} pods as before the step: none restarted)`);
    }

    say("\n   what a visitor sees through the gateway:");
    for (const v of step.visits) {
        const seen = await visit(gateway, v.header);
        say(`   $ ${seen.command}`);
        say(`     ${seen.looks}:`);
        for (const line of seen.drawing) say(`       ${line}`);
        if (!seen.page.includes(VERSIONS[v.sees].expect)) {
            throw fail(`${v.header === undefined ? "a visitor" : `a request with ${HEADER}: ${v.header}`} got ${seen.looks}; expected ${VERSIONS[v.sees].looks} (${v.sees})`);
        }
    }
}

// --------------------------------------------------------------------------------------------- main

async function main(): Promise<number> {
    const started = performance.now();
    await prepare();
    checkStop();

    let cluster: LocalCluster | undefined;
    let gateway: StandInGateway | undefined;
    let stack: EngineStack | undefined;
    let home: string | undefined;
    try {
        say("\n== Starting a local control plane of its own (kube-apiserver, etcd, scheduler, controller-manager, kwok)");
        let t = performance.now();
        say("$ scripts/cluster.sh up");
        cluster = await LocalCluster.up();
        checkStop();
        say("$ scripts/cluster.sh apply-crds");
        await cluster.script("apply-crds");
        // A cluster that runs a mesh has its ingress namespace; the TLS Certificate goes there.
        say("$ kubectl create namespace istio-ingress");
        const ns = await cluster.kubectl("create", "namespace", "istio-ingress");
        if (ns.code !== 0) throw new StepFailed(`kubectl create namespace istio-ingress: ${ns.stderr}`);
        say(`   ready in ${seconds(performance.now() - t)}, in a temporary state directory: KUBECONFIG=${cluster.env.KUBECONFIG ?? "?"}`);
        say("   Istio's and cert-manager's CRDs are applied, not their controllers: kwok's fake nodes make pods Ready");
        say("   without running them, and a stand-in answers for the Istio ingress gateway, routing each request with");
        say("   the VirtualServices and Deployments it reads from this API server.");
        const c = cluster;
        gateway = await StandInGateway.start(() => c.get(APP_KINDS, APP_NAMESPACE));
        say(`   stand-in gateway: https://${gateway.address} (GATEWAY_ADDRESS=${gateway.address})`);

        // Its own PULUMI_HOME, so the workspace and log files pulumi writes go with the temporary
        // directory; the plugins are the engine cache's.
        home = mkdtempSync(path.join(tmpdir(), "cowsay-demo-home-"));
        const plugins = path.join(process.env.PULUMI_HOME ?? "", "plugins");
        if (existsSync(plugins)) symlinkSync(plugins, path.join(home, "plugins"));
        else mkdirSync(path.join(home, "plugins"));
        stack = EngineStack.project({ config: {}, target: "cluster", env: { ...cluster.env, PULUMI_HOME: home } });
        const demo: Demo = { cluster, gateway, stack };

        say(`\n== Setup: a copy of the program in ${stack.dir}, state in ${stack.env.PULUMI_BACKEND_URL ?? "?"}`);
        t = performance.now();
        await pulumi(stack, "stack", "init", "blog");
        // The local cluster has Istio's and cert-manager's CRDs but not their charts (no internet here).
        await pulumi(stack, "config", "set", "installIstio", "false");
        await pulumi(stack, "config", "set", "installCertManager", "false");
        await pulumi(stack, "config", "set", "gatewayUrl", `https://${gateway.address}`);
        say(`   (${seconds(performance.now() - t)})`);

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

/**
 * Stops the control plane and removes every temporary directory. `cluster.sh down` runs in a session of
 * its own, so that a second Ctrl-C cannot cut it short and leave the control plane running.
 */
async function teardown(cluster?: LocalCluster, gateway?: StandInGateway, stack?: EngineStack, home?: string): Promise<void> {
    say("\n== Teardown");
    await gateway?.stop().catch(() => undefined);
    if (stack !== undefined) {
        // A pulumi stopped hard (a second Ctrl-C) leaves its plugins to exit on their own, the provider
        // within minutes; they run in the temporary project, which is how they are found.
        for (const pid of processesIn(stack.dir)) signalPid(pid, "SIGKILL");
        stack.dispose();
    }
    if (home !== undefined) rmSync(home, { recursive: true, force: true });
    if (cluster !== undefined) {
        const code = await new Promise<number>((resolve) => {
            const child = spawn(path.join(ROOT, "scripts", "cluster.sh"), ["down"], { env: cluster.env, detached: true, stdio: ["ignore", "inherit", "inherit"] });
            child.on("close", (c) => resolve(c ?? 1));
        });
        rmSync(cluster.state, { recursive: true, force: true });
        if (code !== 0) say(`[demo] scripts/cluster.sh down exited ${code}`);
    }
    // What a user would look for afterwards: a control plane or a plugin still running, a directory left.
    const dirs = [stack?.root, home, cluster?.state].filter((d): d is string => d !== undefined);
    const left = [
        ...dirs.filter((d) => existsSync(d)),
        ...dirs.flatMap((d) => [...processesIn(d), ...processesMentioning(`${d}/`).map((p) => p.pid)]).map((pid) => `process ${pid}`),
        ...foregroundDescendants().map((pid) => `process ${pid}`),
    ];
    if (left.length === 0) say("   nothing left behind: the control plane is stopped, the temporary directories are removed");
    else {
        say(`[demo] left behind: ${[...new Set(left)].join(", ")}`);
        process.exitCode = 1;
    }
}

function processesIn(dir: string): number[] {
    return readdirSync("/proc")
        .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
        .filter((entry) => {
            try {
                const cwd = readlinkSync(`/proc/${entry}/cwd`);
                return cwd === dir || cwd.startsWith(`${dir}/`);
            } catch {
                return false;
            }
        })
        .map(Number);
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
        else if (err instanceof CommandError) say(`\n[demo] FAILED: ${err.message}`);
        else say(`\n[demo] FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        process.exit(1);
    },
);
