// End to end with the real Pulumi engine (no cluster): the users' verbs — up, switch, preview,
// roll back, refuse a bad value — against a stack whose Kubernetes provider renders YAML to a
// directory. Istio and cert-manager installs are off (Helm releases cannot render, and no chart can
// be fetched here). Then the gate, against the stand-in gateway, which answers with the pages of the
// rendered versions. Each test brings the stack to the state it starts from (EngineStack.deploy), so
// any one of them runs alone.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { APP, configKey, NO_INSTALLS, ROOT, SHORT_GATE, URN, VERSIONS } from "../support/constants";
import { EngineStack, changedFiles, expectRefusal, plannedChanges, requirePulumi } from "../support/engine";
import { StandInGateway } from "../support/gateway";
import { renderedRoutes } from "../support/rendered-routes";

const BASE_CONFIG = { ...NO_INSTALLS, activeVersion: "v1" };

const liveSubsets = (stack: EngineStack): string[] =>
    stack.object("VirtualService", APP).object.spec.http[0].route.map((r: { destination: { subset: string } }) => r.destination.subset);
const changes = plannedChanges;

/**
 * The refusal docs/operations.md promises under "Adding and retiring a version" when a first `--path`
 * starts a new versions map that leaves out the live version: the fenced block after that paragraph,
 * as the one line the CLI prints.
 */
function documentedRefusal(): string {
    const doc = readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
    const paragraph = doc.indexOf("with the commands that declare");
    const open = doc.indexOf("```\n", paragraph);
    const close = doc.indexOf("\n```", open + 4);
    assert.ok(paragraph >= 0 && open > paragraph && close > open, "the refusal under 'Adding and retiring a version' in docs/operations.md");
    return doc
        .slice(open + 4, close)
        .split("\n")
        .join(" ");
}

before(requirePulumi);

describe("up, switch, roll back, refuse (real engine, rendered YAML)", () => {
    let stack: EngineStack;

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    it("pulumi up with activeVersion=v1 renders both Deployments and a route to v1", async () => {
        stack.configure();
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        for (const version of ["v1", "v2"]) {
            const { object } = stack.object("Deployment", `${APP}-${version}`);
            assert.equal(object.spec.template.spec.containers[0].image, VERSIONS[version].image);
        }
        assert.ok(stack.rendered().size >= 10);
    });

    for (const [from, to] of [
        ["v1", "v2"],
        ["v2", "v1"],
    ]) {
        it(`switching ${from} -> ${to}: the preview plans one update, the live route, and up changes only its file`, async () => {
            // v2 live after v1, so that the way back is a rollback.
            await stack.deploy(...(from === "v1" ? [{}] : [{}, { activeVersion: "v2" }]));
            const renderedBefore = stack.rendered();
            await stack.pulumi("config", "set", configKey("activeVersion"), to);
            const { steps, result } = await stack.preview();
            assert.equal(result.code, 0, result.stderr);
            const planned = changes(steps);
            assert.deepEqual(
                planned.map((s) => s.op),
                ["update"],
                JSON.stringify(planned),
            );
            assert.match(planned[0].urn, URN.istioRoute);
            await stack.up();
            assert.deepEqual(liveSubsets(stack), [to]);
            assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), [stack.object("VirtualService", APP).file]);
        });
    }

    it("activeVersion=v3 fails preview and up with the program's message; state and rendered files are unchanged", async () => {
        await stack.deploy();
        await stack.pulumi("config", "set", configKey("activeVersion"), "v3");
        await expectRefusal(stack, 'error: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.');
    });

    it("passes the policy pack", async () => {
        stack.configure();
        const { result } = await stack.preview("--policy-pack", path.join(ROOT, "policy"));
        assert.equal(result.code, 0, result.stdout + result.stderr);
    });
});

