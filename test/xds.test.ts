// The stand-in gateway's route choice from what istiod pushes (test/support/xds.ts, test/support/xds-routes.ts), on
// JSON fixtures shaped like `cowsay-xds dump` prints them (test/fixtures/xds): the virtual host by
// Host and Service port, the first matching route in the pushed order, weights, the redirect of
// plain HTTP, direct answers, and the pods behind a cluster (503 with none ready). No istiod runs here.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { ROOT } from "./support/constants";
import type { GatewayRequest, KubeObject } from "./support/gateway";
import { chooseRoute, lastRouteIs, parseCluster, pickWeighted, routeTable, XdsProxy, type XdsDump, type XdsRequest } from "./support/xds";
import { podFor, routeWithXds, sharedFor, xdsRoutes } from "./support/xds-routes";

const fixture = (name: string): XdsDump => JSON.parse(readFileSync(path.join(ROOT, "test", "fixtures", "xds", `${name}.json`), "utf8")) as XdsDump;
const HOST = "cowsay.example.com";
const V1 = "outbound|9080|v1|cowsay-nginx.cowsay.svc.cluster.local";
const V2 = "outbound|9080|v2|cowsay-nginx.cowsay.svc.cluster.local";
const https = (headers: Record<string, string> = {}, path = "/"): XdsRequest => ({ host: HOST, port: 443, path, headers });
const clusterOf = (dump: XdsDump, request: XdsRequest, point?: number): string => {
    const choice = chooseRoute(dump, request, point);
    assert.equal(choice.kind, "cluster", JSON.stringify(choice));
    return (choice as { cluster: string }).cluster;
};

describe("chooseRoute: the gateway's route as istiod pushed it (Istio APIs)", () => {
    const dump = fixture("gateway-istio");

    it("a request with the test header takes that version's route, whatever the weights of the live route", () => {
        for (const point of [0, 0.5, 0.99]) {
            assert.equal(clusterOf(dump, https({ "x-cowsay-version": "v2" }), point), V2);
            assert.equal(clusterOf(dump, https({ "x-cowsay-version": "v1" }), point), V1);
        }
    });

    it("a request without it falls through to the catch-all and is split by the pushed weights (90/10)", () => {
        assert.equal(clusterOf(dump, https(), 0), V1);
        assert.equal(clusterOf(dump, https(), 0.899), V1);
        assert.equal(clusterOf(dump, https(), 0.9), V2);
        assert.equal(clusterOf(dump, https({ "x-cowsay-version": "v3" }), 0.99), V2, "an unknown version is live traffic");
        const picks = Array.from({ length: 1000 }, (_, i) => clusterOf(dump, https(), i / 1000));
        assert.equal(picks.filter((c) => c === V2).length, 100);
    });

    it("plain HTTP on port 80 is redirected to HTTPS (the virtual host requires TLS: Istio's httpsRedirect), path kept, before any route", () => {
        assert.deepEqual(chooseRoute(dump, { host: HOST, port: 80, path: "/moo?x=1", headers: { "x-cowsay-version": "v2" } }), {
            kind: "redirect",
            status: 301,
            location: `https://${HOST}/moo?x=1`,
        });
        assert.deepEqual(chooseRoute(dump, { host: HOST, port: 80, path: "/moo?x=1" }), { kind: "redirect", status: 301, location: `https://${HOST}/moo?x=1` });
    });

    it("another host gets the pushed direct answer on port 80 and no virtual host on 443", () => {
        assert.deepEqual(chooseRoute(dump, { host: "other.example.com", port: 80 }), { kind: "direct", status: 404, body: "" });
        assert.equal(chooseRoute(dump, { host: "other.example.com", port: 443 }).kind, "none");
    });

    it("a port no listener serves finds no route", () => {
        assert.equal(chooseRoute(dump, { host: HOST, port: 8000 }).kind, "none");
    });

    it("routeTable prints the pushed order: header routes first, the split catch-all last", () => {
        assert.deepEqual(routeTable(dump, HOST, 443), ["/ x-cowsay-version=v1 -> v1", "/ x-cowsay-version=v2 -> v2", "/ -> v1:90 v2:10"]);
        assert.deepEqual(routeTable(dump, HOST, 80), [`require TLS -> redirect 301 https://${HOST}/`]);
    });
});

