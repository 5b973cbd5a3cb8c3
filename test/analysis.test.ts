// The metric analysis without a cluster: the analysis config refused field by field (PromQL by
// Prometheus's own grammar), the built-in queries as resolved for a version, each measurement's
// verdict (never a pass for no data, too little traffic or an unreachable Prometheus unless asked),
// the limits that end a check, the early stop at the first failure, and the Prometheus HTTP client
// against a local server that answers as Prometheus's API does (auth, no series, errors).
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { minimumSeconds, parseAnalysis, promqlError, resolveChecks, type AnalysisSettings, type Subject } from "../lib/analysis/checks";
import { analyse, checkEnd, judge, queryPrometheus, type Verdict } from "../lib/analysis/judge";
import { parseSettings } from "../config";
import { runAnalysis, type GateAnalysis, type GateInputs, type VersionCheck } from "../dynamic/gate";
import { DEPLOYMENT, find, podLabels, runProgram } from "./support/helpers";

const GATEWAY = "https://203.0.113.10";
const PROMETHEUS = "http://127.0.0.1:9090";
const V2: Subject = { namespace: "cowsay", workload: "cowsay-nginx-v2", version: "v2" };
const V1: Subject = { namespace: "cowsay", workload: "cowsay-nginx-v1", version: "v1" };
const analysisOf = (checks: unknown[]): AnalysisSettings => parseAnalysis({ checks });
const oneCheck = (check: Record<string, unknown>) => resolveChecks(analysisOf([{ name: "c", ...check }]), V2, V1)[0];

