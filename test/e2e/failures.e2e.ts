// The failure paths, on the real CLI, and what each leaves behind: the rendered objects, the stack's
// state and outputs, locks, processes. A rollback happens on a bad day; these are the bad days. Each
// test brings the stack (and the stand-in gateway) to the state it starts from, so any one of them
// runs alone.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { configKey, NO_INSTALLS, SHORT_GATE, VERSIONS } from "../support/constants";
import { EngineStack, changedFiles, liveWeights as weightsOf, requirePulumi, replicasByVersion } from "../support/engine";
import { StandInGateway } from "../support/gateway";
import { renderedRoutes } from "../support/rendered-routes";
import { descendants, runCommand, waitUntilGone, type CommandResult } from "../support/processes";

const BASE = { ...NO_INSTALLS, smokeCheckTimeout: SHORT_GATE };

const liveWeights = (stack: EngineStack) => weightsOf(stack.objects());
const replicas = (stack: EngineStack) => replicasByVersion(stack.objects());
const outputs = async (stack: EngineStack) => JSON.parse((await stack.pulumi("stack", "output", "--json")).stdout) as Record<string, unknown>;
const set = (stack: EngineStack, key: string, value: string) => stack.pulumi("config", "set", configKey(key), "--", value);
/** A snapshot of everything a failed command must leave as it was. */
async function snapshot(stack: EngineStack) {
    return { state: await stack.state(), rendered: stack.rendered(), outputs: await outputs(stack) };
}

async function assertUnchanged(stack: EngineStack, before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
    assert.deepEqual(changedFiles(before.rendered, stack.rendered()), [], "rendered files changed");
    assert.deepEqual(await stack.state(), before.state, "the state changed");
    assert.deepEqual(await outputs(stack), before.outputs, "the outputs changed");
    assert.deepEqual(stack.locks(), [], "a lock was left");
}

/** The failure as a user reads it: exactly one error line, no stack trace, no escape codes. */
function assertOneLineError(result: CommandResult, message: string): void {
    const text = result.stdout + result.stderr;
    assert.notEqual(result.code, 0);
    assert.ok(!text.includes("unhandled exception"), text);
    assert.ok(!/^\s+at /m.test(text), `a stack trace was printed:\n${text}`);
    assert.ok(!text.includes("\u001b["), "ANSI escapes in the output");
    const errors = [
        ...new Set(
            text
                .split("\n")
                .filter((l) => /^\s*error: /.test(l))
                .map((l) => l.trim()),
        ),
    ];
    assert.deepEqual(errors, [`error: ${message}`]);
}

before(requirePulumi);