describe("chooseRoute follows Envoy's order, not the project's idea of it", () => {
    it("a catch-all pushed before a header route shadows it (what the old stand-in got wrong: it put catch-alls last)", () => {
        const dump = fixture("gateway-catch-all-first");
        assert.equal(clusterOf(dump, https({ "x-cowsay-version": "v2" })), V1);
    });

    it("path and header matchers: exact path, prefix, full-match regex, separated prefix, case, header prefix, regex, presence and inversion", () => {
        const route = (match: object, cluster: string) => ({ name: cluster, match, clusters: [{ name: cluster, weight: 1 }] });
        const dump: XdsDump = {
            listeners: [{ name: "l", port: 8443, routeConfigs: ["r"] }],
            routeConfigs: [
                {
                    name: "r",
                    virtualHosts: [
                        {
                            name: "h",
                            domains: ["*.example.com"],
                            routes: [
                                route({ path: "/exact" }, "exact"),
                                route({ regex: "/r[0-9]+" }, "regex"),
                                route({ pathSeparatedPrefix: "/sep" }, "separated"),
                                route({ path: "/CASE", caseInsensitive: true }, "case"),
                                route({ prefix: "/p", headers: [{ name: "x-a", prefix: "ab" }] }, "header-prefix"),
                                route({ prefix: "/p", headers: [{ name: "x-a", regex: "[a-z]+" }] }, "header-regex"),
                                route({ prefix: "/p", headers: [{ name: "x-b", present: true }] }, "header-present"),
                                route({ prefix: "/p", headers: [{ name: "x-c", exact: "no", invert: true }] }, "header-inverted"),
                                route({ prefix: "/" }, "rest"),
                            ],
                        },
                    ],
                },
            ],
        };
        const to = (path: string, headers: Record<string, string> = {}) => clusterOf(dump, { host: "any.example.com", port: 443, path, headers });
        assert.equal(to("/exact"), "exact");
        assert.equal(to("/exact/more"), "rest", "an exact path is not a prefix");
        assert.equal(to("/exact?q=1"), "exact", "the query string is not part of the path");
        assert.equal(to("/r42"), "regex");
        assert.equal(to("/r42x"), "rest", "regexes match the whole path");
        assert.equal(to("/sep"), "separated");
        assert.equal(to("/sep/x"), "separated");
        assert.equal(to("/separate"), "rest", "a separated prefix stops at a /");
        assert.equal(to("/case"), "case");
        assert.equal(to("/p", { "x-a": "abc" }), "header-prefix");
        assert.equal(to("/p", { "x-a": "xyz" }), "header-regex");
        assert.equal(to("/p", { "x-a": "XYZ", "x-b": "" }), "header-present");
        assert.equal(to("/p", { "x-a": "XYZ", "x-c": "yes" }), "header-inverted");
        assert.equal(to("/p", { "x-a": "XYZ", "x-c": "no" }), "rest");
        assert.equal(chooseRoute(dump, { host: "example.org", port: 443 }).kind, "none", "the wildcard is a suffix of a host");
    });

    it("pickWeighted splits by weight and never picks a zero weight", () => {
        const choices = [
            { value: "a", weight: 0 },
            { value: "b", weight: 1 },
            { value: "c", weight: 3 },
        ];
        assert.deepEqual(
            [0, 0.24, 0.25, 0.99].map((p) => pickWeighted(choices, p)),
            ["b", "b", "c", "c"],
        );
    });
});