describe("the analysis config", () => {
    // [what, analysis value, exact message]
    const BAD: [string, string, string][] = [
        ["not JSON", "{checks", 'Invalid config analysis: "{checks" is not valid JSON; expected an object.'],
        ["an unknown field", '{"preswitch":true}', "Invalid config analysis.preswitch: is not a known field; allowed: preSwitch, trafficPerSecond, checks."],
        [
            "a misspelt check field",
            '{"checks":[{"name":"a","metric":"success-rate","mni":99}]}',
            "Invalid config analysis.checks[0].mni: is not a known field; allowed: name, metric, query, min, max, vsLive, interval, count, failureLimit, consecutiveFailureLimit, minRequests, noData, unreachable.",
        ],
        [
            "a bad interval",
            '{"checks":[{"name":"a","metric":"success-rate","min":99,"interval":"30"}]}',
            'Invalid config analysis.checks[0].interval: is "30"; allowed: a duration such as 30s, 2m or 1h.',
        ],
        [
            "zero measurements",
            '{"checks":[{"name":"a","metric":"success-rate","min":99,"count":0}]}',
            "Invalid config analysis.checks[0].count: is 0; allowed: an integer from 1 to 100.",
        ],
        [
            "noData passed as a word",
            '{"checks":[{"name":"a","metric":"success-rate","min":99,"noData":"ok"}]}',
            'Invalid config analysis.checks[0].noData: is "ok"; allowed: inconclusive, fail, pass.',
        ],
        [
            "no bound",
            '{"checks":[{"name":"a","metric":"success-rate"}]}',
            "Invalid config analysis.checks[0]: has no bound; allowed: min, max or vsLive (at least one).",
        ],
        [
            "a max on success-rate",
            '{"checks":[{"name":"a","metric":"success-rate","max":1}]}',
            "Invalid config analysis.checks[0].max: is set on success-rate; allowed: min (the least percent of non-5xx answers).",
        ],
        [
            "a custom check without query",
            '{"checks":[{"name":"a","metric":"custom","max":1}]}',
            "Invalid config analysis.checks[0].query: is missing; a custom check needs a PromQL query.",
        ],
        [
            "a query on a built-in",
            '{"checks":[{"name":"a","metric":"request-duration","query":"up","max":1}]}',
            "Invalid config analysis.checks[0].query: is set on the built-in metric request-duration; allowed: a query only with metric custom (or no metric).",
        ],
        [
            "broken PromQL",
            '{"checks":[{"name":"a","query":"sum(rate(x[{{ interval }}])","max":1}]}',
            'Invalid config analysis.checks[0].query: "sum(rate(x[{{ interval }}])" is not valid PromQL: with its templates filled in, the parser stops at character 17 (the end: something is missing).',
        ],
        [
            "an unknown template",
            '{"checks":[{"name":"a","query":"up{job=\\"{{ job }}\\"}","max":1}]}',
            'Invalid config analysis.checks[0].query: "up{job=\\"{{ job }}\\"}" uses the unknown template {{ job }}; allowed: {{ namespace }}, {{ workload }}, {{ version }}, {{ interval }}.',
        ],
        [
            "two checks of one name",
            '{"checks":[{"name":"a","metric":"success-rate","min":99},{"name":"a","metric":"request-duration","max":9}]}',
            'Invalid config analysis.checks[1].name: is "a", already the name of another check; allowed: a name used once.',
        ],
        [
            "an hour and more",
            '{"checks":[{"name":"a","metric":"success-rate","min":99,"interval":"1h","count":2}]}',
            "Invalid config analysis.checks[0]: takes 7200 s (count 2 × interval 1h); allowed: at most 3600 s.",
        ],
        [
            "min above max",
            '{"checks":[{"name":"a","query":"up","min":5,"max":1}]}',
            "Invalid config analysis.checks[0].min: is 5, above max 1; no value could pass.",
        ],
        ["no checks", '{"checks":[]}', "Invalid config analysis.checks: is empty; allowed: at least one check (leave prometheusUrl unset for no analysis)."],
    ];
    for (const [what, value, message] of BAD) {
        it(`refuses ${what} in one line`, () => {
            assert.throws(
                () => parseSettings({ analysis: value }),
                (err: Error) => err.message === message && !err.message.includes("\n"),
            );
        });
    }

    it("refuses a token without a Prometheus, and keeps both secret-capable", () => {
        assert.throws(() => parseSettings({ prometheusToken: "t" }), /prometheusToken: is set but prometheusUrl is ""/);
        const settings = parseSettings(
            { prometheusUrl: "https://user:pw@prom.example:9090/", prometheusToken: "t", gatewayUrl: GATEWAY },
            new Set(["prometheusUrl", "prometheusToken"]),
        );
        assert.deepEqual(settings.analysis?.provider, { url: "https://user:pw@prom.example:9090", token: "t" });
    });

    it("is off without prometheusUrl, and {} runs the two built-in checks with the defaults", () => {
        assert.equal(parseSettings({}).analysis, undefined);
        const analysis = parseSettings({ prometheusUrl: "http://127.0.0.1:9090", gatewayUrl: GATEWAY }).analysis;
        assert.deepEqual(
            analysis?.checks.map((c) => [c.name, c.metric, c.min, c.max, c.intervalSeconds, c.count, c.minRequests, c.noData, c.unreachable]),
            [
                ["success-rate", "success-rate", 99, undefined, 30, 3, 10, "inconclusive", "inconclusive"],
                ["request-duration", "request-duration", undefined, 500, 30, 3, 10, "inconclusive", "inconclusive"],
            ],
        );
        assert.equal(analysis?.preSwitch, true);
    });

    it("refuses a pre-switch analysis without the gate that runs it, and runs without one when preSwitch is false", () => {
        assert.throws(
            () => parseSettings({ prometheusUrl: PROMETHEUS }),
            (err: Error) =>
                err.message ===
                "Invalid config analysis.preSwitch: is true, but the gate that runs it is off (gatewayUrl is unset); set gatewayUrl, or set analysis.preSwitch to false to analyse only during npm run fleet -- rollout.",
        );
        assert.throws(
            () => parseSettings({ prometheusUrl: PROMETHEUS, gatewayUrl: GATEWAY, smokeCheck: "false" }),
            /the gate that runs it is off \(smokeCheck is false\); set smokeCheck to true and gatewayUrl/,
        );
        assert.equal(parseSettings({ prometheusUrl: PROMETHEUS, analysis: '{"preSwitch":false}' }).analysis?.preSwitch, false);
    });

    it("accepts PromQL that Prometheus's grammar accepts, with every template", () => {
        assert.equal(
            promqlError(
                'sum(rate(istio_requests_total{destination_workload="{{ workload }}",destination_version="{{ version }}",destination_workload_namespace="{{ namespace }}"}[{{ interval }}]))',
            ),
            undefined,
        );
        assert.equal(promqlError("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"), undefined);
        assert.match(promqlError("rate(x[5m]) +") ?? "", /not valid PromQL/);
    });
});