describe("a first --path on a stack that runs the Pulumi.yaml default versions (real engine)", () => {
    let stack: EngineStack;

    before(async () => {
        // No versions of its own: the stack runs v1 and v2 of the Pulumi.yaml default, v1 live.
        stack = await EngineStack.create({ config: { ...NO_INSTALLS } });
    });
    after(() => stack?.dispose());

    it("is refused with the documented message (v1 takes live traffic, how to declare it again), not as an unknown activeVersion; nothing changes", async () => {
        await stack.deploy();
        const message = documentedRefusal();
        assert.match(message, /^Invalid config versions: v1 takes live traffic now, .* Nothing was changed\.$/);
        // The first command of "Adding and retiring a version" (docs/operations.md), typed on this stack.
        await stack.pulumi("config", "set", "--path", "versions.v3.image", "registry.example.com/cowsay:v3");
        await expectRefusal(stack, `error: ${message}`);
        // The commands the message gives declare v1 again; with v3's expect text the update goes through.
        for (const command of /\((pulumi config set .*)\), move/.exec(message)?.[1].split(" && ") ?? []) {
            const args =
                command
                    .replace(/^pulumi /, "")
                    .match(/'[^']*'|\S+/g)
                    ?.map((a) => a.replace(/^'(.*)'$/, "$1")) ?? [];
            await stack.pulumi(...args);
        }
        await stack.pulumi("config", "set", "--path", "versions.v3.expect", "cowsay:v3");
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        assert.equal(stack.object("Deployment", `${APP}-v1`).object.spec.template.spec.containers[0].image, VERSIONS.v1.image);
        assert.equal(stack.object("Deployment", `${APP}-v3`).object.spec.template.spec.containers[0].image, "registry.example.com/cowsay:v3");
    });
});

describe("the gate before a switch (real engine, stand-in gateway)", () => {
    /** Where a switch to a broken v2 leaves the stack: v1 live, activeVersion v2 in config. */
    const FAILED_SWITCH = "a switch to a broken v2 failed";
    let stack: EngineStack;
    let gateway: StandInGateway;

    before(async () => {
        // The stand-in answers with the pages of what the stack rendered, at every request.
        gateway = await StandInGateway.start(renderedRoutes(() => Promise.resolve(stack?.objects() ?? [])));
        // The shortest gate: the broken release below is refused after 5 s instead of the default 60.
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, gatewayUrl: `https://${gateway.address}`, smokeCheckTimeout: SHORT_GATE } });
    });
    after(async () => {
        stack?.dispose();
        await gateway?.stop();
    });

    it("a switch to a version that answers with the wrong page fails up and leaves the route and state as they were", async () => {
        await gateway.reset();
        await stack.deploy();
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        gateway.serveWrongPage(VERSIONS.v2.image); // v2 is broken
        const routeState = async () => ((await stack.state()) as { urn: string }[]).find((r) => URN.istioRoute.test(r.urn));
        const routeBefore = await routeState();
        assert.ok(routeBefore !== undefined);
        const renderedBefore = stack.rendered();
        await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
        const { steps } = await stack.preview();
        assert.deepEqual(
            changes(steps).map((s) => s.op),
            ["update", "update"],
        );
        assert.ok(changes(steps).some((s) => URN.gate.test(s.urn)) && changes(steps).some((s) => URN.istioRoute.test(s.urn)));
        const up = await stack.run("up", "--yes", "--skip-preview", "--non-interactive");
        assert.notEqual(up.code, 0);
        assert.match(up.stdout + up.stderr, new RegExp(`gate failed after \\d+ s of ${SHORT_GATE} s: version v2 \\(dougbtv/nginx-cowsay:v2\\)`));
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), []);
        assert.deepEqual(await routeState(), routeBefore, "the route's state is untouched");
        stack.remember(FAILED_SWITCH);
    });

    it("once v2 answers with its own page, the same up switches the route", async () => {
        await stack.reach(FAILED_SWITCH, async () => {
            await gateway.reset();
            await stack.deploy();
            gateway.serveWrongPage(VERSIONS.v2.image);
            await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
            await stack.upFails();
        });
        await gateway.reset();
        const from = gateway.requests.length;
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v2"]);
        assert.equal(
            gateway.requests.slice(from).filter((r) => r.header === "v2" && r.routedTo === "v2" && r.status === 200).length,
            1,
            "the gate fetched v2 once",
        );
    });
});
