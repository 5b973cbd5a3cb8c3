// The gate's pre-switch metric analysis end to end: one local control plane with istiod and its
// Prometheus, one stack on the real engine and the real Kubernetes provider, the stand-in gateway
// routing by istiod's push and exporting Istio's request metrics for that Prometheus to scrape. The
// gate sends synthetic traffic to the candidate through its test route while the analysis asks
// Prometheus what it saw, so every verdict below is drawn from real scraped numbers. A healthy v2 goes
// live (docs/analysis.md's two blocks, as written); a v2 answering 20% 5xx, a v2 answering late, an
// unreachable Prometheus and a query that matches nothing each fail `pulumi up` naming the check, the
// query as sent, the value and the bound, and the route istiod pushes stays on v1; and the rollback
// from a live v2 is not analysed at all, even with Prometheus down. Each test brings the stack to the
// state it starts from (EngineStack.deploy and reach), so any one of them runs alone.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { LocalCluster } from "../support/cluster";
import { APP_NAMESPACE, COW, GATEWAY_SELECTOR, HOST, HOTDOG, INGRESS_NAMESPACE, NO_INSTALLS, ROOT, configKey } from "../support/constants";
import { EngineStack, liveWeights, requirePulumi } from "../support/engine";
import { closedPort } from "../support/faults";
import { fetchPage, type StandInGateway } from "../support/gateway";
import { createGatewayService, createTlsSecret, IstioRoutes, istioTable } from "../support/istio-routes";
import { readmeBlocks, runBlock, type ReadmeBlock } from "../support/readme";

const DOC = path.join(ROOT, "docs", "analysis.md");
/**
 * Short analyses: two measurements 5 s apart (Prometheus scrapes every second), each over the last
 * 5 s; at 10 synthetic requests a second, v2 has about 50 requests in a window, minRequests asks 5.
 */
const ANALYSIS = JSON.stringify({
    trafficPerSecond: 10,
    checks: [
        { name: "success-rate", metric: "success-rate", min: 99, interval: "5s", count: 2, minRequests: 5 },
        { name: "request-duration", metric: "request-duration", max: 500, interval: "5s", count: 2, minRequests: 5 },
    ],
});
/** A custom query over a metric nobody exports: Prometheus answers, with no series. */
const NO_DATA_QUERY = 'sum(rate(cowsay_never_exported_total{destination_workload="{{ workload }}"}[{{ interval }}]))';
const NO_DATA = JSON.stringify({
    trafficPerSecond: 10,
    checks: [{ name: "nothing-seen", query: NO_DATA_QUERY, min: 1, interval: "3s", count: 2, minRequests: 0 }],
});

/** v2's selector as the built-in queries resolve it (docs/analysis.md), written out: what a user reads in the error. */
const V2 = 'reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"';
const SUCCESS_RATE_V2 = `sum(rate(istio_requests_total{${V2},response_code!~"5.."}[5s])) / sum(rate(istio_requests_total{${V2}}[5s])) * 100`;
const DURATION_V2 = `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${V2}}[5s])))`;

/** How often the stand-in gateway reads istiod's push and the workloads: it serves the gate's synthetic traffic. */
const ROUTE_CACHE_MS = 1000;
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const NUMBER = "(\\d+(?:\\.\\d+)?)";

before(requirePulumi);