describe("the queries of a check", () => {
    it("selects the version's workload as its sidecar reports it, over the check's interval", () => {
        const [rate, p99] = resolveChecks(
            parseAnalysis({
                checks: [
                    { name: "s", metric: "success-rate", min: 99, interval: "10s" },
                    { name: "d", metric: "request-duration", max: 250 },
                ],
            }),
            V2,
            undefined,
        );
        assert.equal(
            rate.query,
            'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5.."}[10s])) / ' +
                'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[10s])) * 100',
        );
        assert.equal(
            p99.query,
            'histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[30s])))',
        );
        assert.equal(
            rate.requestsQuery,
            'sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[10s]))',
        );
        for (const q of [rate.query, p99.query, rate.requestsQuery]) assert.equal(promqlError(q), undefined);
        assert.equal(rate.baselineQuery, undefined, "no comparison without vsLive");
        assert.equal(rate.bound, "min 99");
    });

    it("compares with the live version's own value only with vsLive, and says so in the bound", () => {
        const check = oneCheck({ metric: "request-duration", max: 500, vsLive: 50 });
        assert.match(check.baselineQuery ?? "", /destination_workload="cowsay-nginx-v1"/);
        assert.equal(check.bound, "max 500, v1's own + 50");
    });

    it("fills a custom query's templates", () => {
        const check = oneCheck({ query: 'sum(x{ns="{{ namespace }}",v="{{version}}",w="{{ workload }}"}[{{ interval }}])', max: 1, interval: "2m" });
        assert.equal(check.query, 'sum(x{ns="cowsay",v="v2",w="cowsay-nginx-v2"}[120s])');
    });

    it("takes at least its slowest check's count × interval", () => {
        assert.equal(
            minimumSeconds(
                analysisOf([
                    { name: "a", metric: "success-rate", min: 9, interval: "5s", count: 4 },
                    { name: "b", metric: "request-duration", max: 9, interval: "1m" },
                ]),
            ),
            180,
        );
    });
});

describe("one measurement's verdict", () => {
    const rate = oneCheck({ metric: "success-rate", min: 99 });
    const cases: [string, Parameters<typeof judge>[0], Parameters<typeof judge>[1], Verdict, RegExp][] = [
        ["healthy", rate, { value: 100, requests: 50 }, "passed", /^100 within min 99$/],
        ["20% errors", rate, { value: 80, requests: 50 }, "failed", /^80 is below min 99$/],
        ["too little traffic is not a failure", rate, { value: 0, requests: 3 }, "inconclusive", /3 requests in 30s, fewer than minRequests 10/],
        ["no data is not a pass", rate, { requests: 50 }, "inconclusive", /no data; noData is inconclusive/],
        ["no data as failure", oneCheck({ metric: "success-rate", min: 99, noData: "fail" }), { requests: 50 }, "failed", /noData is fail/],
        ["an unreachable Prometheus is not a pass", rate, { error: "connect ECONNREFUSED" }, "inconclusive", /did not answer \(connect ECONNREFUSED\)/],
        [
            "unreachable as pass, when asked",
            oneCheck({ metric: "success-rate", min: 99, unreachable: "pass" }),
            { error: "x" },
            "passed",
            /unreachable is pass/,
        ],
        ["slow", oneCheck({ metric: "request-duration", max: 500 }), { value: 2400, requests: 40 }, "failed", /^2400 is above max 500$/],
        [
            "worse than live",
            oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }),
            { value: 97, requests: 40, baseline: 99.5, baselineRequests: 40 },
            "failed",
            /97 is below the live version's 99.5 - 1/,
        ],
        [
            "as good as live",
            oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }),
            { value: 99, requests: 40, baseline: 99.5, baselineRequests: 40 },
            "passed",
            /live: 99.5/,
        ],
        [
            "live without traffic: the absolute bound decides",
            oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }),
            { value: 95, requests: 40, baseline: 100, baselineRequests: 0 },
            "passed",
            /not compared with the live version/,
        ],
        [
            "only a relative bound and an idle live version",
            oneCheck({ metric: "request-duration", vsLive: 10 }),
            { value: 5, requests: 40, baselineRequests: 0 },
            "inconclusive",
            /too little traffic to compare/,
        ],
    ];
    for (const [what, check, sample, verdict, reason] of cases) {
        it(what, () => {
            const got = judge(check, sample);
            assert.equal(got.verdict, verdict);
            assert.match(got.reason, reason);
        });
    }
});

