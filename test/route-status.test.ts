// Istio's verdict on an HTTPRoute (dynamic/route-status.ts): which status means the generation a
// switch wrote is programmed, and how the wait for it ends: done, Istio's refusal once it holds, the bound,
// a route that cannot be read, or a cancelled update. Statuses are shaped as Istio writes them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { routeVerdict, waitForRoutes, type RouteObject } from "../dynamic/route-status";

const GATEWAY = { group: "gateway.networking.k8s.io", kind: "Gateway", name: "cowsay-nginx-gateway", namespace: "istio-ingress", sectionName: "https" };
const SERVICE = { group: "", kind: "Service", name: "cowsay-nginx", port: 9080 };

const condition = (type: string, status: string, observedGeneration: number, reason = type, message = "") => ({
    type,
    status,
    observedGeneration,
    reason,
    message,
});
const parentStatus = (parentRef: object, generation: number, resolved = "True", reason = "ResolvedRefs", message = "") => ({
    parentRef,
    controllerName: "istio.io/gateway-controller",
    conditions: [condition("Accepted", "True", generation), condition("ResolvedRefs", resolved, generation, reason, message)],
});
function route(generation: number, parents: object[], statuses: object[]): RouteObject {
    return { metadata: { generation }, spec: { parentRefs: parents as never }, status: { parents: statuses as never } };
}

describe("route status: Istio's verdict on one HTTPRoute", () => {
    it("is done when Istio accepted the generation written and resolved its refs, for every parent (Gateway and Service)", () => {
        assert.deepEqual(routeVerdict(route(3, [GATEWAY], [parentStatus(GATEWAY, 3)]), 3), { done: true, why: "" });
        assert.deepEqual(routeVerdict(route(2, [SERVICE], [parentStatus(SERVICE, 2)]), 2), { done: true, why: "" });
        // A later generation judged (someone wrote again since) is as good: the one written is behind it.
        assert.equal(routeVerdict(route(4, [GATEWAY], [parentStatus(GATEWAY, 4)]), 3).done, true);
    });

    it("is not done while the status is the previous generation's, Accepted or not", () => {
        const verdict = routeVerdict(route(3, [GATEWAY], [parentStatus(GATEWAY, 2)]), 3);
        assert.deepEqual(verdict, { done: false, why: "Gateway istio-ingress/cowsay-nginx-gateway#https: Istio has judged generation 2, not 3 yet" });
    });

    it("is not done for a parent Istio has not written about, even when another parent is accepted", () => {
        const verdict = routeVerdict(route(1, [GATEWAY, SERVICE], [parentStatus(GATEWAY, 1)]), 1);
        assert.deepEqual(verdict, { done: false, why: "no status from Istio for Service cowsay-nginx yet" });
        assert.equal(
            routeVerdict({ metadata: { generation: 1 }, spec: { parentRefs: [GATEWAY] } }, 1).why,
            "no status from Istio for Gateway istio-ingress/cowsay-nginx-gateway#https yet",
        );
    });

    it("gives Istio's reason and message when a condition is False", () => {
        const missing = parentStatus(GATEWAY, 5, "False", "BackendNotFound", "backend(cowsay-nginx-v3.cowsay.svc.cluster.local) not found");
        assert.deepEqual(routeVerdict(route(5, [GATEWAY], [missing]), 5), {
            done: false,
            why: "Gateway istio-ingress/cowsay-nginx-gateway#https: ResolvedRefs=False (BackendNotFound): backend(cowsay-nginx-v3.cowsay.svc.cluster.local) not found",
            refused: true,
        });
        const refused = { parentRef: GATEWAY, conditions: [condition("Accepted", "False", 1, "NotAllowedByListeners", "no listener allows this route")] };
        assert.match(routeVerdict(route(1, [GATEWAY], [refused]), 1).why, /Accepted=False \(NotAllowedByListeners\): no listener allows this route$/);
        // Unknown is no verdict yet; and False on an older generation is not about what was written.
        const unknown = { parentRef: GATEWAY, conditions: [condition("Accepted", "Unknown", 5, "Pending"), condition("ResolvedRefs", "True", 5)] };
        assert.equal(routeVerdict(route(5, [GATEWAY], [unknown]), 5).refused, false);
        assert.equal(routeVerdict(route(6, [GATEWAY], [missing]), 6).refused, undefined);
    });

    it("matches a status to its parent by kind, name, section and port, not by position", () => {
        const http = { ...GATEWAY, sectionName: "http" };
        // Istio wrote about the http listener only: the https parent the route names has no verdict.
        assert.equal(routeVerdict(route(1, [GATEWAY], [parentStatus(http, 1)]), 1).done, false);
        assert.equal(routeVerdict(route(1, [SERVICE], [parentStatus({ ...SERVICE, port: 80 }, 1)]), 1).done, false);
        assert.equal(routeVerdict(route(1, [GATEWAY, SERVICE], [parentStatus(SERVICE, 1), parentStatus(GATEWAY, 1)]), 1).done, true);
    });
});

