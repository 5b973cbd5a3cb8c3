// End to end with the real Pulumi engine (no cluster): the users' verbs — up, switch, preview,
// roll back, refuse a bad value — against a stack whose Kubernetes provider renders YAML to a
// directory. Istio and cert-manager installs are off (Helm releases cannot render, and no chart can
// be fetched here). Then the gate, against a local server that answers like the gateway would.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { EngineStack, changedFiles, expectRefusal, plannedChanges, requirePulumi, ROOT } from "../engine";

const LIVE_ROUTE = "cowsay-nginx";
const ROUTE_URN = /[:$]kubernetes:networking\.istio\.io\/v1:VirtualService::cowsay-route$/;
const GATE_URN = /[:$]pulumi-nodejs:dynamic\/cowsay-bluegreen:Gate::cowsay-gate$/;
const BASE_CONFIG = { installIstio: "false", installCertManager: "false", activeVersion: "v1" };

const liveSubsets = (stack: EngineStack): string[] =>
    stack.object("VirtualService", LIVE_ROUTE).object.spec.http[0].route.map((r: { destination: { subset: string } }) => r.destination.subset);
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
    return doc.slice(open + 4, close).split("\n").join(" ");
}

before(requirePulumi);

describe("up, switch, roll back, refuse (real engine, rendered YAML)", () => {
    let stack: EngineStack;

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    it("pulumi up with activeVersion=v1 renders both Deployments and a route to v1", async () => {
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        for (const version of ["v1", "v2"]) {
            const { object } = stack.object("Deployment", `cowsay-nginx-${version}`);
            assert.equal(object.spec.template.spec.containers[0].image, `dougbtv/nginx-cowsay:${version}`);
        }
        assert.ok(stack.rendered().size >= 10);
    });

    for (const [from, to] of [["v1", "v2"], ["v2", "v1"]]) {
        it(`switching ${from} -> ${to}: the preview plans one update, the live route, and up changes only its file`, async () => {
            const renderedBefore = stack.rendered();
            await stack.pulumi("config", "set", "cowsay-bluegreen:activeVersion", to);
            const { steps, result } = await stack.preview();
            assert.equal(result.code, 0, result.stderr);
            const planned = changes(steps);
            assert.deepEqual(planned.map((s) => s.op), ["update"], JSON.stringify(planned));
            assert.match(planned[0].urn, ROUTE_URN);
            await stack.up();
            assert.deepEqual(liveSubsets(stack), [to]);
            assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), [stack.object("VirtualService", LIVE_ROUTE).file]);
        });
    }

    it("activeVersion=v3 fails preview and up with the program's message; state and rendered files are unchanged", async () => {
        await stack.pulumi("config", "set", "cowsay-bluegreen:activeVersion", "v3");
        await expectRefusal(stack, 'error: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.');
        await stack.pulumi("config", "set", "cowsay-bluegreen:activeVersion", "v1");
    });

    it("passes the policy pack", async () => {
        const { result } = await stack.preview("--policy-pack", path.join(ROOT, "policy"));
        assert.equal(result.code, 0, result.stdout + result.stderr);
    });
});

describe("a first --path on a stack that runs the Pulumi.yaml default versions (real engine)", () => {
    let stack: EngineStack;

    before(async () => {
        // No versions of its own: the stack runs v1 and v2 of the Pulumi.yaml default, v1 live.
        stack = await EngineStack.create({ config: { installIstio: "false", installCertManager: "false" } });
        await stack.up();
    });
    after(() => stack?.dispose());

    it("is refused with the documented message (v1 takes live traffic, how to declare it again), not as an unknown activeVersion; nothing changes", async () => {
        const message = documentedRefusal();
        assert.match(message, /^Invalid config versions: v1 takes live traffic now, .* Nothing was changed\.$/);
        // The first command of "Adding and retiring a version" (docs/operations.md), typed on this stack.
        await stack.pulumi("config", "set", "--path", "versions.v3.image", "registry.example.com/cowsay:v3");
        await expectRefusal(stack, `error: ${message}`);
        // The commands the message gives declare v1 again; with v3's expect text the update goes through.
        for (const command of /\((pulumi config set .*)\), move/.exec(message)?.[1].split(" && ") ?? []) {
            const args = command.replace(/^pulumi /, "").match(/'[^']*'|\S+/g)?.map((a) => a.replace(/^'(.*)'$/, "$1")) ?? [];
            await stack.pulumi(...args);
        }
        await stack.pulumi("config", "set", "--path", "versions.v3.expect", "cowsay:v3");
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        assert.equal(stack.object("Deployment", "cowsay-nginx-v1").object.spec.template.spec.containers[0].image, "dougbtv/nginx-cowsay:v1");
        assert.equal(stack.object("Deployment", "cowsay-nginx-v3").object.spec.template.spec.containers[0].image, "registry.example.com/cowsay:v3");
    });
});

describe("the gate before a switch (real engine, local stand-in for the gateway)", () => {
    let stack: EngineStack;
    let server: Server;
    // What the stand-in answers per test-route header value.
    const pages: Record<string, string> = { v1: "<pre> ^__^ (oo)\\_______ </pre>", v2: "<pre> |O___O | </pre>" };

    before(async () => {
        server = createServer((req, res) => {
            const version = String(req.headers["x-cowsay-version"] ?? "v1");
            res.writeHead(200, { "content-type": "text/html" }).end(pages[version] ?? "");
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const gatewayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, gatewayUrl } });
        await stack.up();
    });
    after(() => {
        stack?.dispose();
        server?.close();
    });

    it("a switch to a version that answers with the wrong page fails up and leaves the route and state as they were", async () => {
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        pages.v2 = pages.v1; // v2 is broken: it serves the cow
        const routeState = async () => ((await stack.state()) as { urn: string }[]).find((r) => ROUTE_URN.test(r.urn));
        const routeBefore = await routeState();
        assert.ok(routeBefore !== undefined);
        const renderedBefore = stack.rendered();
        await stack.pulumi("config", "set", "cowsay-bluegreen:activeVersion", "v2");
        const { steps } = await stack.preview();
        assert.deepEqual(changes(steps).map((s) => s.op), ["update", "update"]);
        assert.ok(changes(steps).some((s) => GATE_URN.test(s.urn)) && changes(steps).some((s) => ROUTE_URN.test(s.urn)));
        const up = await stack.run("up", "--yes", "--skip-preview", "--non-interactive");
        assert.notEqual(up.code, 0);
        assert.match(up.stdout + up.stderr, /gate failed after \d+ s of 60 s: version v2 \(dougbtv\/nginx-cowsay:v2\)/);
        assert.deepEqual(liveSubsets(stack), ["v1"]);
        assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), []);
        assert.deepEqual(await routeState(), routeBefore, "the route's state is untouched");
    });

    it("once v2 answers with its own page, the same up switches the route", async () => {
        pages.v2 = "<pre> |O___O | </pre>";
        await stack.up();
        assert.deepEqual(liveSubsets(stack), ["v2"]);
    });
});