describe("when a check ends", () => {
    const check = (over: Record<string, unknown>) => oneCheck({ metric: "success-rate", min: 99, count: 4, ...over });
    it("fails at the first failure by default, passes after count passes", () => {
        assert.equal(checkEnd(check({}), ["failed"]), "failed");
        assert.equal(checkEnd(check({}), ["passed", "passed", "passed"]), undefined);
        assert.equal(checkEnd(check({}), ["passed", "passed", "passed", "passed"]), "passed");
    });
    it("tolerates failureLimit failures, and no more", () => {
        assert.equal(checkEnd(check({ failureLimit: 1 }), ["failed", "passed"]), undefined);
        assert.equal(checkEnd(check({ failureLimit: 1 }), ["failed", "passed", "failed"]), "failed");
    });
    it("fails on consecutive failures even under the failure limit (flapping tolerated, a streak is not)", () => {
        const flappy = check({ failureLimit: 3, consecutiveFailureLimit: 2 });
        assert.equal(checkEnd(flappy, ["failed", "passed", "failed", "passed"]), "passed");
        assert.equal(checkEnd(flappy, ["passed", "failed", "failed"]), "failed");
    });
    it("never passes with an inconclusive measurement", () => {
        assert.equal(checkEnd(check({}), ["passed", "inconclusive"]), "inconclusive");
    });
});

