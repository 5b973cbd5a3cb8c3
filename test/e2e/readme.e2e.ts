// The README and the docs, executed: every block marked `<!-- e2e: <id> -->` in README.md and then in
// the docs files test/support/readme.ts lists (README_SUITE_FILES, in story order) runs with bash, exactly as
// written, in that order, against the real Pulumi CLI. Stacks render YAML instead of reaching a
// cluster (three lines added to each stack file: the render directory, no Istio and cert-manager
// installs), and GATEWAY_ADDRESS points at a local stand-in for the gateway that routes with the
// rendered objects.
// Before or after each block, this file sets up what the block is for (a bad value stuck in config,
// a killed update, a gateway that is down) and checks what the block should have changed.
//
// The blocks are one story, in order: each starts where the ones before it left the stacks (the
// walkthrough's v2 exists because walkthrough-2 added it). So a test run alone, or after a filter,
// first plays the blocks before its own, each with its set-up and checks, as the whole suite would;
// in a full run they have just been played, and nothing is repeated.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { COW, HEADER, HOST, HOTDOG, NO_INSTALLS, VERSIONS, configKey } from "../support/constants";
import { EngineStack, changedFiles, liveWeights, requirePulumi, replicasByVersion } from "../support/engine";
import { StandInGateway, pageOf, type KubeObject } from "../support/gateway";
import { renderedRoutes } from "../support/rendered-routes";
import { descendants, waitUntilGone, type ProcessInfo } from "../support/processes";
import { runBlock, storyBlocks, type BlockResult, type ReadmeBlock } from "../support/readme";

// Never execFileSync a client of the stand-in: it runs in this process and could not answer.
const run = promisify(execFile);
const TOKEN = "e2e-t0k3n-never-printed";

type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Context {
    readonly stack: EngineStack;
    gateway: StandInGateway;
    /** Index into gateway.requests when the block started. */
    requestsBefore: number;
    renderedBefore: Map<string, string>;
}

/** What each marked block is for: optional set-up before it, and what it must have changed. */
interface Step {
    readonly before?: (c: Context) => Promise<void>;
    readonly check: (c: Context, result: BlockResult) => Promise<void> | void;
}

const renderDirOf = (c: Context, stack: string) => path.join(c.stack.root, "rendered", stack);
const objects = (c: Context, stack = "blog"): KubeObject[] => c.stack.objects(renderDirOf(c, stack));
const find = (list: KubeObject[], kind: string, name: string): KubeObject => {
    const found = list.filter((o) => o.kind === kind && o.metadata.name === name);
    assert.equal(found.length, 1, `one ${kind} ${name}`);
    return found[0];
};
const replicas = replicasByVersion;
const outputs = async (c: Context): Promise<Record<string, unknown>> =>
    JSON.parse((await c.stack.pulumi("stack", "output", "--json")).stdout) as Record<string, unknown>;
/** Requests the stand-in routed to `version` through its test header since the block started. */
const fetched = (c: Context, version: string) => c.gateway.requests.slice(c.requestsBefore).filter((r) => r.header === version).length;
const setConfig = (c: Context, key: string, value: string) => c.stack.pulumi("config", "set", configKey(key), "--", value);
const upFails = async (c: Context): Promise<string> => {
    const up = await c.stack.run("up", "--yes", "--skip-preview");
    assert.notEqual(up.code, 0, "pulumi up must fail here");
    return up.stdout + up.stderr;
};