describe("the gate's pre-switch analysis (real engine, API server with istiod and Prometheus, stand-in gateway)", () => {
    let cluster: LocalCluster;
    let stack: EngineStack;
    let gateway: StandInGateway;
    let istio: IstioRoutes;
    let prometheusUrl: string;

    const set = (key: string, value: string) => stack.pulumi("config", "set", configKey(key), "--", value);
    const liveRoute = async () => liveWeights(await cluster.get("virtualservices.networking.istio.io", APP_NAMESPACE));
    /**
     * The live page once the gateway has caught up with istiod's push: its routes are read at most
     * every ROUTE_CACHE_MS, so a request right after the push may still take the route before it.
     * A few of its periods, then the page as it is (the caller's assertion says what came).
     */
    const livePage = async (wanted: string) => {
        const deadline = Date.now() + 5 * ROUTE_CACHE_MS;
        for (;;) {
            const page = await fetchPage(gateway);
            if (page.body.includes(wanted) || Date.now() > deadline) return page;
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
    };
    /** v1 live, every version healthy; `changes` on top of the suite's config. */
    const v1Live = async (changes: Record<string, string | undefined> = {}) => {
        await gateway.reset();
        await stack.deploy(changes);
    };
    /**
     * After a switch the analysis refused: the route object on the server, istiod's push and the
     * gateway's answer all still v1; the outputs say v1; no lock and no pending operation left.
     */
    const expectStillOnV1 = async () => {
        assert.deepEqual(await liveRoute(), { v1: 100 });
        await istio.expectGateway(istioTable("v1"));
        const page = await fetchPage(gateway);
        assert.equal(page.status, 200);
        assert.ok(page.body.includes(COW), `v1 still answers the live traffic: ${page.body}`);
        const outputs = JSON.parse((await stack.pulumi("stack", "output", "--json")).stdout) as Record<string, unknown>;
        assert.equal(outputs.activeVersion, "v1");
        assert.deepEqual(stack.locks(), [], "a lock was left");
        const exported = JSON.parse((await stack.pulumi("stack", "export")).stdout) as { deployment: { pending_operations?: unknown[] } };
        assert.deepEqual(exported.deployment.pending_operations ?? [], [], "pending operations were left");
    };
    /** `pulumi up` to v2, which must fail; its output. */
    const switchToV2Fails = async () => {
        await set("activeVersion", "v2");
        return stack.upFails();
    };

    before(async () => {
        cluster = await LocalCluster.up({ crds: true, istiod: true });
        assert.ok(cluster.prometheus !== undefined, "the control plane runs a Prometheus");
        prometheusUrl = cluster.prometheus.url;
        // What a cluster with the gateway chart and cert-manager has (the installs are off here).
        await createGatewayService(cluster, INGRESS_NAMESPACE, GATEWAY_SELECTOR);
        await createTlsSecret(cluster, INGRESS_NAMESPACE, HOST);
        istio = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR });
        // The synthetic traffic is ten requests a second: read istiod's push once a second, not per request.
        gateway = await istio.startGateway({ routeCacheMs: ROUTE_CACHE_MS });
        stack = await EngineStack.create({
            config: {
                ...NO_INSTALLS,
                smokeCheckTimeout: "30",
                activeVersion: "v1",
                gatewayUrl: `https://${gateway.address}`,
                prometheusUrl,
                analysis: ANALYSIS,
            },
            target: "cluster",
            env: cluster.env,
        });
    });
    after(async () => {
        await gateway?.stop().catch(() => undefined);
        stack?.dispose();
        await cluster?.down();
    });

    it("a healthy v2: docs/analysis.md's blocks, as written, judge it on Prometheus's numbers, print every measurement, and move the route", async () => {
        await v1Live({ prometheusUrl: undefined, analysis: undefined });
        const blocks = readmeBlocks(DOC);
        assert.deepEqual(
            blocks.map((b) => b.id),
            ["analysis-setup", "analysis-switch"],
            "every e2e block of docs/analysis.md is run here",
        );
        const env = { ...stack.env, PROMETHEUS_URL: prometheusUrl };
        const setup = await runBlock(blocks[0], stack.dir, env);
        assert.equal(setup.code, 0, setup.output);
        assert.match(readFileSync(path.join(stack.dir, "Pulumi.e2e.yaml"), "utf8"), /:prometheusUrl:\n\s+secure: /, "the URL is kept as a secret");

        const switched = await runBlock(blocks.find((b) => b.id === "analysis-switch") as ReadmeBlock, stack.dir, env);
        assert.equal(switched.code, 0, switched.output);
        const out = switched.output;
        assert.match(out, /gate: v2 answered with its own page/);
        assert.match(out, /gate: analysing v2 for up to 20 s on 5 synthetic requests a second through its test route/);
        // Every measurement, with its value: a healthy v2 answers every request, fast.
        for (const index of [1, 2]) {
            const rate = new RegExp(`analysis: v2 success-rate ${index}/2: passed: ${NUMBER} within min 99`).exec(out);
            assert.ok(rate !== null, out);
            assert.equal(Number(rate[1]), 100, "no 5xx at all");
            const duration = new RegExp(`analysis: v2 request-duration ${index}/2: passed: ${NUMBER} within max 500`).exec(out);
            assert.ok(duration !== null, out);
            assert.ok(Number(duration[1]) > 0 && Number(duration[1]) <= 500, duration[0]);
            console.log(`healthy v2, measurement ${index}/2: success-rate ${rate[1]}, request-duration p99 ${duration[1]} ms`);
        }
        // The block keeps the URL secret, and Pulumi masks a secret's text wherever a provider prints it.
        assert.match(out, /gate: analysis of v2 passed: success-rate 2\/2, request-duration 2\/2 at \[secret\]/);
        assert.ok(!out.includes(prometheusUrl), "the secret URL is never printed");
        assert.deepEqual(await liveRoute(), { v2: 100 });
        await istio.expectGateway(istioTable("v2"));
        const page = await livePage(HOTDOG);
        assert.ok(page.body.includes(HOTDOG), `v2 answers the live traffic: ${page.body}`);
        stack.remember("v2 live, judged");
    });

    it("the rollback from a live v2 is not analysed: it passes with Prometheus unreachable", async () => {
        await stack.reach("v2 live, judged", async () => {
            await gateway.reset();
            await stack.deploy({}, { activeVersion: "v2" });
        });
        const port = await closedPort();
        await set("prometheusUrl", `http://127.0.0.1:${port}`);
        await set("activeVersion", "v1");
        const up = await stack.pulumi("up", "--yes", "--skip-preview", "--non-interactive");
        const out = up.stdout + up.stderr;
        assert.match(out, /gate: not fetching v1: live already, or live just before this switch \(a rollback\)/);
        assert.doesNotMatch(out, /analysing|analysis:/, "nothing was analysed");
        assert.deepEqual(await liveRoute(), { v1: 100 });
        await istio.expectGateway(istioTable("v1"));
        assert.ok((await livePage(COW)).body.includes(COW));
    });

    it("a v2 answering 20% 5xx fails the switch with success-rate, its query, the value and the bound; the route stays on v1", async () => {
        await v1Live();
        gateway.faults.set("v2", { errorPercent: 20 });
        const out = await switchToV2Fails();
        const line = new RegExp(
            `gate failed: analysis of v2 failed: check success-rate measurement [12]/2: ${NUMBER} is below min 99 \\(bound: min 99\\); ` +
                `query at ${escape(prometheusUrl)}: ${escape(SUCCESS_RATE_V2)}; the route was not changed and traffic stays where it was`,
        ).exec(out);
        assert.ok(line !== null, out);
        const value = Number(line[1]);
        assert.ok(value > 50 && value < 99, `a fifth of v2's answers fail: ${value}`);
        console.log(`v2 with 20% 5xx: success-rate ${value}`);
        // The failure came one interval after the errors, not at the end of the analysis.
        assert.doesNotMatch(out, /analysis: v2 success-rate 2\/2: passed/);
        await expectStillOnV1();
    });

    it("a v2 answering 800 ms late fails the switch with request-duration, its query, the value and the bound; the route stays on v1", async () => {
        await v1Live();
        gateway.faults.set("v2", { delayMs: 800 });
        const out = await switchToV2Fails();
        const line = new RegExp(
            `gate failed: analysis of v2 failed: check request-duration measurement [12]/2: ${NUMBER} is above max 500 \\(bound: max 500\\); ` +
                `query at ${escape(prometheusUrl)}: ${escape(DURATION_V2)}; the route was not changed`,
        ).exec(out);
        assert.ok(line !== null, out);
        // Every answer took at least 800 ms: the p99 lies at the top of Envoy's 500-1000 bucket or above.
        assert.ok(Number(line[1]) >= 800, `p99 ${line[1]} ms`);
        console.log(`v2 800 ms late: request-duration p99 ${line[1]} ms`);
        // The success rate was fine: it is the duration, not an error, that refused v2.
        assert.match(out, /analysis: v2 success-rate 1\/2: passed: 100 within min 99/);
        await expectStillOnV1();
    });

    it("an unreachable Prometheus never passes: the switch is inconclusive, so refused; the route stays on v1", async () => {
        const port = await closedPort();
        await v1Live({ prometheusUrl: `http://127.0.0.1:${port}` });
        const out = await switchToV2Fails();
        const shown = escape(`http://127.0.0.1:${port}`);
        assert.match(
            out,
            new RegExp(
                `gate failed: analysis of v2 was inconclusive \\(not a pass\\): check (success-rate|request-duration) measurement 1/2: ` +
                    `Prometheus did not answer \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); unreachable is inconclusive \\(bound: (min 99|max 500)\\); ` +
                    `query at ${shown}: (${escape(SUCCESS_RATE_V2)}|${escape(DURATION_V2)}); the route was not changed`,
            ),
        );
        await expectStillOnV1();
    });

    it("a query that matches nothing is no data, inconclusive by default: the switch is refused; the route stays on v1", async () => {
        await v1Live({ analysis: NO_DATA });
        const out = await switchToV2Fails();
        const query = 'sum(rate(cowsay_never_exported_total{destination_workload="cowsay-nginx-v2"}[3s]))';
        assert.match(
            out,
            new RegExp(
                `gate failed: analysis of v2 was inconclusive \\(not a pass\\): check nothing-seen measurement 1/2: the query returned no data; noData is inconclusive ` +
                    `\\(bound: min 1\\); query at ${escape(prometheusUrl)}: ${escape(query)}; the route was not changed`,
            ),
        );
        await expectStillOnV1();
    });
});