describe("analyse", () => {
    // Virtual time: the earliest sleeper wakes next, the clock jumps to its time; between wake-ups
    // setImmediate lets the woken check run its (immediately answered) queries.
    const fakeTime = () => {
        let t = 1_000_000;
        const waiting: { at: number; wake: () => void }[] = [];
        const tick = () => {
            waiting.sort((a, b) => a.at - b.at);
            const next = waiting.shift();
            if (next === undefined) return;
            t = Math.max(t, next.at);
            next.wake();
            setImmediate(tick);
        };
        const sleep = (ms: number, signal?: AbortSignal) =>
            new Promise<void>((resolve) => {
                const entry = { at: t + ms, wake: resolve };
                if (signal?.aborted === true) return resolve();
                signal?.addEventListener("abort", () => {
                    waiting.splice(waiting.indexOf(entry), 1);
                    resolve();
                });
                if (waiting.push(entry) === 1) setImmediate(tick);
            });
        return { now: () => t, sleep };
    };

    it("measures every interval and passes when every check passes, reporting each measurement", async () => {
        const lines: string[] = [];
        const checks = resolveChecks(analysisOf([{ name: "rate", metric: "success-rate", min: 99, interval: "10s", count: 3 }]), V2, undefined);
        const result = await analyse({ url: "http://prom" }, checks, "v2", {
            report: (l) => lines.push(l),
            ...fakeTime(),
            query: (q) => Promise.resolve(q.startsWith("sum(increase") ? 40 : 100),
        });
        assert.equal(result.verdict, "passed");
        assert.deepEqual(
            result.measurements.map((m) => [m.index, m.at]),
            [
                [1, new Date(1_010_000).toISOString()],
                [2, new Date(1_020_000).toISOString()],
                [3, new Date(1_030_000).toISOString()],
            ],
        );
        assert.equal(lines.length, 3);
        assert.match(lines[0], /^analysis: v2 rate 1\/3: passed: 100 within min 99$/);
    });

    it("stops every check at the first failure and names the query, the value and the bound", async () => {
        const asked: string[] = [];
        const checks = resolveChecks(
            analysisOf([
                { name: "rate", metric: "success-rate", min: 99, interval: "5s", count: 3 },
                { name: "p99", metric: "request-duration", max: 500, interval: "20s", count: 3 },
            ]),
            V2,
            undefined,
        );
        const result = await analyse({ url: "http://user:secret@prom:9090" }, checks, "v2", {
            report: () => undefined,
            ...fakeTime(),
            query: (q) => (asked.push(q), Promise.resolve(q.startsWith("sum(increase") ? 50 : q.startsWith("histogram") ? 20 : 80)),
        });
        assert.equal(result.verdict, "failed");
        assert.equal(result.measurements.length, 1, "p99's first measurement (at 20 s) never ran");
        assert.ok(!asked.some((q) => q.startsWith("histogram")));
        assert.match(
            result.summary,
            /^analysis of v2 failed: check rate measurement 1\/3: 80 is below min 99 \(bound: min 99\); query at http:\/\/prom:9090: sum\(rate\(istio_requests_total/,
        );
        assert.ok(!result.summary.includes("secret"));
    });

    it("is inconclusive, not passed, without traffic", async () => {
        const checks = resolveChecks(analysisOf([{ name: "rate", metric: "success-rate", min: 99, interval: "5s", count: 2 }]), V2, undefined);
        const result = await analyse({ url: "http://prom" }, checks, "v2", { report: () => undefined, ...fakeTime(), query: () => Promise.resolve(undefined) });
        assert.equal(result.verdict, "inconclusive");
        assert.match(result.summary, /was inconclusive \(not a pass\).*fewer than minRequests 10/);
    });

    it("stops at once when its signal fires", async () => {
        const controller = new AbortController();
        const checks = resolveChecks(analysisOf([{ name: "rate", metric: "success-rate", min: 99, interval: "1h", count: 1 }]), V2, undefined);
        const started = Date.now();
        const pending = analyse({ url: "http://prom" }, checks, "v2", {
            report: () => undefined,
            signal: controller.signal,
            query: () => Promise.resolve(100),
        });
        setTimeout(() => controller.abort("Ctrl-C"), 50);
        const result = await pending;
        assert.equal(result.verdict, "inconclusive");
        assert.match(result.summary, /stopped: Ctrl-C/);
        assert.ok(Date.now() - started < 5000);
    });
});

describe("queryPrometheus", () => {
    let server: Server;
    let url = "";
    const seen: IncomingMessage[] = [];
    let answer: { status: number; body: unknown } = { status: 200, body: {} };
    before(async () => {
        server = createServer((req, res) => {
            seen.push(req);
            res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => server.close());
    const vector = (...values: string[]) => ({ status: "success", data: { resultType: "vector", result: values.map((v) => ({ metric: {}, value: [1, v] })) } });

    it("reads a one-series vector, sending the query and the bearer token", async () => {
        answer = { status: 200, body: vector("99.5") };
        assert.equal(await queryPrometheus({ url: `${url}/prom`, token: "tok" }, 'sum(up{job="x"})'), 99.5);
        const req = seen[seen.length - 1];
        assert.equal(req.headers.authorization, "Bearer tok");
        assert.equal(new URL(req.url ?? "", "http://x").pathname, "/prom/api/v1/query");
        assert.equal(new URL(req.url ?? "", "http://x").searchParams.get("query"), 'sum(up{job="x"})');
    });
    it("sends basic auth from the URL", async () => {
        answer = { status: 200, body: vector("1") };
        await queryPrometheus({ url: url.replace("http://", "http://me:p%40ss@") }, "up");
        assert.equal(seen[seen.length - 1].headers.authorization, `Basic ${Buffer.from("me:p@ss").toString("base64")}`);
    });
    it("gives no value for no series and for NaN (0/0: no requests)", async () => {
        answer = { status: 200, body: vector() };
        assert.equal(await queryPrometheus({ url }, "up"), undefined);
        answer = { status: 200, body: vector("NaN") };
        assert.equal(await queryPrometheus({ url }, "up"), undefined);
    });
    it("rejects more than one series, a refused query and an unreachable server", async () => {
        answer = { status: 200, body: vector("1", "2") };
        await assert.rejects(queryPrometheus({ url }, "up"), /returned 2 series; a check needs one value/);
        answer = { status: 400, body: { status: "error", errorType: "bad_data", error: "parse error" } };
        await assert.rejects(queryPrometheus({ url }, "up"), /HTTP 400: parse error/);
        answer = { status: 401, body: "Unauthorized" };
        await assert.rejects(queryPrometheus({ url }, "up"), /HTTP 401/);
        await assert.rejects(queryPrometheus({ url: "http://127.0.0.1:1" }, "up"), /ECONNREFUSED/);
    });
});

describe("the program's gate with a Prometheus", () => {
    const GATE = "pulumi-nodejs:dynamic/cowsay-bluegreen:Gate";
    const analysis = JSON.stringify({ checks: [{ name: "rate", metric: "success-rate", min: 99, vsLive: 1, interval: "5s", count: 2 }], trafficPerSecond: 7 });
    const deployed = { trafficSplit: { v1: 100 }, versions: { v1: { image: "dougbtv/nginx-cowsay:v1" }, v2: { image: "dougbtv/nginx-cowsay:v2" } } };

    it("judges the version going live on its own workload, compared with the one live before, and keeps the Prometheus URL and token secret", async () => {
        const run = await runProgram(
            { gatewayUrl: GATEWAY, prometheusUrl: "https://u:p@prom.example", prometheusToken: "tok", analysis, activeVersion: "v2" },
            { previousOutputs: deployed, secretKeys: ["prometheusUrl", "prometheusToken"] },
        );
        const gate = find(run, GATE);
        const inputs = gate.inputs as { analysis: GateAnalysis; prometheusUrl: unknown; prometheusToken: unknown };
        assert.equal(inputs.analysis.trafficPerSecond, 7);
        const [check] = inputs.analysis.checks.v2;
        assert.match(check.query, /destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"/);
        assert.match(check.baselineQuery ?? "", /destination_workload="cowsay-nginx-v1"/);
        assert.equal(check.bound, "min 99, v1's own - 1");
        // What the mocks receive for a secret input: Pulumi's secret envelope, never the plain value.
        for (const key of ["prometheusUrl", "prometheusToken"] as const)
            assert.notEqual(typeof inputs[key], "string", `${key} is a secret: ${JSON.stringify(inputs[key])}`);
        // The workload the queries select is the Deployment whose pods run v2.
        assert.equal(podLabels(find(run, DEPLOYMENT, "cowsay-nginx-v2")).version, "v2");
    });

    it("leaves the gate's inputs as they were without prometheusUrl or with preSwitch false", async () => {
        const plain = find(await runProgram({ gatewayUrl: GATEWAY, activeVersion: "v2" }, { previousOutputs: deployed }), GATE).inputs;
        const off = find(
            await runProgram(
                { gatewayUrl: GATEWAY, activeVersion: "v2", prometheusUrl: PROMETHEUS, analysis: '{"preSwitch":false}' },
                { previousOutputs: deployed },
            ),
            GATE,
        ).inputs;
        assert.deepEqual(Object.keys(plain).sort(), Object.keys(off).sort());
        assert.ok(!("analysis" in plain) && !("prometheusUrl" in plain));
    });
});

describe("the gate's pre-switch analysis", () => {
    // A gateway that counts what reaches each version's test route, and a Prometheus that answers
    // each query with what the test says the candidate's metrics are.
    let gateway: Server;
    let prometheus: Server;
    let gatewayUrl = "";
    let prometheusUrl = "";
    const reached: string[] = [];
    let successRate: string | undefined = "100";
    before(async () => {
        gateway = createServer((req, res) => {
            reached.push(String(req.headers["x-cowsay-version"]));
            res.writeHead(200).end("ok");
        });
        prometheus = createServer((req, res) => {
            const query = new URL(req.url ?? "", "http://x").searchParams.get("query") ?? "";
            const value = query.startsWith("sum(increase") ? String(reached.length) : successRate;
            const result = value === undefined ? [] : [{ metric: {}, value: [Date.now() / 1000, value] }];
            res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "success", data: { resultType: "vector", result } }));
        });
        for (const server of [gateway, prometheus]) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
        prometheusUrl = `http://127.0.0.1:${(prometheus.address() as AddressInfo).port}`;
    });
    after(() => {
        gateway.close();
        prometheus.close();
    });
    const V2_CHECK: VersionCheck = { version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" };
    const inputs = (count: number): GateInputs => ({
        gatewayUrl,
        host: "cowsay.example.com",
        header: "x-cowsay-version",
        checks: [V2_CHECK],
        timeoutSeconds: 5,
        intervalMs: 10,
        prometheusUrl,
        analysis: {
            trafficPerSecond: 20,
            checks: { v2: resolveChecks(analysisOf([{ name: "rate", metric: "success-rate", min: 99, interval: "1s", count, minRequests: 5 }]), V2, V1) },
        },
    });

    it("sends synthetic traffic to the candidate's test route while it judges it, and passes a healthy one", async () => {
        reached.length = 0;
        successRate = "100";
        const lines: string[] = [];
        await runAnalysis(inputs(2), [V2_CHECK], { report: (l) => lines.push(l) });
        assert.ok(reached.length >= 20 && reached.every((v) => v === "v2"), `${reached.length} requests, all through v2's test route`);
        const after = reached.length;
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(reached.length, after, "the traffic stopped with the analysis");
        assert.ok(
            lines.some((l) => /^gate: analysis of v2 passed: rate 2\/2/.test(l)),
            lines.join("\n"),
        );
    });

    it("refuses a failing candidate with the query, the value and the bound, and the route stays", async () => {
        successRate = "80";
        await assert.rejects(
            runAnalysis(inputs(3), [V2_CHECK], { report: () => undefined }),
            (err: Error) =>
                /^gate failed: analysis of v2 failed: check rate measurement 1\/3: 80 is below min 99 \(bound: min 99\); query at http:\/\/127\.0\.0\.1:\d+: sum\(rate\(istio_requests_total\{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"/.test(
                    err.message,
                ) && err.message.endsWith("the route was not changed and traffic stays where it was"),
        );
    });

    it("never passes a candidate without data", async () => {
        successRate = undefined;
        await assert.rejects(
            runAnalysis(inputs(2), [V2_CHECK], { report: () => undefined }),
            /analysis of v2 was inconclusive \(not a pass\).*no data; noData is inconclusive/,
        );
    });

    it("stops at once on Ctrl-C, traffic included", async () => {
        successRate = "100";
        const controller = new AbortController();
        const started = Date.now();
        const pending = runAnalysis(inputs(100), [V2_CHECK], { report: () => undefined, signal: controller.signal });
        setTimeout(() => controller.abort("the update was cancelled (Ctrl-C)"), 200);
        await assert.rejects(pending, /^Error: gate stopped: the update was cancelled \(Ctrl-C\) during the analysis; the route was not changed/);
        assert.ok(Date.now() - started < 3000);
        const after = reached.length;
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(reached.length, after);
    });
});