describe("the gate fails: nothing that is live moves (real engine, stand-in gateway)", () => {
    let stack: EngineStack;
    let gateway: StandInGateway;

    /** Each test's start: v1 live with idle capacity 0, the gateway up and serving. */
    const v1Live = async () => {
        await gateway.reset();
        await stack.deploy();
        assert.deepEqual(replicas(stack), { v1: 2, v2: 0 });
    };
    /**
     * Where a switch to v2 that failed at the gate leaves the stack: v2 scaled up for the check, v1
     * live with its pods, activeVersion v2 in config. A second failure must change nothing more.
     */
    const FAILED_SWITCH = "a switch to v2 failed at the gate";
    const afterFailedSwitch = () =>
        stack.reach(FAILED_SWITCH, async () => {
            await v1Live();
            await set(stack, "activeVersion", "v2");
            await gateway.down();
            await stack.upFails();
            await gateway.reset();
        });

    before(async () => {
        gateway = await StandInGateway.start(renderedRoutes(() => Promise.resolve(stack?.objects() ?? [])));
        stack = await EngineStack.create({ config: { ...BASE, gatewayUrl: `https://${gateway.address}`, idleReplicas: "0", activeVersion: "v1" } });
    });
    after(async () => {
        await gateway?.stop().catch(() => undefined);
        stack?.dispose();
    });

    it("with idle capacity 0, a switch to a broken v2 fails and v1 keeps its pods, its route and the outputs", async () => {
        await v1Live();
        gateway.serveWrongPage(VERSIONS.v2.image, "<pre>500 oops</pre>");
        const stateBefore = await stack.state();
        await set(stack, "activeVersion", "v2");
        const up = await stack.run("up", "--yes", "--skip-preview");
        assert.notEqual(up.code, 0);
        assert.match(
            up.stdout + up.stderr,
            /gate failed after \d+ s of 5 s: version v2 \(dougbtv\/nginx-cowsay:v2\) at https:\/\/127\.0\.0\.1:\d+ with x-cowsay-version: v2 answered 200 with a page that does not contain "O___O"/,
        );
        assert.deepEqual(liveWeights(stack), { v1: 100 });
        assert.deepEqual(replicas(stack), { v1: 2, v2: 2 }, "v2 scaled up for the check; v1, still live, kept its pods");
        assert.deepEqual(await outputs(stack).then((o) => [o.activeVersion, o.trafficSplit]), ["v1", { v1: 100 }]);
        const routeState = (state: unknown) => (state as { urn: string }[]).find((r) => r.urn.endsWith("VirtualService::cowsay-route"));
        assert.deepEqual(routeState(await stack.state()), routeState(stateBefore));
        assert.deepEqual(stack.locks(), []);
        stack.remember(FAILED_SWITCH);
    });

    it("an unreachable gateway fails the switch within smokeCheckTimeout; the rollback to v1 needs no gateway", async () => {
        await afterFailedSwitch();
        await gateway.reset();
        await gateway.down();
        const before = await snapshot(stack);
        const up = await stack.run("up", "--yes", "--skip-preview");
        assert.notEqual(up.code, 0);
        assert.match(up.stdout + up.stderr, /gate failed after [5-9] s of 5 s: version v2 .* could not be fetched: connect ECONNREFUSED/);
        assert.deepEqual(changedFiles(before.rendered, stack.rendered()), []);
        assert.deepEqual(liveWeights(stack), { v1: 100 });
        assert.equal((await outputs(stack)).activeVersion, "v1");
        // The rollback: v1 never stopped taking traffic here, so nothing is fetched.
        await set(stack, "activeVersion", "v1");
        await stack.up();
        assert.deepEqual(replicas(stack), { v1: 2, v2: 0 }, "v2 goes back to idle");
    });

    it("a gateway that accepts and never answers fails the switch within smokeCheckTimeout, each try reported", async () => {
        await v1Live();
        gateway.mode = "silent";
        await set(stack, "activeVersion", "v2");
        const up = await stack.run("up", "--yes", "--skip-preview");
        assert.notEqual(up.code, 0);
        const text = up.stdout + up.stderr;
        assert.match(text, /gate: v2 try 1 \(\d+ s of 5 s\): could not be fetched: no answer within 5 s/);
        assert.match(text, /gate failed after [5-9] s of 5 s: version v2 .* could not be fetched: no answer within/);
        assert.deepEqual(liveWeights(stack), { v1: 100 });
        assert.deepEqual(stack.locks(), []);
        stack.remember(FAILED_SWITCH);
    });

    it("Ctrl-C during the gate stops it at once: the route stays, nothing is locked, no plugin is left running", async () => {
        await afterFailedSwitch();
        await gateway.reset();
        gateway.mode = "silent";
        await set(stack, "smokeCheckTimeout", "600");
        const before = await snapshot(stack);
        const up = await stack.runUntil(/gate: v2 try 1 /, "up", "--yes", "--skip-preview");
        const plugins = descendants(up.pid);
        // What a terminal's Ctrl-C sends to the foreground process (Pulumi's plugins run in process
        // groups of their own). A minute is far below the gate's 600 s bound: the gate saw the
        // engine's cancel and gave up.
        const code = await up.stop("SIGINT", 60_000);
        const output = up.output();
        assert.notEqual(code, undefined, `pulumi up did not stop within a minute of Ctrl-C:\n${output}`);
        assert.notEqual(code, 0);
        assert.match(output, /gate stopped: the update was cancelled \(Ctrl-C\) after \d+ s of 600 s; the route was not changed/);
        // The program and the plugins are closed by pulumi on its way out, or notice it is gone.
        await waitUntilGone(plugins, 15_000);
        const after = await snapshot(stack);
        assert.deepEqual(changedFiles(before.rendered, after.rendered), []);
        assert.deepEqual(after.outputs, before.outputs);
        assert.deepEqual(stack.locks(), []);
    });
});

