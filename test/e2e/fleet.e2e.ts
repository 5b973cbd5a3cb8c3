// The fleet end to end: `npm run fleet` against three local control planes, each with istiod (one
// stack per cluster, each reaching its cluster only through its own kubernetes:kubeconfig config, each
// with its own stand-in gateway routing by its istiod's push), on the real engine. docs/fleet.md's
// blocks run as written; then the bad days: a gate failing in the second wave, halt, a fleet SIGKILLed
// mid-wave, Ctrl-C, an interrupted preview, a bad fleet file. Every test starts from every stack on v1
// (FleetOfClusters.reset) and asserts on where each cluster's istiod sends the gateway's traffic
// afterwards (FleetOfClusters.expectPushed: a bounded wait on its push), and on what each API server,
// each stack file and each stack's state says.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { ROOT, plannedChanges, replicasByVersion, requirePulumi, type PreviewStep } from "../support/engine";
import { configKey } from "../support/constants";
import { FleetOfClusters } from "../fleet/harness";
import { descendants, waitUntilGone, type RunningCommand } from "../support/processes";
import { readmeBlocks, runBlock } from "../support/readme";

const DOC = path.join(ROOT, "docs", "fleet.md");
const STACKS = ["staging", "eu", "us"] as const;
/**
 * Two waves, bake 0: one round of checks after each wave (the docs bake 60 s, a round every 10 s; the
 * checks of a round are the same, and the second wave's round checks the canary again).
 */
const fleetFile = (onFailure: "rollback" | "halt", parallel: number) =>
    `waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu, us]\n    parallel: ${parallel}\nbake: 0\nonFailure: ${onFailure}\n`;
const BROKEN_V2 = "<pre>500 oops</pre>";

/** Resolves once `condition` holds (checked every 100 ms); rejects if `run` ends first, or after `ms`. */
async function until(condition: () => boolean, run: RunningCommand, ms: number, what: string): Promise<void> {
    for (const deadline = Date.now() + ms; !condition(); await new Promise((r) => setTimeout(r, 100))) {
        if (run.ended()) throw new Error(`the fleet ended before ${what}:\n${run.output()}`);
        if (Date.now() > deadline) throw new Error(`no sign of ${what} within ${ms / 1000} s:\n${run.output()}`);
    }
}

interface HistoryEntry {
    readonly message: string;
    readonly result: string;
    readonly startTime: string;
    readonly endTime: string;
}

before(requirePulumi);