describe("route status: the wait", () => {
    const ROUTES = [
        { namespace: "cowsay", name: "cowsay-nginx", generation: 2 },
        { namespace: "cowsay", name: "cowsay-nginx-mesh", generation: 2 },
    ];
    const quiet = { report: () => undefined, intervalMs: 10 };

    it("ends once Istio has judged each route's generation, reading each until it has", async () => {
        const reads: string[] = [];
        const lines: string[] = [];
        await waitForRoutes(
            { routes: ROUTES, timeoutSeconds: 5 },
            (_namespace, name) => {
                reads.push(name);
                // The mesh route's verdict arrives on the third read (Istio's debounce).
                const judged = name === "cowsay-nginx" || reads.filter((n) => n === name).length >= 3 ? 2 : 1;
                const parent = name === "cowsay-nginx" ? GATEWAY : SERVICE;
                return Promise.resolve(route(2, [parent], [parentStatus(parent, judged)]));
            },
            { ...quiet, report: (line) => lines.push(line) },
        );
        assert.deepEqual(reads, ["cowsay-nginx", "cowsay-nginx-mesh", "cowsay-nginx-mesh", "cowsay-nginx-mesh"]);
        assert.equal(lines.length, 2);
        assert.match(lines[1], /^routes: Istio accepted HTTPRoute cowsay\/cowsay-nginx-mesh \(generation 2\) after \d+\.\d s$/);
    });

    it("fails after the bound with Istio's words, and says what stays as it was", async () => {
        const started = Date.now();
        const bad = parentStatus(GATEWAY, 2, "False", "BackendNotFound", "backend(cowsay-nginx-v3.cowsay.svc.cluster.local) not found");
        await assert.rejects(
            waitForRoutes({ routes: ROUTES.slice(0, 1), timeoutSeconds: 1 }, () => Promise.resolve(route(2, [GATEWAY], [bad])), quiet),
            (err: Error) => {
                assert.match(
                    err.message,
                    /^Istio did not accept HTTPRoute cowsay\/cowsay-nginx \(generation 2\) within 1 s: .*ResolvedRefs=False \(BackendNotFound\): backend\(cowsay-nginx-v3/,
                );
                assert.match(err.message, /the versions that went idle keep their pods/);
                return true;
            },
        );
        assert.ok(Date.now() - started >= 1000, "it kept reading until the bound: a False verdict may be Istio catching up");
    });

    it("takes a False verdict on the generation written that holds for the settle time as Istio's answer, long before the bound", async () => {
        const started = Date.now();
        const bad = parentStatus(GATEWAY, 2, "False", "BackendNotFound", "backend(cowsay-nginx-v1.cowsay.svc.cluster.local) not found");
        await assert.rejects(
            waitForRoutes({ routes: ROUTES.slice(0, 1), timeoutSeconds: 60 }, () => Promise.resolve(route(2, [GATEWAY], [bad])), { ...quiet, settleMs: 1000 }),
            (err: Error) => {
                assert.match(
                    err.message,
                    /^Istio refused HTTPRoute cowsay\/cowsay-nginx \(generation 2\), and still did 1 s later: .*ResolvedRefs=False \(BackendNotFound\): backend\(cowsay-nginx-v1/,
                );
                assert.match(err.message, /the versions that went idle keep their pods/);
                return true;
            },
        );
        const waited = Date.now() - started;
        assert.ok(waited >= 1000 && waited < 30_000, `ended after the settle time, not at the 60 s bound: ${waited} ms`);
    });

    it("does not take a False verdict that Istio corrects within the settle time as final", async () => {
        let reads = 0;
        const bad = parentStatus(GATEWAY, 2, "False", "BackendNotFound", "backend(cowsay-nginx-v2.cowsay.svc.cluster.local) not found");
        // False on the first five reads (Istio judged before it saw the new Service), then True.
        await waitForRoutes(
            { routes: ROUTES.slice(0, 1), timeoutSeconds: 60 },
            () => Promise.resolve(route(2, [GATEWAY], [++reads <= 5 ? bad : parentStatus(GATEWAY, 2)])),
            { ...quiet, settleMs: 1000 },
        );
        assert.equal(reads, 6);
    });

    it("names the read error when the route cannot be read", async () => {
        await assert.rejects(
            waitForRoutes({ routes: ROUTES.slice(0, 1), timeoutSeconds: 0 }, () => Promise.reject(new Error("connect ECONNREFUSED 127.0.0.1:6443")), quiet),
            /within 0 s: could not be read: connect ECONNREFUSED 127\.0\.0\.1:6443\./,
        );
    });

    it("stops when the update is cancelled", async () => {
        const controller = new AbortController();
        const waiting = waitForRoutes({ routes: ROUTES, timeoutSeconds: 60 }, () => Promise.resolve(route(2, [GATEWAY], [])), {
            ...quiet,
            signal: controller.signal,
        });
        setTimeout(() => controller.abort("the update was cancelled (Ctrl-C)"), 50);
        await assert.rejects(waiting, /^Error: waiting for Istio stopped: the update was cancelled \(Ctrl-C\) after/);
    });
});
