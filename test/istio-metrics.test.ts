// The stand-in gateway's Istio metrics, scraped the way Prometheus scrapes Envoy: traffic from the
// load generator through a gateway with a fixed router, then GET /stats/prometheus, parsed, and
// compared with what was sent: counts per reporter, version and code, Istio's label set and values,
// the histogram's buckets, the faults of a bad release (an exact share of 503s, late answers), the
// gateway's own answers, and the target file Prometheus discovers it by.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, describe, it } from "node:test";

import { APP, APP_NAMESPACE, COW, HEADER, HOST, HOTDOG, INGRESS_NAMESPACE, VERSIONS } from "./support/constants";
import { fetchPage, pageOf, PROMETHEUS_TARGETS_ENV, StandInGateway, type Router } from "./support/gateway";
import { DURATION_BUCKETS_MS } from "./support/istio-metrics";
import { sendLoad } from "./support/load";

/**
 * Istio's labels on istio_requests_total and istio_request_duration_milliseconds, as its docs list
 * them (istio.io, "Istio Standard Metrics", Labels) and its stats filter names them. Written out
 * here, not imported, so that the module is checked against the docs and not against itself.
 */
const DOCUMENTED_LABELS = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "connection_security_policy",
    "response_flags",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "source_cluster",
    "grpc_response_status",
].sort();

/** One sample of the text exposition. */
interface Sample {
    readonly name: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly value: number;
}

/**
 * The text exposition format, read back: `name{label="value",...} value`. prom-client writes the
 * format but ships no reader, and the format is small enough that a reader here is shorter than a
 * dependency for it; it refuses any line it does not understand, so a format slip fails loudly.
 */
function parseExposition(text: string): Sample[] {
    const samples: Sample[] = [];
    for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (m === null) throw new Error(`not an exposition line: ${line}`);
        const labels: Record<string, string> = {};
        const body = m[2] ?? "";
        const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
        while (pair.lastIndex < body.length) {
            const p = pair.exec(body);
            if (p === null) throw new Error(`bad labels in: ${line}`);
            labels[p[1]] = p[2].replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
        }
        samples.push({ name: m[1], labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
    }
    return samples;
}

/** GET http://<address><path>: status, content type and body. */
function fetchText(address: string, urlPath = "/stats/prometheus"): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
        // A connection of its own each time, as a scrape after the gateway stopped must find none open.
        get(`http://${address}${urlPath}`, { agent: false }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => (body += chunk));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }));
        }).on("error", reject);
    });
}

async function scrape(gateway: StandInGateway): Promise<Sample[]> {
    const { status, body } = await fetchText(gateway.metricsAddress);
    assert.equal(status, 200);
    return parseExposition(body);
}