describe("a fleet of three clusters (real engine, three API servers with istiod, a stand-in gateway each)", () => {
    let fleet: FleetOfClusters;
    const stackFiles = () => Object.fromEntries(STACKS.map((s) => [s, fleet.stackFile(s)]));
    const history = async (stack: string): Promise<HistoryEntry[]> =>
        JSON.parse((await fleet.pulumi(stack, "stack", "history", "--json")).stdout) as HistoryEntry[];
    const block = async (id: string) => {
        const found = readmeBlocks(DOC).find((b) => b.id === id);
        assert.ok(found !== undefined, `docs/fleet.md has the block ${id}`);
        return runBlock(found, fleet.dir, fleet.project.env);
    };
    const setSmokeCheckTimeout = (stack: string, seconds: string) => fleet.pulumi(stack, "config", "set", configKey("smokeCheckTimeout"), seconds);
    const endMidWave = async () => {
        fleet.member("eu").gateway.mode = "serving";
        await setSmokeCheckTimeout("eu", "5");
    };
    /**
     * A switch caught mid-wave: the canary and us switched, eu's update in flight (its gateway never
     * answers, so its gate waits up to 60 s). The caller ends it, then calls endMidWave().
     */
    const midWave = async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), fleetFile("rollback", 2));
        await setSmokeCheckTimeout("eu", "60");
        const euGateway = fleet.member("eu").gateway;
        euGateway.mode = "silent";
        let run: RunningCommand | undefined;
        try {
            run = await fleet.startFleet(/^\[us +\] switched$/m, "switch", "v2");
            // And eu waits in its gate: its first request reached eu's gateway, which never answers
            // (the gate's own line about that try comes only when the try's 5 s bound ends it).
            await until(() => euGateway.unanswered > 0, run, 60_000, "eu's gate asking its gateway");
            return run;
        } catch (err) {
            await run?.stop("SIGKILL");
            await endMidWave();
            throw err;
        }
    };

    before(async () => {
        fleet = await FleetOfClusters.create(STACKS);
    });
    after(async () => {
        await fleet?.dispose();
    });

    it("a gate failing in the second wave rolls the first wave back and never touches the rest (exit 1)", async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), fleetFile("rollback", 1));
        fleet.member("eu").gateway.overrides.set("dougbtv/nginx-cowsay:v2", BROKEN_V2);
        const usFile = fleet.stackFile("us");
        const usHistory = (await history("us")).length;
        const usPushed = await fleet.member("us").istio.gatewayTable();
        const usRoute = (await fleet.objects("us"))
            .map((o) => `${o.kind}/${o.metadata.name}@${(o.metadata as { resourceVersion?: string }).resourceVersion}`)
            .sort();

        const result = await fleet.fleet("switch", "v2");
        assert.equal(result.code, 1, result.stdout + result.stderr);
        assert.match(
            result.stderr,
            /^\[eu +\] error: gate failed after \d+ s of 5 s: version v2 \(dougbtv\/nginx-cowsay:v2\) at https:\/\/127\.0\.0\.1:\d+ with x-cowsay-version: v2 answered 200 with a page that does not contain "O___O"/m,
        );
        assert.match(result.stderr, /^fleet: eu failed during its switch: gate failed after/m);
        assert.equal(
            result.stdout,
            ["staging  canary      runs v1; rolled back", "eu       production  runs v1; rolled back", "us       production  runs v1; not touched", ""].join(
                "\n",
            ),
        );
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 }, us: { v1: 100 } });
        assert.match(fleet.stackFile("staging"), /cowsay-bluegreen:activeVersion: v1$/m);
        assert.match(fleet.stackFile("eu"), /cowsay-bluegreen:activeVersion: v1$/m);
        // us: not its file, not its state, not one object on its server.
        assert.equal(fleet.stackFile("us"), usFile);
        assert.equal((await history("us")).length, usHistory);
        assert.deepEqual(
            (await fleet.objects("us")).map((o) => `${o.kind}/${o.metadata.name}@${(o.metadata as { resourceVersion?: string }).resourceVersion}`).sort(),
            usRoute,
        );
        assert.deepEqual(await fleet.member("us").istio.gatewayTable(), usPushed, "us: the route its istiod pushes is the one before");
    });

    it("halt: a failure leaves every stack where it is (exit 3); status --json agrees with each stack's outputs and the route its istiod pushes", async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), fleetFile("halt", 1));
        fleet.member("eu").gateway.overrides.set("dougbtv/nginx-cowsay:v2", BROKEN_V2);
        const usFile = fleet.stackFile("us");

        const result = await fleet.fleet("switch", "v2");
        assert.equal(result.code, 3, result.stdout + result.stderr);
        assert.equal(
            result.stdout,
            [
                "staging  canary      runs v2; switched",
                "eu       production  runs v1; its switch failed; it still runs what it ran before; its config says so again",
                "us       production  runs v1; not touched",
                "",
            ].join("\n"),
        );
        await fleet.expectPushed({ staging: { v2: 100 }, eu: { v1: 100 }, us: { v1: 100 } });
        assert.match(fleet.stackFile("staging"), /cowsay-bluegreen:activeVersion: v2$/m);
        assert.match(fleet.stackFile("eu"), /cowsay-bluegreen:activeVersion: v1$/m);
        assert.equal(fleet.stackFile("us"), usFile);

        const status = await fleet.fleet("status", "--json");
        assert.equal(status.code, 0, status.stderr);
        const json = JSON.parse(status.stdout) as {
            stacks: {
                stack: string;
                wave: string;
                activeVersion: string;
                trafficSplit: Record<string, number>;
                lastUpdate: { result: string };
                locked: boolean;
            }[];
            lastSwitch: { target: string; state: string };
        };
        for (const row of json.stacks) {
            const outputs = await fleet.outputs(row.stack);
            assert.deepEqual([row.activeVersion, row.trafficSplit], [outputs.activeVersion, outputs.trafficSplit], `${row.stack}: the stack's outputs`);
            await fleet.expectPushed({ [row.stack]: row.trafficSplit });
            assert.equal(row.locked, false);
        }
        assert.deepEqual(
            json.stacks.map((r) => [r.stack, r.wave, r.lastUpdate.result]),
            [
                ["staging", "canary", "succeeded"],
                ["eu", "production", "failed"],
                ["us", "production", "succeeded"],
            ],
        );
        assert.deepEqual(json.lastSwitch.state, "halted");

        const again = await fleet.fleet("switch", "v2");
        assert.equal(again.code, 4);
        assert.match(again.stderr, /^error: the last fleet switch \(to v2, started \S+\) ended halted: run npm run fleet -- rollback first\n$/);
    });

    it("a fleet SIGKILLed mid-wave: docs/fleet.md's recovery removes the lock it left and converges, with nothing lost", async () => {
        const run = await midWave();
        try {
            // What a closed laptop or a CI runner's timeout does: the whole process group, at once.
            process.kill(-run.pid, "SIGKILL");
            assert.equal(await run.exited, 128 + 9, "killed");
            fleet.member("eu").gateway.mode = "serving";
            assert.ok(fleet.project.locks().length > 0, "the killed update left its lock");
            await fleet.expectPushed({ staging: { v2: 100 }, eu: { v1: 100 }, us: { v2: 100 } });

            const recover = await block("fleet-recover");
            assert.equal(recover.code, 0, recover.output);
            assert.match(recover.output, /^eu +production +v1 +\S.* +LOCKED \(pulumi cancel, once nothing runs\)$/m, "status shows the lock");
            assert.match(recover.output, /^\[eu +\] removed the lock left by pid \d+, which no longer runs \(pulumi cancel\)$/m);
            await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 }, us: { v1: 100 } });
            assert.deepEqual(fleet.project.locks(), []);
            for (const stack of STACKS) {
                assert.deepEqual(replicasByVersion(await fleet.objects(stack)), { v1: 2, v2: 2 }, `${stack}: both versions keep their pods`);
                assert.match(fleet.stackFile(stack), /cowsay-bluegreen:activeVersion: v1$/m);
            }
            // Converged: nothing left for a pulumi up to do on the stack whose update was killed (the
            // others were rolled back by ordinary updates, checked above on their API servers).
            const preview = await fleet.pulumi("eu", "preview", "--json", "--diff");
            assert.deepEqual(plannedChanges((JSON.parse(preview.stdout) as { steps: PreviewStep[] }).steps), [], "eu converged");
        } finally {
            await endMidWave();
        }
    });

    it("Ctrl-C mid-wave: no stack starts, eu's update is cancelled through the engine, each stack is left on v1 or v2, unlocked (exit 130)", async () => {
        const run = await midWave();
        try {
            const started = descendants(run.pid);
            // What a terminal's Ctrl-C sends: SIGINT to the foreground group, the pulumi processes included.
            process.kill(-run.pid, "SIGINT");
            // Bounded, and the timer cleared: a pending one would keep the test process alive a minute.
            let timer: NodeJS.Timeout | undefined;
            const code = await Promise.race([run.exited, new Promise<string>((r) => (timer = setTimeout(() => r("still running"), 60_000)))]).finally(() =>
                clearTimeout(timer),
            );
            assert.equal(code, 130, run.output());
            assert.match(run.output(), /^\[eu +\] cancelled: /m);
            assert.match(run.output(), /^staging +canary +runs v2; switched$/m);
            assert.match(run.output(), /^eu +production +runs v1; cancelled in flight; it still runs what it ran before; its config says so again$/m);
            assert.match(run.output(), /^us +production +runs v2; switched$/m);
            await fleet.expectPushed({ staging: { v2: 100 }, eu: { v1: 100 }, us: { v2: 100 } });
            assert.deepEqual(fleet.project.locks(), [], "no stack is locked");
            assert.match(fleet.stackFile("eu"), /cowsay-bluegreen:activeVersion: v1$/m);
            await waitUntilGone(started, 30_000);
            const again = await fleet.fleet("switch", "v2");
            assert.match(again.stderr, /ended interrupted: run npm run fleet -- rollback first/);
        } finally {
            await endMidWave();
        }
    });

    it("a preview interrupted by Ctrl-C leaves every stack file byte for byte, and no copy behind", async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), fleetFile("rollback", 2));
        const files = stackFiles();
        // The previews' copies go to a TMPDIR of this test's own: the machine's is shared with other
        // suites running beside this one, whose copies come and go.
        const ownTmp = mkdtempSync(path.join(tmpdir(), "fleet-e2e-tmp-"));
        const copies = () => readdirSync(ownTmp).filter((n) => n.startsWith("fleet-preview-"));
        const previewing = STACKS.map((s) => `(?=[\\s\\S]*^\\[${s} *\\] previewing a switch to v2$)`).join("");
        const run = await fleet.startFleetWith({ TMPDIR: ownTmp }, new RegExp(`^${previewing}`, "m"), "preview", "v2");
        // Into the previews' program runs: each preview's language host has started.
        await until(
            () => descendants(run.pid).filter((p) => p.command.includes("pulumi-language-nodejs")).length >= STACKS.length,
            run,
            60_000,
            "three previews running their program",
        );
        const started = descendants(run.pid);
        // The copies are there while the previews run, so that their absence below means removed.
        assert.equal(copies().length, STACKS.length, `one copy per stack while previewing: ${copies().join(", ")}`);
        process.kill(-run.pid, "SIGINT");
        assert.equal(await run.exited, 130, run.output());
        await waitUntilGone(started, 30_000);
        assert.match(run.output(), /fleet: preview interrupted; no stack file was written/);
        assert.doesNotMatch(run.output(), /## Fleet preview/, "no report for an interrupted preview");
        assert.deepEqual(stackFiles(), files);
        assert.deepEqual(copies(), []);
        rmSync(ownTmp, { recursive: true, force: true });
    });

    it("a bad fleet file is refused in one line, before any stack is touched (exit 4)", async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), "waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu, mars]\n");
        const files = stackFiles();
        const result = await fleet.fleet("switch", "v2");
        assert.equal(result.code, 4);
        assert.equal(result.stderr, 'error: fleet.yaml: waves[1].stacks[1] is "mars", not a stack of this project; allowed: eu, staging, us\n');
        assert.deepEqual(stackFiles(), files);
        assert.equal(existsSync(path.join(fleet.dir, ".fleet")), false, "no switch was recorded");
    });

    // Last: it ends on the 10% canary, and from there no cheap update returns a stack to a gate that
    // fetches v2 again (FleetOfClusters.reset says so); every test above leaves its stacks clean.
    it("docs/fleet.md, as written: status, preview, a 10% canary, the switch wave by wave, the rollback", async () => {
        await fleet.reset();
        writeFileSync(path.join(fleet.dir, "fleet.yaml"), fleetFile("rollback", 2));
        assert.deepEqual(
            readmeBlocks(DOC)
                .map((b) => b.id)
                .filter((id) => !id.startsWith("fleet-rollout")),
            ["fleet-status", "fleet-preview", "fleet-canary", "fleet-switch", "fleet-rollback", "fleet-recover"],
            "every block of the doc is run by this suite (fleet-recover by the SIGKILL test), the rollout's by test/e2e/rollout.e2e.ts",
        );

        const selected = (await fleet.project.pulumi("stack", "--show-name")).stdout;
        const status = await block("fleet-status");
        assert.equal(status.code, 0, status.output);
        // Each stack's last update, from its history (the status changes none).
        const lastUpdates = Object.fromEntries(await Promise.all(STACKS.map(async (s) => [s, (await history(s))[0]] as const)));
        for (const [stack, wave] of [
            ["staging", "canary"],
            ["eu", "production"],
            ["us", "production"],
        ]) {
            const last = lastUpdates[stack];
            assert.match(status.output, new RegExp(`^${stack} +${wave} +v1 +update ${last.result} \\S+ +no$`, "m"));
        }
        const json = JSON.parse(readFileSync(path.join(fleet.dir, "fleet-status.json"), "utf8")) as {
            stacks: { stack: string; trafficSplit: unknown; locked: boolean; lastUpdate: { result: string; endedAt: string } }[];
        };
        assert.deepEqual(
            json.stacks.map((s) => [s.stack, s.trafficSplit, s.locked]),
            STACKS.map((s) => [s, { v1: 100 }, false]),
        );
        for (const row of json.stacks) {
            const last = lastUpdates[row.stack];
            assert.deepEqual(
                [row.lastUpdate.result, Date.parse(row.lastUpdate.endedAt)],
                [last.result, Date.parse(last.endTime)],
                `${row.stack}: its last update, from its history`,
            );
        }

        const files = stackFiles();
        const preview = await block("fleet-preview");
        assert.equal(preview.code, 0, preview.output);
        assert.deepEqual(stackFiles(), files, "the preview wrote no stack file");
        const report = readFileSync(path.join(fleet.dir, "fleet-preview.md"), "utf8");
        assert.equal(report.split("\n")[0], "## Fleet preview: switch to v2");
        for (const [stack, wave] of [
            ["staging", "canary"],
            ["eu", "production"],
            ["us", "production"],
        ]) {
            assert.ok(report.includes(`| ${wave} | ${stack} | v1 | v2 | 2 to update |`), report);
        }
        assert.match(report, /~ subset: "v1" => "v2"/);
        await fleet.expectPushed({ staging: { v1: 100 }, eu: { v1: 100 }, us: { v1: 100 } }); // nothing switched

        const canary = await block("fleet-canary");
        assert.equal(canary.code, 0, canary.output);
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 90, v2: 10 }, us: { v1: 90, v2: 10 } });
        // Each stack's gate fetched v2 through its own gateway, and said so under its own name.
        for (const stack of STACKS) assert.match(canary.output, new RegExp(`^\\[${stack} *\\] gate: v2 answered with its own page`, "m"));

        const switched = await block("fleet-switch");
        assert.equal(switched.code, 0, switched.output);
        await fleet.expectPushed({ staging: { v2: 100 }, eu: { v2: 100 }, us: { v2: 100 } });
        assert.match(switched.output, /^staging +canary +runs v2; switched$/m);
        // The waves, from each stack's own history: the canary's update ended before the production
        // wave's began, and the production wave's two ran at the same time (parallel: 2).
        const [staging, eu, us] = await Promise.all(STACKS.map(async (s) => (await history(s))[0]));
        for (const entry of [staging, eu, us]) assert.match(entry.message, /^fleet switch \S+: v2$/);
        assert.ok(staging.endTime <= eu.startTime && staging.endTime <= us.startTime, JSON.stringify({ staging, eu, us }));
        assert.ok(eu.startTime <= us.endTime && us.startTime <= eu.endTime, `eu and us overlap: ${JSON.stringify({ eu, us })}`);

        const rollback = await block("fleet-rollback");
        assert.equal(rollback.code, 0, rollback.output);
        // Back to the canary, what ran before the last switch.
        await fleet.expectPushed({ staging: { v1: 90, v2: 10 }, eu: { v1: 90, v2: 10 }, us: { v1: 90, v2: 10 } });
        for (const stack of STACKS) assert.match(fleet.stackFile(stack), /cowsay-bluegreen:trafficSplit: '\{"v1":90,"v2":10\}'/);
        for (const stack of STACKS) assert.doesNotMatch(rollback.output, new RegExp(`^\\[${stack} *\\] gate: v1`, "m"), "the rollback is ungated");
        assert.equal((await fleet.project.pulumi("stack", "--show-name")).stdout, selected, "the fleet left the user's current stack alone");
    });
});
