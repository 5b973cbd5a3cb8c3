// End to end with the real Pulumi engine (no cluster), what only routingApi gateway-api has: the CRD
// install from a local file, which stays in the cluster when the stack stops installing it, and
// changing routingApi on a running stack, in one update and without a gap. The verbs, the gate and
// requests through the stand-in gateway run for this API as for the Istio APIs, in lifecycle.e2e.ts.
// Each test brings its stack to the state it starts from (EngineStack.deploy), so any one of them runs
// alone.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { configKey, NO_INSTALLS } from "../support/constants";
import { EngineStack, changedFiles, plannedChanges, requirePulumi } from "../support/engine";

const BASE_CONFIG = { ...NO_INSTALLS, routingApi: "gateway-api", activeVersion: "v1" };
const changes = plannedChanges;

before(requirePulumi);

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
