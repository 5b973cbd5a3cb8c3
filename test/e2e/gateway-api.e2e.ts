// End to end with the real Pulumi engine (no cluster), routingApi gateway-api: the users' verbs (up,
// switch, preview, roll back, refuse a bad value) against a stack whose Kubernetes provider renders
// YAML to a directory, Istio and cert-manager installs off. Then the gate and plain requests through
// the stand-in gateway, which routes with the rendered HTTPRoutes; and the CRD install from a local
// file, which stays in the cluster when the stack stops installing it. Each test brings its stack to
// the state it starts from (EngineStack.deploy), so any one of them runs alone.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { configKey, COW, HOTDOG, NO_INSTALLS, ROOT, SHORT_GATE, URN, VERSIONS } from "../support/constants";
import { EngineStack, changedFiles, expectRefusal, plannedChanges, requirePulumi } from "../support/engine";
import { fetchPage, StandInGateway } from "../support/gateway";
import { renderedRoutes } from "../support/rendered-routes";

const ROUTE_URN = URN.httpRoute;
const MESH_URN = URN.meshRoute;
const GATE_URN = URN.gate;
const BASE_CONFIG = { ...NO_INSTALLS, routingApi: "gateway-api", activeVersion: "v1" };
/** Whether a page shows `marker` (COW or HOTDOG); fails with the page otherwise. */
const assertShows = (page: { body: string }, marker: string, message?: string) => assert.ok(page.body.includes(marker), `${message ?? ""}\n${page.body}`);

type Route = { spec: { rules: { backendRefs: { name: string; weight?: number }[] }[] } };
const backendsOf = (stack: EngineStack, name: string): string[] =>
    (stack.object("HTTPRoute", name).object as Route).spec.rules[0].backendRefs.map((b) => b.name);
const changes = plannedChanges;
const routeFiles = (stack: EngineStack) => [stack.object("HTTPRoute", "cowsay-nginx").file, stack.object("HTTPRoute", "cowsay-nginx-mesh").file].sort();

before(requirePulumi);

describe("gateway-api: up, switch, roll back, refuse (real engine, rendered YAML)", () => {
    let stack: EngineStack;

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    it("pulumi up with activeVersion=v1 renders the Gateway, a Service per version and routes to v1", async () => {
        stack.configure();
        await stack.up();
        assert.deepEqual(backendsOf(stack, "cowsay-nginx"), ["cowsay-nginx-v1"]);
        assert.deepEqual(backendsOf(stack, "cowsay-nginx-mesh"), ["cowsay-nginx-v1"]);
        assert.equal(stack.object("Gateway", "cowsay-nginx-gateway").object.spec.gatewayClassName, "istio");
        for (const version of ["v1", "v2"]) {
            assert.deepEqual(stack.object("Service", `cowsay-nginx-${version}`).object.spec.selector, { service: "cowsay-nginx", version });
            assert.equal(stack.object("Deployment", `cowsay-nginx-${version}`).object.spec.template.spec.containers[0].image, VERSIONS[version].image);
        }
        assert.deepEqual(
            stack.objects().filter((o) => o.kind === "VirtualService"),
            [],
        );
    });

    for (const [from, to] of [
        ["v1", "v2"],
        ["v2", "v1"],
    ]) {
        it(`switching ${from} -> ${to}: the preview plans two updates, the live and mesh routes, and up changes only their files`, async () => {
            // v2 live after v1, so that the way back is a rollback.
            await stack.deploy(...(from === "v1" ? [{}] : [{}, { activeVersion: "v2" }]));
            const renderedBefore = stack.rendered();
            await stack.pulumi("config", "set", configKey("activeVersion"), to);
            const { steps, result } = await stack.preview();
            assert.equal(result.code, 0, result.stderr);
            const planned = changes(steps);
            assert.deepEqual(
                planned.map((s) => s.op),
                ["update", "update"],
                JSON.stringify(planned),
            );
            assert.ok(planned.some((s) => ROUTE_URN.test(s.urn)) && planned.some((s) => MESH_URN.test(s.urn)), JSON.stringify(planned));
            await stack.up();
            assert.deepEqual(backendsOf(stack, "cowsay-nginx"), [`cowsay-nginx-${to}`]);
            assert.deepEqual(backendsOf(stack, "cowsay-nginx-mesh"), [`cowsay-nginx-${to}`]);
            assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), routeFiles(stack));
        });
    }

    it("a 90/10 split changes the same two files, nothing else", async () => {
        await stack.deploy();
        const renderedBefore = stack.rendered();
        await stack.pulumi("config", "set", configKey("trafficSplit"), '{"v1":90,"v2":10}');
        await stack.up();
        const weights = (stack.object("HTTPRoute", "cowsay-nginx").object as Route).spec.rules[0].backendRefs.map((b) => [b.name, b.weight]);
        assert.deepEqual(weights, [
            ["cowsay-nginx-v1", 90],
            ["cowsay-nginx-v2", 10],
        ]);
        assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), routeFiles(stack));
    });

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