/** The sum of `name` over the samples whose labels include `where`. */
function total(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
    return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

const REQUESTS = "istio_requests_total";
const DURATION = "istio_request_duration_milliseconds";
const SERVICE = `${APP}.${APP_NAMESPACE}.svc.cluster.local`;

// A fixed router: the gateway host over HTTPS reaches the version the test header names (v1 by
// default), v3 has no ready pods, plain HTTP redirects, any other host has no route.
const router: Router = (request) => {
    if (request.host !== HOST) return Promise.resolve({ status: 404, reason: `no route for ${request.host}` });
    if (request.port === 80) return Promise.resolve({ status: 301, reason: "redirect", location: `https://${HOST}/` });
    const version = String(request.headers[HEADER] ?? "v1");
    if (version === "v3") return Promise.resolve({ status: 503, reason: "no healthy upstream", version });
    return Promise.resolve({ version, image: VERSIONS[version].image });
};

describe("the stand-in gateway's Istio metrics", () => {
    const started: StandInGateway[] = [];
    const start = async (options: Parameters<typeof StandInGateway.start>[2] = {}) => {
        const gateway = await StandInGateway.start(router, undefined, options);
        started.push(gateway);
        return gateway;
    };
    const https = (gateway: StandInGateway) => `https://${gateway.address}/`;
    const to = (version: string) => ({ name: HEADER, value: version });

    afterEach(async () => {
        for (const gateway of started.splice(0)) await gateway.stop();
    });

    it("has no series before the first request, and none for a version that got no request", async () => {
        const gateway = await start();
        const { status, type, body } = await fetchText(gateway.metricsAddress);
        assert.equal(status, 200);
        assert.match(type, /^text\/plain; version=0\.0\.4/);
        assert.match(body, /^# TYPE istio_requests_total counter$/m);
        assert.match(body, /^# TYPE istio_request_duration_milliseconds histogram$/m);
        assert.deepEqual(parseExposition(body), [], "no zero series ahead of traffic");

        await sendLoad({ url: https(gateway), requestsPerSecond: 20, durationMs: 250 });
        const samples = await scrape(gateway);
        assert.ok(total(samples, REQUESTS, { destination_version: "v1" }) > 0);
        assert.deepEqual(
            samples.filter((s) => s.labels.destination_version === "v2"),
            [],
        );
        assert.equal((await fetchText(gateway.metricsAddress, "/metrics")).status, 404, "only Envoy's path serves them");
    });

    it("counts each request once per reporter, by version and response code, as many as were sent", async () => {
        const gateway = await start();
        const [live, candidate] = await Promise.all([
            sendLoad({ url: https(gateway), requestsPerSecond: 40, durationMs: 500 }),
            sendLoad({ url: https(gateway), header: to("v2"), requestsPerSecond: 20, durationMs: 500 }),
        ]);
        assert.deepEqual([live.sent, live.statuses, candidate.sent, candidate.statuses], [20, { "200": 20 }, 10, { "200": 10 }]);

        const samples = await scrape(gateway);
        for (const reporter of ["source", "destination"]) {
            assert.equal(total(samples, REQUESTS, { reporter, destination_version: "v1", response_code: "200" }), 20, `${reporter} v1`);
            assert.equal(total(samples, REQUESTS, { reporter, destination_version: "v2", response_code: "200" }), 10, `${reporter} v2`);
        }
        assert.equal(total(samples, REQUESTS), 60, "30 requests, each reported by the gateway and by the pod's sidecar");
        for (const series of samples.filter((s) => s.name === REQUESTS)) {
            assert.equal(total(samples, `${DURATION}_count`, series.labels), series.value, "a duration for every request counted");
        }
        assert.equal(gateway.routedTo("v1"), 20);
        assert.equal(gateway.routedTo("v2"), 10);
    });

    it("labels each series as Istio's proxies do, with exactly Istio's documented label set", async () => {
        const gateway = await start();
        await sendLoad({ url: https(gateway), header: to("v2"), requestsPerSecond: 10, durationMs: 200 });
        const series = (await scrape(gateway)).filter((s) => s.name === REQUESTS);
        assert.equal(series.length, 2);
        for (const s of series) assert.deepEqual(Object.keys(s.labels).sort(), DOCUMENTED_LABELS);

        const gatewayIdentity = `spiffe://cluster.local/ns/${INGRESS_NAMESPACE}/sa/istio-ingressgateway`;
        const common = {
            source_workload: "istio-ingressgateway",
            source_workload_namespace: INGRESS_NAMESPACE,
            source_principal: gatewayIdentity,
            source_app: "istio-ingressgateway",
            source_canonical_service: "istio-ingressgateway",
            source_canonical_revision: "latest",
            source_cluster: "Kubernetes",
            destination_workload: `${APP}-v2`,
            destination_workload_namespace: APP_NAMESPACE,
            destination_principal: `spiffe://cluster.local/ns/${APP_NAMESPACE}/sa/default`,
            destination_app: APP,
            destination_version: "v2",
            destination_service: SERVICE,
            destination_service_name: APP,
            destination_service_namespace: APP_NAMESPACE,
            destination_canonical_service: APP,
            destination_canonical_revision: "v2",
            destination_cluster: "Kubernetes",
            request_protocol: "http",
            response_code: "200",
            grpc_response_status: "",
            response_flags: "-",
        };
        const byReporter = Object.fromEntries(series.map((s) => [s.labels.reporter, s.labels]));
        // The gateway's own pods have no version label (empty in its own reports); only the
        // destination knows the connection was mutual TLS.
        assert.deepEqual(byReporter.source, { ...common, reporter: "source", source_version: "", connection_security_policy: "unknown" });
        assert.deepEqual(byReporter.destination, { ...common, reporter: "destination", source_version: "unknown", connection_security_policy: "mutual_tls" });
    });

    it("names the workloads after the options: app, its namespace, the ingress namespace", async () => {
        const gateway = await start({ appName: "moo", appNamespace: "farm", ingressNamespace: "edge" });
        await sendLoad({ url: https(gateway), requestsPerSecond: 10, durationMs: 100 });
        const labels = (await scrape(gateway)).find((s) => s.name === REQUESTS && s.labels.reporter === "destination")?.labels ?? {};
        assert.equal(labels.destination_workload, "moo-v1");
        assert.equal(labels.destination_workload_namespace, "farm");
        assert.equal(labels.destination_service, "moo.farm.svc.cluster.local");
        assert.equal(labels.source_principal, "spiffe://cluster.local/ns/edge/sa/istio-ingressgateway");
    });

    it("keeps Envoy's duration buckets, cumulative, with _sum and _count", async () => {
        const gateway = await start();
        await sendLoad({ url: https(gateway), requestsPerSecond: 20, durationMs: 500 });
        const samples = await scrape(gateway);
        const series = { reporter: "source", destination_version: "v1" };
        const buckets = samples.filter((s) => s.name === `${DURATION}_bucket` && s.labels.reporter === "source");
        assert.deepEqual(
            buckets.map((b) => b.labels.le),
            [...DURATION_BUCKETS_MS.map(String), "+Inf"],
        );
        assert.deepEqual(
            buckets.map((b) => b.labels.le),
            [
                "0.5",
                "1",
                "5",
                "10",
                "25",
                "50",
                "100",
                "250",
                "500",
                "1000",
                "2500",
                "5000",
                "10000",
                "30000",
                "60000",
                "300000",
                "600000",
                "1800000",
                "3600000",
                "+Inf",
            ],
        );
        for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, `le=${buckets[i].labels.le} is cumulative`);
        assert.equal(buckets[buckets.length - 1].value, 10);
        assert.equal(total(samples, `${DURATION}_count`, series), 10);
        assert.ok(total(samples, `${DURATION}_sum`, series) >= 0);
    });

    it("errorPercent 20 makes exactly 1 in 5 of the version's answers a 503 from the app, until cleared", async () => {
        const gateway = await start();
        gateway.faults.set("v2", { errorPercent: 20 });
        const broken = await sendLoad({ url: https(gateway), header: to("v2"), requestsPerSecond: 50, durationMs: 500 });
        assert.deepEqual([broken.sent, broken.statuses], [25, { "200": 20, "503": 5 }]);
        const healthy = await sendLoad({ url: https(gateway), requestsPerSecond: 50, durationMs: 200 });
        assert.deepEqual(healthy.statuses, { "200": 10 }, "v1 has no fault");

        let samples = await scrape(gateway);
        for (const reporter of ["source", "destination"]) {
            // The pod answered: its 503 carries no flag, and the destination reporter sees it too.
            assert.equal(total(samples, REQUESTS, { reporter, destination_version: "v2", response_code: "503", response_flags: "-" }), 5, reporter);
            assert.equal(total(samples, REQUESTS, { reporter, destination_version: "v2", response_code: "200" }), 20, reporter);
        }

        gateway.faults.delete("v2");
        const cleared = await sendLoad({ url: https(gateway), header: to("v2"), requestsPerSecond: 50, durationMs: 200 });
        assert.deepEqual(cleared.statuses, { "200": 10 });
        samples = await scrape(gateway);
        assert.equal(total(samples, REQUESTS, { reporter: "source", destination_version: "v2", response_code: "503" }), 5);
        assert.equal(total(samples, REQUESTS, { reporter: "source", destination_version: "v2", response_code: "200" }), 30);
    });

    it("delayMs slows the version's answers, and the histogram records the measured time", async () => {
        const gateway = await start();
        gateway.faults.set("v1", { delayMs: 600 });
        const slow = await sendLoad({ url: https(gateway), requestsPerSecond: 10, durationMs: 300, timeoutMs: 5000 });
        const fast = await sendLoad({ url: https(gateway), header: to("v2"), requestsPerSecond: 10, durationMs: 300 });
        assert.deepEqual([slow.statuses, fast.statuses], [{ "200": 3 }, { "200": 3 }]);

        const samples = await scrape(gateway);
        const bucket = (version: string, le: string) => total(samples, `${DURATION}_bucket`, { reporter: "source", destination_version: version, le });
        assert.deepEqual([bucket("v1", "500"), bucket("v1", "1000")], [0, 3], "600 ms answers fall between 500 and 1000");
        assert.deepEqual([bucket("v2", "250"), bucket("v2", "+Inf")], [3, 3], "the other version stays fast");
        assert.ok(total(samples, `${DURATION}_sum`, { reporter: "destination", destination_version: "v1" }) >= 1800);
    });

    it("a client that gives up on a slow version is counted with code 0 and flag DC, as Envoy does", async () => {
        const gateway = await start();
        gateway.faults.set("v1", { delayMs: 2000 });
        const result = await sendLoad({ url: https(gateway), requestsPerSecond: 10, durationMs: 200, timeoutMs: 200 });
        assert.deepEqual([result.statuses, result.errors], [{}, { "no answer within 200 ms": 2 }]);
        let samples: Sample[] = [];
        for (let tries = 0; tries < 20 && total(samples, REQUESTS) < 4; tries++) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            samples = await scrape(gateway);
        }
        for (const reporter of ["source", "destination"]) {
            assert.equal(total(samples, REQUESTS, { reporter, destination_version: "v1", response_code: "0", response_flags: "DC" }), 2, reporter);
        }
        assert.equal(total(samples, REQUESTS), 4, "and nothing else (no 200 after the client left)");
    });

    it("an answer of the gateway's own (no route, no ready pod, the redirect) has only the source series", async () => {
        const gateway = await start();
        const noRoute = await sendLoad({ url: https(gateway), host: "elsewhere.example.com", requestsPerSecond: 10, durationMs: 300 });
        const noPods = await sendLoad({ url: https(gateway), header: to("v3"), requestsPerSecond: 10, durationMs: 200 });
        const redirect = await sendLoad({ url: `http://${gateway.httpAddress}/`, requestsPerSecond: 10, durationMs: 100 });
        assert.deepEqual([noRoute.statuses, noPods.statuses, redirect.statuses], [{ "404": 3 }, { "503": 2 }, { "301": 1 }]);

        const series = (await scrape(gateway)).filter((s) => s.name === REQUESTS);
        assert.deepEqual(
            series.map((s) => s.labels.reporter),
            ["source", "source", "source"],
        );
        const unknownPeer = {
            destination_workload: "unknown",
            destination_workload_namespace: "unknown",
            destination_principal: "unknown",
            destination_app: "unknown",
            destination_version: "unknown",
            destination_canonical_service: "unknown",
            destination_canonical_revision: "latest",
            destination_service_namespace: "unknown",
            destination_cluster: "unknown",
            connection_security_policy: "unknown",
        };
        const pick = (code: string) => {
            const labels = series.find((s) => s.labels.response_code === code)?.labels ?? {};
            return { labels, value: series.find((s) => s.labels.response_code === code)?.value };
        };
        // No route: no cluster, so Envoy names the destination by the Host header.
        assert.equal(pick("404").value, 3);
        assert.deepEqual(pick("404").labels, {
            ...pick("404").labels,
            ...unknownPeer,
            response_flags: "NR",
            destination_service: "elsewhere.example.com",
            destination_service_name: "elsewhere.example.com",
        });
        // No healthy upstream: the cluster (and so its Service) is known, no pod is.
        assert.equal(pick("503").value, 2);
        assert.deepEqual(pick("503").labels, {
            ...pick("503").labels,
            ...unknownPeer,
            response_flags: "UH",
            destination_service: SERVICE,
            destination_service_name: APP,
        });
        assert.equal(pick("301").value, 1);
        assert.deepEqual(pick("301").labels, { ...pick("301").labels, ...unknownPeer, response_flags: "-", destination_service: HOST });
    });

    it("registers its metrics port in the targets directory while it runs, and unregisters on stop", async () => {
        const dir = mkdtempSync(path.join(tmpdir(), "cowsay-targets-"));
        try {
            const gateway = await start({ prometheusTargets: dir });
            const file = gateway.targetsFile ?? "";
            assert.equal(path.dirname(file), dir);
            assert.deepEqual(readdirSync(dir), [path.basename(file)], "one target file, no temporary left");
            assert.match(path.basename(file), /\.json$/);
            const targets = JSON.parse(readFileSync(file, "utf8"));
            assert.deepEqual(targets, [{ targets: [gateway.metricsAddress], labels: { job: "istio-mesh", __metrics_path__: "/stats/prometheus" } }]);
            // What Prometheus would scrape, from the file alone.
            const scraped = await fetchText(targets[0].targets[0], targets[0].labels.__metrics_path__);
            assert.equal(scraped.status, 200);
            assert.match(scraped.body, /# TYPE istio_requests_total counter/);

            const address = gateway.metricsAddress;
            await gateway.stop();
            started.splice(started.indexOf(gateway), 1);
            assert.equal(existsSync(file), false);
            assert.deepEqual(readdirSync(dir), []);
            await assert.rejects(fetchText(address), /ECONNREFUSED/, "the metrics port is closed too");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it(`reads the targets directory from ${PROMETHEUS_TARGETS_ENV}, and refuses one that does not exist`, async () => {
        const dir = mkdtempSync(path.join(tmpdir(), "cowsay-targets-"));
        const saved = process.env[PROMETHEUS_TARGETS_ENV];
        try {
            process.env[PROMETHEUS_TARGETS_ENV] = dir;
            const gateway = await start();
            assert.equal(readdirSync(dir).length, 1);
            assert.equal(JSON.parse(readFileSync(gateway.targetsFile ?? "", "utf8"))[0].targets[0], gateway.metricsAddress);

            process.env[PROMETHEUS_TARGETS_ENV] = path.join(dir, "missing");
            await assert.rejects(StandInGateway.start(router), {
                message: `${PROMETHEUS_TARGETS_ENV} is ${JSON.stringify(path.join(dir, "missing"))}; allowed: an existing directory, where Prometheus reads its file_sd target files`,
            });
            await assert.rejects(StandInGateway.start(router, undefined, { prometheusTargets: "/nonexistent/targets" }), {
                message: 'prometheusTargets is "/nonexistent/targets"; allowed: an existing directory, where Prometheus reads its file_sd target files',
            });
            delete process.env[PROMETHEUS_TARGETS_ENV];
            assert.equal((await start()).targetsFile, undefined, "unset: no registration");
        } finally {
            if (saved === undefined) delete process.env[PROMETHEUS_TARGETS_ENV];
            else process.env[PROMETHEUS_TARGETS_ENV] = saved;
            for (const gateway of started.splice(0)) await gateway.stop();
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("faults", () => {
    it("refuses values outside their ranges with one line", async () => {
        const gateway = await StandInGateway.start(router);
        try {
            assert.throws(() => gateway.faults.set("v2", { errorPercent: 120 }), {
                message: "fault for v2: errorPercent is 120; allowed: a number from 0 to 100",
            });
            assert.throws(() => gateway.faults.set("v2", { errorPercent: Number.NaN }), {
                message: "fault for v2: errorPercent is null; allowed: a number from 0 to 100",
            });
            assert.throws(() => gateway.faults.set("v1", { delayMs: -5 }), {
                message: "fault for v1: delayMs is -5; allowed: a number of milliseconds from 0 to 600000",
            });
            assert.equal(gateway.faults.get("v2"), undefined, "a refused fault is not set");
        } finally {
            await gateway.stop();
        }
    });

    it("fails the n-th answer exactly when the share says: 20% the 5th and 10th, 50% every 2nd, 0% none, 100% all", async () => {
        const gateway = await StandInGateway.start(router);
        try {
            const failing = (version: string, n: number) =>
                Array.from({ length: n }, (_, i) => (gateway.faults.next(version).fail ? i + 1 : 0)).filter((i) => i > 0);
            gateway.faults.set("v1", { errorPercent: 20 }).set("v2", { errorPercent: 50 }).set("v3", { errorPercent: 0 }).set("v4", { errorPercent: 100 });
            assert.deepEqual(failing("v1", 10), [5, 10]);
            assert.deepEqual(failing("v2", 6), [2, 4, 6]);
            assert.deepEqual(failing("v3", 5), []);
            assert.deepEqual(failing("v4", 3), [1, 2, 3]);
            gateway.faults.set("v1", { errorPercent: 20 });
            assert.deepEqual(failing("v1", 5), [5], "setting again starts the count afresh");
            await gateway.reset();
            assert.deepEqual(failing("v1", 10), [], "reset() heals every version");
        } finally {
            await gateway.stop();
        }
    });

    it("keeps the broken-page override alongside faults: the answers that do not fail serve the override", async () => {
        const gateway = await StandInGateway.start(router);
        try {
            gateway.serveWrongPage(VERSIONS.v2.image);
            gateway.faults.set("v2", { errorPercent: 50 });
            const first = await fetchPage(gateway, "v2");
            const second = await fetchPage(gateway, "v2");
            assert.deepEqual([first.status, first.body.includes(COW), first.body.includes(HOTDOG)], [200, true, false], "the override, not v2's own page");
            assert.equal(second.status, 503);
            gateway.faults.clear();
            assert.equal((await fetchPage(gateway, "v2")).body, pageOf(VERSIONS.v1.image), "clearing faults leaves the override");
        } finally {
            await gateway.stop();
        }
    });
});