describe("the Gateway API and a sidecar (GAMMA)", () => {
    it("the gateway's routes from HTTPRoutes go to each version's own Service; HTTP redirects", () => {
        const dump = fixture("gateway-api");
        assert.equal(clusterOf(dump, https({ "x-cowsay-version": "v1" })), "outbound|9080||cowsay-nginx-v1.cowsay.svc.cluster.local");
        assert.equal(clusterOf(dump, https()), "outbound|9080||cowsay-nginx-v2.cowsay.svc.cluster.local");
        assert.deepEqual(chooseRoute(dump, { host: HOST, port: 80 }), { kind: "redirect", status: 301, location: `https://${HOST}/` });
        assert.deepEqual(routeTable(dump, HOST, 80), [`/ -> redirect 301 https://${HOST}/`], "a route redirect (RequestRedirect), not require_tls");
        assert.deepEqual(routeTable(dump, HOST, 443), [
            "/ x-cowsay-version=v2 -> cowsay-nginx-v2",
            "/ x-cowsay-version=v1 -> cowsay-nginx-v1",
            "/ -> cowsay-nginx-v2",
        ]);
    });

    it("a sidecar in another namespace calling the shared Service follows the mesh route, by any of its names", () => {
        const dump = fixture("sidecar-gamma");
        for (const host of ["cowsay-nginx.cowsay.svc.cluster.local", "cowsay-nginx.cowsay"]) {
            assert.equal(clusterOf(dump, { host, port: 9080 }), "outbound|9080||cowsay-nginx-v2.cowsay.svc.cluster.local");
        }
        assert.equal(clusterOf(dump, { host: "cowsay-nginx-v1.cowsay", port: 9080 }), "outbound|9080||cowsay-nginx-v1.cowsay.svc.cluster.local");
        assert.equal(clusterOf(dump, { host: "elsewhere.example.org", port: 9080 }), "PassthroughCluster");
    });

    it("parseCluster reads subsets and Services back, and nothing else", () => {
        assert.deepEqual(parseCluster(V2), { port: 9080, subset: "v2", service: "cowsay-nginx", namespace: "cowsay" });
        assert.deepEqual(parseCluster("outbound|9080||cowsay-nginx-v1.cowsay.svc.cluster.local"), {
            port: 9080,
            subset: "",
            service: "cowsay-nginx-v1",
            namespace: "cowsay",
        });
        assert.equal(parseCluster("PassthroughCluster"), undefined);
        assert.equal(parseCluster("inbound|9080||"), undefined);
    });
});