const STEPS: Record<string, Step> = {
    deploy: {
        async check(c) {
            const dev = objects(c, "dev");
            assert.deepEqual(liveWeights(dev), { v1: 100 });
            assert.deepEqual(replicas(dev), { v1: 2, v2: 2 });
            assert.equal((await outputs(c)).activeVersion, "v1");
        },
    },
    "walkthrough-1": {
        check(c) {
            assert.deepEqual(liveWeights(objects(c)), { v1: 100 });
            assert.deepEqual(replicas(objects(c)), { v1: 2 }, "v1 alone, as in the post");
        },
    },
    "walkthrough-gate": {
        check(c, result) {
            assert.equal(fetched(c, "v1"), 1, "the new gate fetched the live version once");
            assert.ok(result.output.includes(COW), "the curl shows the cow");
            assert.match(result.output, /gate: v1 answered with its own page \(try 1, /);
        },
    },
    "walkthrough-2": {
        check(c, result) {
            const list = objects(c);
            assert.deepEqual(liveWeights(list), { v1: 100 }, "the live route stays on v1");
            assert.deepEqual(replicas(list), { v1: 2, v2: 2 });
            assert.deepEqual(
                (find(list, "DestinationRule", "cowsay-nginx").spec as Spec).subsets.map((s: Spec) => s.name),
                ["v1", "v2"],
            );
            assert.ok(result.output.includes(HOTDOG), "the curl with the header shows the hotdog");
            assert.match(result.output, /\+ +kubernetes:apps\/v1:Deployment +cowsay-v2 +create/);
            assert.equal(fetched(c, "v2"), 1, "only the README's curl asked for v2: an idle version is not gated");
        },
    },
    "walkthrough-3": {
        async check(c, result) {
            assert.deepEqual(liveWeights(objects(c)), { v2: 100 });
            assert.equal(fetched(c, "v2"), 1, "the gate fetched v2 before the switch");
            assert.ok(result.output.trimEnd().endsWith(pageOf(VERSIONS.v2.image).trimEnd()), "the last curl shows the hotdog");
            // The preview plans the gate and the live route, nothing else.
            const planned = [...result.output.matchAll(/^ ([~+-]) +(\S+) +(\S+) +(update|create|delete|replace)/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
            assert.deepEqual(planned.slice(0, 2), [
                "~ pulumi-nodejs:dynamic/cowsay-bluegreen:Gate cowsay-gate",
                "~ kubernetes:networking.istio.io/v1:VirtualService cowsay-route",
            ]);
            assert.equal((await outputs(c)).activeVersion, "v2");
        },
    },
    "walkthrough-4": {
        check(c) {
            assert.deepEqual(liveWeights(objects(c)), { v1: 100 });
            assert.equal(fetched(c, "v1"), 0, "a rollback does not fetch the version it returns to");
            assert.deepEqual(changedFiles(c.renderedBefore, c.stack.rendered(renderDirOf(c, "blog"))), [
                "1-manifest/networking.istio.io_v1-virtualservice-cowsay-cowsay-nginx.yaml",
            ]);
        },
    },
    weighted: {
        async check(c) {
            assert.deepEqual(liveWeights(objects(c)), { v2: 100 });
            assert.equal(fetched(c, "v2"), 1, "the gate fetched v2 once, when the canary started");
            assert.deepEqual(await outputs(c).then((o) => [o.activeVersion, o.trafficSplit]), ["v2", { v2: 100 }]);
        },
    },
    "add-v3": {
        async check(c) {
            const list = objects(c);
            assert.deepEqual(replicas(list), { v1: 2, v2: 2, v3: 2 }, "v3 joins; v1 and v2 stay");
            assert.deepEqual(liveWeights(list), { v2: 100 });
            // The stand-in reaches v3 through its header, as a user would before going live.
            const { stdout } = await run("curl", [
                "-sk",
                "--max-time",
                "10",
                "--connect-to",
                `::${c.gateway.address}`,
                "-H",
                `${HEADER}: v3`,
                `https://${HOST}/`,
            ]);
            assert.ok(stdout.includes("cowsay:v3"), stdout);
        },
    },
    "retire-v3": {
        check(c) {
            const list = objects(c);
            assert.deepEqual(replicas(list), { v1: 2, v2: 2 });
            assert.deepEqual(
                (find(list, "DestinationRule", "cowsay-nginx").spec as Spec).subsets.map((s: Spec) => s.name),
                ["v1", "v2"],
            );
        },
    },
    idle: {
        check(c, result) {
            assert.match(result.output, /warning: version v1 will run 0 replicas while idle \(idleReplicas=0\)/);
            assert.deepEqual(replicas(objects(c)), { v1: 2, v2: 2 }, "back to full replicas");
        },
    },
    "gateway-down": {
        async before(c) {
            await c.gateway.down(); // nothing answers at GATEWAY_ADDRESS any more
        },
        async check(c) {
            assert.deepEqual(liveWeights(objects(c)), { v1: 100 }, "the rollback went through with the gateway down");
            assert.equal((await outputs(c)).activeVersion, "v1");
            // The gateway is back, at the same address, for the blocks that follow.
            await c.gateway.up();
        },
    },
    secrets: {
        async check(c, result) {
            assert.ok(!result.output.includes(TOKEN), "the token is not printed");
            const out = await outputs(c);
            assert.equal(out.gatewayUrl, "[secret]");
            assert.equal(out.watchCommand, "[secret]");
            assert.ok(!JSON.stringify(out).includes(TOKEN));
            // Not in the state, its backups and history, the stack files or anything rendered.
            assert.deepEqual(filesContaining(c.stack.root, TOKEN), []);
        },
    },
    "bad-value": {
        async before(c) {
            // A bad day: v2 is live, someone stores a broken split, and v2 turns out to be bad.
            await setConfig(c, "activeVersion", "v2");
            await c.stack.pulumi("up", "--yes", "--skip-preview");
            const stateBefore = await c.stack.state();
            await setConfig(c, "trafficSplit", '{"v1":90,"v2":20}');
            await setConfig(c, "activeVersion", "v1");
            const output = await upFails(c);
            assert.match(output, /error: Invalid config trafficSplit: \{"v1":90,"v2":20\} sums to 110; the weights must sum to 100\. Nothing was changed\./);
            assert.deepEqual(await c.stack.state(), stateBefore);
        },
        check(c) {
            assert.deepEqual(liveWeights(objects(c)), { v1: 100 });
        },
    },
    recovery: {
        async before(c) {
            // Kill a switch while its gate waits on a gateway that never answers.
            c.gateway.mode = "silent";
            await setConfig(c, "activeVersion", "v2");
            const killed = await killDuringGate(c);
            const locked = await c.stack.run("up", "--yes", "--skip-preview");
            assert.notEqual(locked.code, 0);
            assert.match(locked.stdout + locked.stderr, /the stack is currently locked by 1 lock\(s\)/);
            // Every plugin notices that the engine is gone and exits: the gate, the language host and
            // the Kubernetes provider, as scripts/engine.sh builds them.
            await waitUntilGone([killed.gate, killed.languageHost, ...killed.others], 15_000);
            c.gateway.mode = "serving";
        },
        async check(c, result) {
            assert.match(result.output, /pending operations/);
            assert.deepEqual(liveWeights(objects(c)), { v2: 100 }, "the interrupted switch completed");
            assert.equal((await outputs(c)).activeVersion, "v2");
            assert.deepEqual(c.stack.locks(), [], "no lock left");
        },
    },
    security: {
        check(c) {
            const list = objects(c);
            const policy = find(list, "AuthorizationPolicy", "cowsay-nginx-callers");
            assert.deepEqual((policy.spec as Spec).rules[0].from[0].source.principals, [
                "cluster.local/ns/istio-ingress/sa/istio-ingressgateway",
                "cluster.local/ns/shop/sa/frontend",
            ]);
            assert.equal((find(list, "Gateway", "cowsay-nginx-gateway").spec as Spec).servers[0].tls, undefined);
            const container = (find(list, "Deployment", "cowsay-nginx-v1").spec as Spec).template.spec.containers[0];
            assert.equal(container.securityContext.readOnlyRootFilesystem, false);
            assert.deepEqual(liveWeights(list), { v2: 100 }, "the route did not move");
        },
    },
};

/** Files under `dir` (node_modules aside) whose text contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && !e.parentPath.includes("node_modules"))
        .map((e) => path.join(e.parentPath, e.name))
        .filter((file) => readFileSync(file, "latin1").includes(needle));
}

/** Starts `pulumi up`, waits for the gate's first try, and kills pulumi with SIGKILL. */
async function killDuringGate(c: Context): Promise<{ gate: ProcessInfo; languageHost: ProcessInfo; others: ProcessInfo[] }> {
    const up = await c.stack.runUntil(/gate: v2 try 1/, "up", "--yes", "--skip-preview");
    const plugins = descendants(up.pid);
    await up.stop("SIGKILL");
    const gate = plugins.find((p) => p.command.includes("dynamic-provider"));
    const languageHost = plugins.find((p) => p.command.includes("pulumi-language-nodejs"));
    assert.ok(gate !== undefined && languageHost !== undefined, plugins.map((p) => p.command).join("\n"));
    return { gate, languageHost, others: plugins.filter((p) => p !== gate && p !== languageHost) };
}

before(requirePulumi);

describe("the README's commands, as written (real engine, rendered YAML, stand-in gateway)", () => {
    const blocks = storyBlocks();
    let context: Context;
    /** How many blocks, from the first, have been played in this run. */
    let played = 0;
    /** The block that failed, if one did: the story cannot go on past it in this run. */
    let broken: ReadmeBlock | undefined;

    /** Runs one block with its set-up and its checks; `asSetUp` when it only leads up to a later block. */
    async function play(block: ReadmeBlock, asSetUp: boolean): Promise<void> {
        const step = STEPS[block.id];
        assert.ok(step !== undefined, `${block.file}:${block.line}: no checks for the block ${block.id}`);
        const where = asSetUp ? `(set-up, played before a later block) ` : "";
        try {
            await step.before?.(context);
            context.requestsBefore = context.gateway.requests.length;
            context.renderedBefore = context.stack.rendered(renderDirOf(context, "blog"));
            const result = await runBlock(block, context.stack.dir, context.stack.env);
            assert.equal(result.code, 0, `${where}${block.file}:${block.line}: block ${block.id} failed:\n${show(block)}\n${result.output}`);
            await step.check(context, result);
        } catch (err) {
            broken = block;
            if (asSetUp && err instanceof Error) err.message = `${where}${block.file}:${block.line}: block ${block.id}: ${err.message}`;
            throw err;
        }
        played = blocks.indexOf(block) + 1;
    }

    before(async () => {
        const stack = EngineStack.project({ config: {}, env: { GATEWAY_TOKEN: TOKEN } });
        // The render-mode substitution, in the stack files the README's stacks will use.
        const renderLines = (name: string) => ({
            "kubernetes:renderYamlToDirectory": path.join(stack.root, "rendered", name),
            ...Object.fromEntries(Object.entries(NO_INSTALLS).map(([key, value]) => [configKey(key), value])),
        });
        stack.writeStackFiles({ dev: renderLines("dev"), blog: renderLines("blog") });
        context = {
            stack,
            gateway: await StandInGateway.start(renderedRoutes(() => Promise.resolve(objects(context)))),
            requestsBefore: 0,
            renderedBefore: new Map(),
        };
        stack.env.GATEWAY_ADDRESS = context.gateway.address;
    });
    after(async () => {
        await context?.gateway.stop().catch(() => undefined);
        context?.stack.dispose();
    });

    it("marks only blocks this suite knows how to check, and checks every one it knows", () => {
        assert.deepEqual(
            blocks.map((b) => b.id),
            Object.keys(STEPS),
        );
    });

    for (const [index, block] of blocks.entries()) {
        it(`README block "${block.id}" (${block.file}:${block.line}) runs and does what the README says`, async () => {
            assert.equal(
                broken,
                undefined,
                `the block ${broken?.id ?? ""} (${broken?.file ?? ""}:${broken?.line ?? 0}) failed above; the blocks after it start where it should have left the stacks. Run this test alone to play the story up to it from a fresh project.`,
            );
            for (const earlier of blocks.slice(played, index)) await play(earlier, true);
            await play(block, false);
        });
    }
});

function show(block: ReadmeBlock): string {
    return block.script
        .split("\n")
        .map((line) => `  $ ${line}`)
        .join("\n");
}