describe("bad input through the CLI: one line, nothing changed (real engine)", () => {
    let stack: EngineStack;

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE, smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    // [what, config commands (args after `pulumi config`), the program's message]
    const CASES: [string, string[][], string][] = [
        [
            "a split typed as the README shows, summing to 110",
            [["set", configKey("trafficSplit"), '{"v1":90,"v2":20}']],
            'Invalid config trafficSplit: {"v1":90,"v2":20} sums to 110; the weights must sum to 100. Nothing was changed.',
        ],
        [
            "replicas past int32",
            [["set", configKey("replicas"), "3000000000"]],
            'Invalid config replicas: "3000000000" is not allowed; expected an integer from 1 to 1000. Nothing was changed.',
        ],
        [
            "replicas past int64",
            [["set", configKey("replicas"), "99999999999"]],
            'Invalid config replicas: "99999999999" is not allowed; expected an integer from 1 to 1000. Nothing was changed.',
        ],
        [
            "a billion pods for one version",
            [
                ["set", "--path", configKey("versions.v1.replicas"), "1000000000"],
                ["set", "--path", configKey("versions.v1.image"), "dougbtv/nginx-cowsay:v1"],
                ["set", "--path", configKey("versions.v1.expect"), "^__^"],
                ["set", "--path", configKey("versions.v2.image"), "dougbtv/nginx-cowsay:v2"],
                ["set", "--path", configKey("versions.v2.expect"), "O___O"],
            ],
            "Invalid config versions.v1.replicas: 1000000000 is not allowed; expected an integer from 1 to 1000. Nothing was changed.",
        ],
        [
            "a version name in the wrong case",
            [["set", configKey("activeVersion"), "V2"]],
            'Invalid config activeVersion: "V2" is not a deployed version (did you mean "v2"?); allowed: v1, v2. Nothing was changed.',
        ],
        [
            "a secret that would be written in plain text",
            [["set", "--secret", configKey("hostname"), "cowsay.example.com"]],
            "Invalid config hostname: is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only gatewayUrl, prometheusUrl, prometheusToken and acmeEmail can be kept secret. Set it again without --secret. Nothing was changed.",
        ],
        [
            "a routing API that does not exist",
            [["set", configKey("routingApi"), "Istio"]],
            'Invalid config routingApi: "Istio" is not allowed (did you mean "istio"?); allowed: istio, gateway-api. Nothing was changed.',
        ],
        [
            "a gate with no time",
            [["set", configKey("smokeCheckTimeout"), "0"]],
            'Invalid config smokeCheckTimeout: "0" is not allowed; expected an integer from 5 to 600. Nothing was changed.',
        ],
        [
            "a versions map started with --path that leaves out the live version",
            [
                ["set", "--path", configKey("versions.v3.image"), "registry.example.com/cowsay:v3"],
                ["set", "--path", configKey("versions.v3.expect"), "v3"],
                ["set", configKey("activeVersion"), "v3"],
            ],
            "Invalid config versions: v1 takes live traffic now, but versions declares only v3; this update would delete it. Declare it again (pulumi config set --path 'versions.v1.image' 'dougbtv/nginx-cowsay:v1' && pulumi config set --path 'versions.v1.expect' '^__^'), move the traffic away first, and remove a version once it is idle. Nothing was changed.",
        ],
    ];

    for (const [what, commands, message] of CASES) {
        it(`refuses ${what}: preview and up fail with one line, and state, outputs and rendered files stay`, async () => {
            await stack.deploy();
            const before = await snapshot(stack);
            for (const args of commands) await stack.pulumi("config", ...args);
            assertOneLineError(await stack.run("preview"), message);
            assertOneLineError(await stack.run("up", "--yes", "--skip-preview"), message);
            await assertUnchanged(stack, before);
        });
    }

    it("refuses a Node.js older than 22 with one line that says how to get a newer one", async () => {
        await stack.deploy();
        const old = oldNode();
        const preview = await runCommand("pulumi", ["preview"], {
            cwd: stack.dir,
            env: { ...stack.env, PATH: `${path.dirname(old)}${path.delimiter}${stack.env.PATH ?? ""}` },
        });
        const version = execFileSync(old, ["--version"], { encoding: "utf8" }).trim();
        assertOneLineError(
            preview,
            `This program needs Node.js 22 or newer (@pulumi/pulumi requires it), but pulumi started node ${version}, the first on PATH. npm ci installs Node 24 into node_modules/.bin: run export PATH="$PWD/node_modules/.bin:$PATH" and try again.`,
        );
    });
});

/** A node older than 22: the system's, or Node 20 from the npm registry. */
function oldNode(): string {
    for (const candidate of ["/usr/bin/node", "/usr/local/bin/node"]) {
        if (!existsSync(candidate)) continue;
        const major = Number(execFileSync(candidate, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" }).trim());
        if (major < 22) return candidate;
    }
    const dir = mkdtempSync(path.join(tmpdir(), "cowsay-node20-"));
    execFileSync("npm", ["install", "--no-save", "--prefix", dir, "node@20"], { stdio: "ignore" });
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, "node_modules", ".bin", "node");
}