describe("the pods behind the chosen cluster (xds-routes)", () => {
    const IMAGES = { v1: "dougbtv/nginx-cowsay:v1", v2: "dougbtv/nginx-cowsay:v2" } as const;
    const pod = (version: "v1" | "v2", ready: boolean, name = `cowsay-nginx-${version}-0`): KubeObject => ({
        kind: "Pod",
        metadata: { name, namespace: "cowsay", labels: { service: "cowsay-nginx", version } },
        spec: { containers: [{ image: IMAGES[version] }] },
        status: { conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
    });
    const service = (name: string, selector: Record<string, string>): KubeObject => ({
        kind: "Service",
        metadata: { name, namespace: "cowsay" },
        spec: { selector },
    });
    const rule: KubeObject = {
        kind: "DestinationRule",
        metadata: { name: "cowsay-nginx", namespace: "cowsay" },
        spec: {
            host: "cowsay-nginx.cowsay.svc.cluster.local",
            subsets: [
                { name: "v1", labels: { version: "v1" } },
                { name: "v2", labels: { version: "v2" } },
            ],
        },
    };
    const shared = service("cowsay-nginx", { service: "cowsay-nginx" });

    it("a subset cluster is answered by a ready pod of that subset, with its image", () => {
        const objects = [shared, rule, pod("v1", true), pod("v2", true)];
        assert.deepEqual(podFor(V2, objects), { version: "v2", image: IMAGES.v2, service: "cowsay-nginx.cowsay.svc.cluster.local" });
        assert.deepEqual(podFor(V1, objects), { version: "v1", image: IMAGES.v1, service: "cowsay-nginx.cowsay.svc.cluster.local" });
    });

    it("a version Service's cluster (Gateway API) is answered by the pods its selector picks", () => {
        const objects = [service("cowsay-nginx-v2", { service: "cowsay-nginx", version: "v2" }), pod("v1", true), pod("v2", true)];
        assert.deepEqual(podFor("outbound|9080||cowsay-nginx-v2.cowsay.svc.cluster.local", objects), {
            version: "v2",
            image: IMAGES.v2,
            service: "cowsay-nginx-v2.cowsay.svc.cluster.local",
        });
    });

    it("503 when the version has no ready pod, no pod, no subset or no Service, with Envoy's flag for each", () => {
        const noHealthy = {
            status: 503,
            reason: `no healthy upstream: no ready pod behind ${V2}`,
            version: "v2",
            service: "cowsay-nginx.cowsay.svc.cluster.local",
            flags: "UH",
        };
        assert.deepEqual(podFor(V2, [shared, rule, pod("v1", true), pod("v2", false)]), noHealthy);
        assert.deepEqual(podFor(V2, [shared, rule, pod("v1", true)]), noHealthy, "no v2 pod at all: the subset names the version");
        // No such subset or Service: istiod pushes no cluster for it, and Envoy answers "cluster not found".
        const noSubset = podFor(V2, [shared, { ...rule, spec: { ...rule.spec, subsets: [{ name: "v1", labels: { version: "v1" } }] } }, pod("v2", true)]) as {
            reason: string;
            flags: string;
        };
        assert.match(noSubset.reason, /no subset v2/);
        assert.equal(noSubset.flags, "NC");
        const noService = podFor(V2, [rule, pod("v2", true)]) as { reason: string; flags: string };
        assert.match(noService.reason, /no Service cowsay\/cowsay-nginx/);
        assert.equal(noService.flags, "NC");
        assert.deepEqual(podFor("PassthroughCluster", []), { status: 503, reason: "PassthroughCluster is not a Kubernetes Service's cluster", flags: "NC" });
    });

    it("a terminating pod does not answer", () => {
        const leaving: KubeObject = { ...pod("v2", true), metadata: { ...pod("v2", true).metadata, deletionTimestamp: "2026-11-29T00:00:00Z" } };
        assert.equal((podFor(V2, [shared, rule, leaving]) as { status: number }).status, 503);
    });

    it("routeWithXds: the gateway request goes through the pushed route to the pod's page, or gets the redirect", async () => {
        const dump = fixture("gateway-istio");
        const asked: string[] = [];
        const workloads = (namespace: string) => {
            asked.push(namespace);
            return Promise.resolve([shared, rule, pod("v1", true), pod("v2", true)]);
        };
        const request = (port: 80 | 443, headers: Record<string, string> = {}): GatewayRequest => ({ host: HOST, port, headers, method: "GET", url: "/" });
        assert.deepEqual(await routeWithXds(dump, request(443, { "x-cowsay-version": "v2" }), workloads), {
            version: "v2",
            image: IMAGES.v2,
            service: "cowsay-nginx.cowsay.svc.cluster.local",
        });
        assert.deepEqual(asked, ["cowsay"], "the pods are read in the cluster's namespace");
        assert.deepEqual(await routeWithXds(dump, request(80), workloads), {
            status: 301,
            reason: `redirect to https://${HOST}/`,
            location: `https://${HOST}/`,
            flags: "-",
        });
        assert.deepEqual(await routeWithXds(dump, { ...request(443), host: "nope.example.com" }, workloads), {
            status: 404,
            reason: "no virtual host for nope.example.com on port 443",
        });
    });

    it("sharedFor: one read per period; once one answered, calls get the newest answer without waiting for the next read; a failed read keeps it and is read again", async () => {
        let t = 0;
        const reads: { resolve: (n: number) => void; reject: (e: Error) => void }[] = [];
        const read = sharedFor(
            1000,
            () => new Promise<number>((resolve, reject) => reads.push({ resolve, reject })),
            () => t,
        );
        const first = Promise.all([read(), read()]);
        assert.equal(reads.length, 1, "two requests at once: one read");
        reads[0].resolve(1);
        assert.deepEqual(await first, [1, 1], "before any answer, calls wait for the first read");
        t = 999;
        assert.equal(await read(), 1);
        assert.equal(reads.length, 1, "within its period: no new read");
        t = 1000;
        assert.equal(await read(), 1, "a read a second old starts the next one, and the call is answered at once with the last answer");
        assert.equal(reads.length, 2);
        t = 2000;
        assert.equal(await read(), 1, "the second read hangs: a third starts, still answered from the first");
        assert.equal(reads.length, 3);
        reads[2].resolve(3);
        await Promise.resolve();
        assert.equal(await read(), 3, "the newest answer");
        reads[1].resolve(2);
        await Promise.resolve();
        assert.equal(await read(), 3, "a slow read that ends late does not bring an older push back");
        t = 3000;
        void read();
        reads[3].reject(new Error("istiod unreachable"));
        await Promise.resolve();
        assert.equal(await read(), 3, "a failed read keeps the last answer, and the next call reads again");
        assert.equal(reads.length, 5);
        const cold = sharedFor(
            1000,
            () => Promise.reject(new Error("istiod unreachable")),
            () => t,
        );
        await assert.rejects(cold(), /istiod unreachable/, "with no answer yet, the error reaches the caller");
    });

    it("xdsRoutes with a cache reads istiod's push and the workloads once for many requests", async () => {
        let dumps = 0;
        let lists = 0;
        const route = xdsRoutes(
            () => (dumps++, Promise.resolve(fixture("gateway-istio"))),
            () => (lists++, Promise.resolve([shared, rule, pod("v1", true), pod("v2", true)])),
            60_000,
        );
        const request: GatewayRequest = { host: HOST, port: 443, headers: { "x-cowsay-version": "v2" }, method: "GET", url: "/" };
        const answers = await Promise.all(Array.from({ length: 5 }, () => route(request)));
        assert.deepEqual(
            answers.map((a) => ("version" in a ? a.version : a.status)),
            ["v2", "v2", "v2", "v2", "v2"],
        );
        assert.deepEqual([dumps, lists], [1, 1]);
        const uncached = xdsRoutes(
            () => (dumps++, Promise.resolve(fixture("gateway-istio"))),
            () => Promise.resolve([shared, rule, pod("v1", true), pod("v2", true)]),
        );
        await Promise.all([uncached(request), uncached(request)]);
        assert.equal(dumps, 3, "without a cache, every request reads the push");
    });
});

describe("XdsProxy: how the suites ask cowsay-xds (a stand-in for it that replays fixtures)", () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const proxy = () => new XdsProxy(env, { role: "gateway", namespace: "istio-ingress", labels: { istio: "ingressgateway", app: "gw" } });
    const args = () => readFileSync(path.join(dir, "args"), "utf8").trim().split("\n");

    before(() => {
        dir = mkdtempSync(path.join(tmpdir(), "cowsay-xds-test-"));
        // watch prints the catch-all-first table, then the Istio one, as two pushes; then keeps running.
        const line = (name: string) => JSON.stringify(fixture(name));
        writeFileSync(path.join(dir, "pushes"), `${line("gateway-catch-all-first")}\n${line("gateway-istio")}\n`);
        writeFileSync(
            path.join(dir, "cowsay-xds"),
            `#!/bin/sh\necho "$*" >> "${dir}/args"\ncase "$1" in\n  dump) cat "${path.join(ROOT, "test", "fixtures", "xds", "gateway-api.json")}" ;;\n  watch) cat "${dir}/pushes"; exec sleep 30 ;;\n  *) exit 2 ;;\nesac\n`,
        );
        chmodSync(path.join(dir, "cowsay-xds"), 0o755);
        env = { ...process.env, PATH: `${dir}${path.delimiter}${process.env.PATH ?? ""}`, COWSAY_XDS_ADDRESS: "127.0.0.1:15010" };
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("dump passes the proxy's identity and reads the document", async () => {
        const dump = await proxy().dump();
        assert.equal(clusterOf(dump, https()), "outbound|9080||cowsay-nginx-v2.cowsay.svc.cluster.local");
        assert.equal(args().at(-1), "dump --address 127.0.0.1:15010 --role gateway --namespace istio-ingress --labels istio=ingressgateway,app=gw");
    });

    it("waitForTable resolves at the push whose table is the expected one, not before", async () => {
        const expected = ["/ x-cowsay-version=v1 -> v1", "/ x-cowsay-version=v2 -> v2", "/ -> v1:90 v2:10"];
        const ms = await proxy().waitForTable(HOST, 443, expected, 5);
        assert.ok(ms < 5000);
        assert.match(args().at(-1) ?? "", /^watch --address 127\.0\.0\.1:15010 --role gateway /);
    });

    it("waitForTable with a predicate: the first push whose catch-all is the one asked for", async () => {
        assert.ok((await proxy().waitForTable(HOST, 443, lastRouteIs("/ -> v1:90 v2:10"), 5)) < 5000);
        await assert.rejects(proxy().waitForTable(HOST, 443, lastRouteIs("/ -> v2"), 1), /expected a table ending with "\/ -> v2"/);
    });

    it("waitForTable fails at its bound with the expected table and the last one pushed", async () => {
        await assert.rejects(proxy().waitForTable(HOST, 443, ["/ -> v2"], 1), (err: Error) => {
            assert.match(err.message, /istiod did not push the expected route within 1 s \(gateway in istio-ingress, cowsay\.example\.com:443\)/);
            assert.match(err.message, /last pushed \[\n "\/ x-cowsay-version=v1 -> v1"/);
            return true;
        });
    });

    it("without an istiod in the cluster's environment, says so", async () => {
        await assert.rejects(new XdsProxy({ ...env, COWSAY_XDS_ADDRESS: undefined }, proxy().identity).dump(), /COWSAY_XDS_ADDRESS is not set/);
    });
});