describe("gateway-api: the gate and requests through the stand-in gateway (real engine)", () => {
    let stack: EngineStack;
    let gateway: StandInGateway;

    /** Where a switch to a broken v2 leaves the stack: v1 live, activeVersion v2 in config. */
    const FAILED_SWITCH = "a switch to a broken v2 failed";
    /** Each test's start: v1 live, the gateway serving every version's own page. */
    const v1Live = async () => {
        await gateway.reset();
        await stack.deploy();
    };

    before(async () => {
        // The stand-in reads what the stack rendered, at every request.
        gateway = await StandInGateway.start(renderedRoutes(() => Promise.resolve(stack?.objects() ?? [])));
        // The shortest gate: the broken release below is refused after 5 s instead of the default 60.
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, gatewayUrl: `https://${gateway.address}`, smokeCheckTimeout: SHORT_GATE } });
    });
    after(async () => {
        stack?.dispose();
        await gateway?.stop();
    });

    it("serves the live version without the header and any version with it, through the rendered HTTPRoutes", async () => {
        await v1Live();
        assertShows(await fetchPage(gateway), COW);
        assertShows(await fetchPage(gateway, "v2"), HOTDOG, "the idle v2 through its test route");
        assertShows(await fetchPage(gateway, "v1"), COW);
    });

    it("a switch to a v2 that serves the wrong page fails up and leaves both routes and the state as they were", async () => {
        await v1Live();
        gateway.serveWrongPage(VERSIONS.v2.image);
        const stateBefore = await stack.state();
        const renderedBefore = stack.rendered();
        await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
        const { steps } = await stack.preview();
        const planned = changes(steps);
        assert.deepEqual(
            planned.map((s) => s.op),
            ["update", "update", "update"],
        );
        assert.ok(
            [GATE_URN, ROUTE_URN, MESH_URN].every((urn) => planned.some((s) => urn.test(s.urn))),
            JSON.stringify(planned),
        );
        const up = await stack.run("up", "--yes", "--skip-preview", "--non-interactive");
        assert.notEqual(up.code, 0);
        assert.match(up.stdout + up.stderr, /gate failed.*version v2 \(dougbtv\/nginx-cowsay:v2\)/);
        assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), []);
        assert.deepEqual(backendsOf(stack, "cowsay-nginx"), ["cowsay-nginx-v1"]);
        const routes = (state: unknown) => (state as { urn: string }[]).filter((r) => ROUTE_URN.test(r.urn) || MESH_URN.test(r.urn));
        assert.deepEqual(routes(await stack.state()), routes(stateBefore));
        assertShows(await fetchPage(gateway), COW, "traffic stays on v1");
        stack.remember(FAILED_SWITCH);
    });

    it("once v2 serves its own page, the same up switches both routes, and plain requests get the hotdog", async () => {
        await stack.reach(FAILED_SWITCH, async () => {
            await v1Live();
            gateway.serveWrongPage(VERSIONS.v2.image);
            await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
            await stack.upFails();
        });
        await gateway.reset();
        await stack.up();
        assert.deepEqual(backendsOf(stack, "cowsay-nginx"), ["cowsay-nginx-v2"]);
        assert.deepEqual(backendsOf(stack, "cowsay-nginx-mesh"), ["cowsay-nginx-v2"]);
        assertShows(await fetchPage(gateway), HOTDOG);
        assertShows(await fetchPage(gateway, "v1"), COW, "v1 stays reachable for the rollback check");
    });
});

