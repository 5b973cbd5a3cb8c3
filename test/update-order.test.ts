// The order of one update (components/app.ts) as the engine receives it: every direct dependency of
// the app's and the routing component's objects, written out per routing API, with and without a
// gate. An edge added or lost here changes when an object is touched on existing stacks, so the
// expected edges are exact sets, and the objects that wait for the gate, the live route and the
// routing API's verdict are exactly the next step's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DEPLOYMENT, DR, GW, HTTPROUTE, K8S_GATEWAY, SERVICE, VS, keyOf, runProgram, type Run } from "./support/helpers";

const GATE = "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate";
const ROUTE_STATUS = "pulumi-nodejs:dynamic/cowsay-bluegreen:RouteStatus";
const PDB = "kubernetes:policy/v1:PodDisruptionBudget";
const NAMESPACE = "kubernetes:core/v1:Namespace::cowsay-ns";
const gated = { gatewayUrl: "https://203.0.113.10", activeVersion: "v2", idleReplicas: "1" };
// Without a gateway URL the gate is left out (a warning says so); the test routes stay.
const ungated = { activeVersion: "v2", idleReplicas: "1" };

/**
 * Each object's direct dependencies beyond what every object in the app's namespace waits for (the
 * namespace and the installs before it), for the objects named in `expected`.
 */
function edges(run: Run, expected: Record<string, string[]>): Record<string, string[]> {
    const namespace = run.resources.find((r) => keyOf(r) === NAMESPACE);
    assert.ok(namespace !== undefined);
    const common = new Set([NAMESPACE, ...namespace.dependsOn]);
    return Object.fromEntries(
        Object.keys(expected).map((key) => {
            const r = run.resources.find((x) => keyOf(x) === key);
            assert.ok(r !== undefined, `${key} is registered`);
            return [key, [...new Set(r.dependsOn.filter((d) => !common.has(d)))].sort()];
        }),
    );
}

const sorted = (expected: Record<string, string[]>) => Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, [...v].sort()]));
/** Every object that waits for `key`, directly. */
const registered = (run: Run) => run.resources.map(keyOf);
const waitingFor = (run: Run, key: string) =>
    run.resources
        .filter((r) => r.dependsOn.includes(key))
        .map(keyOf)
        .sort();

const key = (type: string, name: string) => `${type}::${name}`;
const serving = key(DEPLOYMENT, "cowsay-v2");
const idle = [key(DEPLOYMENT, "cowsay-v1"), key(PDB, "cowsay-v1-pdb")];
const gate = key(GATE, "cowsay-gate");

describe("the order of one update, routingApi istio", () => {
    const subsets = key(DR, "cowsay-subsets");
    const gateway = key(GW, "cowsay-gateway");
    const testRoute = key(VS, "cowsay-test-route");
    const live = key(VS, "cowsay-route");
    const ready = [subsets, gateway, testRoute];

    it("serving pods and routing objects, then the gate through them, then the live route, then the idle version", async () => {
        const run = await runProgram(gated);
        const expected = {
            [serving]: [],
            [key(PDB, "cowsay-v2-pdb")]: [],
            [key(SERVICE, "cowsay-service")]: [],
            [subsets]: [],
            [gateway]: [],
            [testRoute]: [subsets, gateway],
            [gate]: [serving, ...ready],
            [live]: [serving, ...ready, gate],
            ...Object.fromEntries(idle.map((k) => [k, [live]])),
        };
        assert.deepEqual(edges(run, expected), sorted(expected));
        assert.deepEqual(waitingFor(run, gate), [live], "only the live route waits for the gate");
        assert.deepEqual(waitingFor(run, live), [...idle].sort(), "Istio reports nothing: the idle version waits for the written route");
    });

    it("without a gate, the live route waits for the serving pods and the routing objects", async () => {
        const run = await runProgram(ungated);
        assert.ok(!registered(run).includes(gate));
        const expected = { [live]: [serving, ...ready], ...Object.fromEntries(idle.map((k) => [k, [live]])) };
        assert.deepEqual(edges(run, expected), sorted(expected));
    });
});

describe("the order of one update, routingApi gateway-api", () => {
    const GA = { routingApi: "gateway-api" };
    const services = [key(SERVICE, "cowsay-v1-service"), key(SERVICE, "cowsay-v2-service")];
    const gateway = key(K8S_GATEWAY, "cowsay-gateway");
    const redirect = key(HTTPROUTE, "cowsay-redirect");
    const testRoute = key(HTTPROUTE, "cowsay-test-route");
    const ingress = key(HTTPROUTE, "cowsay-route");
    const mesh = key(HTTPROUTE, "cowsay-mesh-route");
    const status = key(ROUTE_STATUS, "cowsay-route-status");
    const ready = [gateway, ...services, redirect, testRoute];

    it("serving pods and routing objects, then the gate, then both live routes, then Istio's verdict, then the idle version", async () => {
        const run = await runProgram({ ...GA, ...gated });
        const expected = {
            [serving]: [],
            [key(SERVICE, "cowsay-service")]: [],
            ...Object.fromEntries(services.map((k) => [k, []])),
            [gateway]: [],
            [redirect]: [gateway],
            [testRoute]: [gateway, ...services],
            [gate]: [serving, ...ready],
            [ingress]: [serving, ...ready, gate],
            // The mesh route hangs off the shared Service, and comes last so that waiting for it is waiting for both.
            [mesh]: [serving, ...ready, gate, key(SERVICE, "cowsay-service"), ingress],
            [status]: [redirect, testRoute, ingress, mesh],
            ...Object.fromEntries(idle.map((k) => [k, [status]])),
        };
        assert.deepEqual(edges(run, expected), sorted(expected));
        assert.deepEqual(waitingFor(run, gate), [ingress, mesh].sort(), "only the live routes wait for the gate");
        assert.deepEqual(waitingFor(run, status), [...idle].sort(), "the idle version waits for Istio's verdict");
    });

    it("without a gate or a status wait, the live routes follow the serving pods and the idle version the mesh route", async () => {
        const run = await runProgram({ ...GA, ...ungated, routeStatusTimeout: "0" });
        assert.ok(!registered(run).includes(gate) && !registered(run).includes(status));
        const expected = {
            [ingress]: [serving, ...ready],
            [mesh]: [serving, ...ready, key(SERVICE, "cowsay-service"), ingress],
            ...Object.fromEntries(idle.map((k) => [k, [mesh]])),
        };
        assert.deepEqual(edges(run, expected), sorted(expected));
    });
});