// A stand-in for standard-install.yaml: one CRD of the real group, enough to see the install work.
const CRD_MANIFEST = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: httproutes.gateway.networking.k8s.io
spec:
  group: gateway.networking.k8s.io
  names: { kind: HTTPRoute, listKind: HTTPRouteList, plural: httproutes, singular: httproute }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true }
`;

describe("gateway-api: the CRD install from a local file (real engine)", () => {
    let stack: EngineStack;
    let dir: string;

    before(async () => {
        dir = mkdtempSync(path.join(tmpdir(), "cowsay-crds-"));
        writeFileSync(path.join(dir, "standard-install.yaml"), CRD_MANIFEST);
        stack = await EngineStack.create({
            config: { ...BASE_CONFIG, smokeCheck: "false", gatewayApiCrds: path.join(dir, "standard-install.yaml") },
        });
    });
    after(() => {
        stack?.dispose();
        rmSync(dir, { recursive: true, force: true });
    });

    it("renders the CRDs before the objects that need them", async () => {
        stack.configure();
        await stack.up();
        const crd = stack.object("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io");
        assert.match(crd.file, /^0-crd\//);
        assert.match(stack.object("HTTPRoute", "cowsay-nginx").file, /^1-manifest\//);
    });

    it("leaves the CRDs in place when the stack stops installing them (gatewayApiCrds none)", async () => {
        await stack.deploy();
        const crdFile = stack.object("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io").file;
        await stack.pulumi("config", "set", configKey("gatewayApiCrds"), "none");
        const { steps } = await stack.preview();
        assert.ok(
            changes(steps).some((s) => s.op === "delete" && /CustomResourceDefinition/.test(s.urn)),
            JSON.stringify(changes(steps)),
        );
        await stack.up();
        assert.equal(stack.object("CustomResourceDefinition", "httproutes.gateway.networking.k8s.io").file, crdFile, "retained, not deleted");
        const state = (await stack.state()) as { urn: string }[];
        assert.deepEqual(
            state.filter((r) => /CustomResourceDefinition/.test(r.urn)),
            [],
            "and no longer managed by the stack",
        );
    });
});

/** Brings a stack up on the Istio APIs, then sets its config to `routingApi gateway-api` (not yet applied). */
async function upThenSetGatewayApi(stack: EngineStack): Promise<void> {
    await stack.deploy();
    await stack.pulumi("config", "set", configKey("routingApi"), "gateway-api");
}

describe("changing routingApi from istio to gateway-api (real engine)", () => {
    const ISTIO_OBJECTS = /kubernetes:networking\.istio\.io\/v1:(VirtualService|DestinationRule|Gateway)::/;
    const ROUTING_COMPONENT = /[:$]cowsay-bluegreen:routing:[A-Za-z]+::/;
    let stack: EngineStack;

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, routingApi: "istio", smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    it("one up creates every Gateway API object first and deletes the Istio ones last, the Istio Gateway after its routes", async () => {
        await upThenSetGatewayApi(stack);
        const { steps } = await stack.preview();
        // The routing component of each API comes and goes with its objects.
        const components = changes(steps).filter((s) => ROUTING_COMPONENT.test(s.urn));
        assert.deepEqual(components.map((s) => `${s.op} ${s.urn.split("::")[2].split("$").pop()}`).sort(), [
            "create cowsay-bluegreen:routing:GatewayApiRouting",
            "delete cowsay-bluegreen:routing:IstioRouting",
        ]);
        const planned = changes(steps).filter((s) => !ROUTING_COMPONENT.test(s.urn));
        assert.deepEqual(
            planned
                .filter((s) => s.op === "delete")
                .map((s) => s.urn.split("::").pop())
                .sort(),
            ["cowsay-gateway", "cowsay-route", "cowsay-subsets", "cowsay-test-route"],
        );
        assert.ok(planned.filter((s) => s.op === "delete").every((s) => ISTIO_OBJECTS.test(s.urn)));
        assert.equal(planned.filter((s) => s.op === "create").length, 7, "2 Services, the Gateway, 4 HTTPRoutes");
        assert.deepEqual(
            planned.filter((s) => s.op !== "create" && s.op !== "delete"),
            [],
            "nothing else changes",
        );
        // The order the engine runs them in (one at a time, so the event log is the order).
        const up = await stack.pulumi("up", "--yes", "--skip-preview", "--non-interactive", "--parallel", "1");
        const events = up.stdout.split("\n").filter((l) => / (created|deleted) \(/.test(l));
        const lastCreate = Math.max(...events.map((l, i) => (/ created /.test(l) ? i : -1)));
        const firstDelete = events.findIndex((l) => / deleted /.test(l));
        assert.ok(lastCreate < firstDelete, events.join("\n"));
        const deleted = events.filter((l) => / deleted /.test(l)).map((l) => l.trim().split(/\s+/)[2]);
        assert.ok(deleted.indexOf("cowsay-gateway") > deleted.indexOf("cowsay-route"), `the Istio Gateway outlives its live route: ${deleted.join(", ")}`);
    });
});

describe("changing routingApi without a gap: create with --exclude, then delete (real engine)", () => {
    let stack: EngineStack;
    /** Where the first of the two updates leaves the stack: the Gateway API objects created beside the Istio ones. */
    const CREATED_BESIDE = "the Gateway API objects created beside the Istio ones";
    const upExcludingIstio = () => stack.pulumi("up", "--yes", "--skip-preview", "--non-interactive", "--exclude", "**networking.istio.io**");

    before(async () => {
        stack = await EngineStack.create({ config: { ...BASE_CONFIG, routingApi: "istio", smokeCheck: "false" } });
    });
    after(() => stack?.dispose());

    it("pulumi up --exclude '**networking.istio.io**' creates the Gateway API objects and deletes nothing", async () => {
        await upThenSetGatewayApi(stack);
        const renderedBefore = stack.rendered();
        const up = await upExcludingIstio();
        stack.remember(CREATED_BESIDE);
        assert.doesNotMatch(up.stdout, / deleted /);
        const changed = changedFiles(renderedBefore, stack.rendered());
        assert.ok(
            changed.every((file) => !renderedBefore.has(file)),
            `only new files: ${changed.join(", ")}`,
        );
        assert.equal(changed.length, 7);
        stack.object("VirtualService", "cowsay-nginx");
        stack.object("HTTPRoute", "cowsay-nginx");
    });

    it("the next pulumi up deletes the four Istio routing objects and changes nothing else", async () => {
        await stack.reach(CREATED_BESIDE, async () => {
            await upThenSetGatewayApi(stack);
            await upExcludingIstio();
        });
        const renderedBefore = stack.rendered();
        await stack.up();
        const changed = changedFiles(renderedBefore, stack.rendered());
        assert.equal(changed.length, 4);
        assert.ok(
            changed.every((file) => !stack.rendered().has(file) && /networking\.istio\.io_v1-(virtualservice|destinationrule|gateway)-/.test(file)),
            changed.join(", "),
        );
    });
});
