// The metric analysis without a cluster: the analysis config refused field by field (PromQL by
// Prometheus's own grammar), the built-in queries as resolved for a version, each measurement's
// verdict (never a pass for no data, too little traffic or an unreachable Prometheus unless asked),
// the limits that end a check, the early stop at the first failure, and the Prometheus HTTP client
// against a local server that answers as Prometheus's API does (auth, no series, errors).
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { minimumSeconds, parseAnalysis, promqlError, resolveChecks, type AnalysisSettings, type Subject } from "../components/analysis/checks";
import { analyse, checkEnd, judge, queryPrometheus, type Verdict } from "../components/analysis/judge";
import { parseSettings } from "../components/config";

const V2: Subject = { namespace: "cowsay", workload: "cowsay-nginx-v2", version: "v2" };
const V1: Subject = { namespace: "cowsay", workload: "cowsay-nginx-v1", version: "v1" };
const analysisOf = (checks: unknown[]): AnalysisSettings => parseAnalysis({ checks });
const oneCheck = (check: Record<string, unknown>) => resolveChecks(analysisOf([{ name: "c", ...check }]), V2, V1)[0];

describe("the analysis config", () => {
    // [what, analysis value, exact message]
    const BAD: [string, string, string][] = [
        ["not JSON", "{checks", 'Invalid config analysis: "{checks" is not valid JSON; expected an object.'],
        ["an unknown field", '{"preswitch":true}', "Invalid config analysis.preswitch: is not a known field; allowed: preSwitch, trafficPerSecond, checks."],
        ["a misspelt check field", '{"checks":[{"name":"a","metric":"success-rate","mni":99}]}', "Invalid config analysis.checks[0].mni: is not a known field; allowed: name, metric, query, min, max, vsLive, interval, count, failureLimit, consecutiveFailureLimit, minRequests, noData, unreachable."],
        ["a bad interval", '{"checks":[{"name":"a","metric":"success-rate","min":99,"interval":"30"}]}', 'Invalid config analysis.checks[0].interval: is "30"; allowed: a duration such as 30s, 2m or 1h.'],
        ["zero measurements", '{"checks":[{"name":"a","metric":"success-rate","min":99,"count":0}]}', "Invalid config analysis.checks[0].count: is 0; allowed: an integer from 1 to 100."],
        ["noData passed as a word", '{"checks":[{"name":"a","metric":"success-rate","min":99,"noData":"ok"}]}', 'Invalid config analysis.checks[0].noData: is "ok"; allowed: inconclusive, fail, pass.'],
        ["no bound", '{"checks":[{"name":"a","metric":"success-rate"}]}', "Invalid config analysis.checks[0]: has no bound; allowed: min, max or vsLive (at least one)."],
        ["a max on success-rate", '{"checks":[{"name":"a","metric":"success-rate","max":1}]}', "Invalid config analysis.checks[0].max: is set on success-rate; allowed: min (the least percent of non-5xx answers)."],
        ["a custom check without query", '{"checks":[{"name":"a","metric":"custom","max":1}]}', "Invalid config analysis.checks[0].query: is missing; a custom check needs a PromQL query."],
        ["a query on a built-in", '{"checks":[{"name":"a","metric":"request-duration","query":"up","max":1}]}', "Invalid config analysis.checks[0].query: is set on the built-in metric request-duration; allowed: a query only with metric custom (or no metric)."],
        ["broken PromQL", '{"checks":[{"name":"a","query":"sum(rate(x[{{ interval }}])","max":1}]}', 'Invalid config analysis.checks[0].query: "sum(rate(x[{{ interval }}])" is not valid PromQL: with its templates filled in, the parser stops at character 17 (the end: something is missing).'],
        ["an unknown template", '{"checks":[{"name":"a","query":"up{job=\\"{{ job }}\\"}","max":1}]}', 'Invalid config analysis.checks[0].query: "up{job=\\"{{ job }}\\"}" uses the unknown template {{ job }}; allowed: {{ namespace }}, {{ workload }}, {{ version }}, {{ interval }}.'],
        ["two checks of one name", '{"checks":[{"name":"a","metric":"success-rate","min":99},{"name":"a","metric":"request-duration","max":9}]}', 'Invalid config analysis.checks[1].name: is "a", already the name of another check; allowed: a name used once.'],
        ["an hour and more", '{"checks":[{"name":"a","metric":"success-rate","min":99,"interval":"1h","count":2}]}', "Invalid config analysis.checks[0]: takes 7200 s (count 2 × interval 1h); allowed: at most 3600 s."],
        ["min above max", '{"checks":[{"name":"a","query":"up","min":5,"max":1}]}', "Invalid config analysis.checks[0].min: is 5, above max 1; no value could pass."],
        ["no checks", '{"checks":[]}', "Invalid config analysis.checks: is empty; allowed: at least one check (leave prometheusUrl unset for no analysis)."],
    ];
    for (const [what, value, message] of BAD) {
        it(`refuses ${what} in one line`, () => {
            assert.throws(() => parseSettings({ analysis: value }), (err: Error) => err.message === message && !err.message.includes("\n"));
        });
    }

    it("refuses a token without a Prometheus, and keeps both secret-capable", () => {
        assert.throws(() => parseSettings({ prometheusToken: "t" }), /prometheusToken: is set but prometheusUrl is ""/);
        const settings = parseSettings({ prometheusUrl: "https://user:pw@prom.example:9090/", prometheusToken: "t" }, new Set(["prometheusUrl", "prometheusToken"]));
        assert.deepEqual(settings.analysis?.provider, { url: "https://user:pw@prom.example:9090", token: "t" });
    });

    it("is off without prometheusUrl, and {} runs the two built-in checks with the defaults", () => {
        assert.equal(parseSettings({}).analysis, undefined);
        const analysis = parseSettings({ prometheusUrl: "http://127.0.0.1:9090" }).analysis;
        assert.deepEqual(
            analysis?.checks.map((c) => [c.name, c.metric, c.min, c.max, c.intervalSeconds, c.count, c.minRequests, c.noData, c.unreachable]),
            [
                ["success-rate", "success-rate", 99, undefined, 30, 3, 10, "inconclusive", "inconclusive"],
                ["request-duration", "request-duration", undefined, 500, 30, 3, 10, "inconclusive", "inconclusive"],
            ],
        );
        assert.equal(analysis?.preSwitch, true);
    });

    it("accepts PromQL that Prometheus's grammar accepts, with every template", () => {
        assert.equal(promqlError('sum(rate(istio_requests_total{destination_workload="{{ workload }}",destination_version="{{ version }}",destination_workload_namespace="{{ namespace }}"}[{{ interval }}]))'), undefined);
        assert.equal(promqlError("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))"), undefined);
        assert.match(promqlError("rate(x[5m]) +") ?? "", /not valid PromQL/);
    });
});

describe("the queries of a check", () => {
    it("selects the version's workload as its sidecar reports it, over the check's interval", () => {
        const [rate, p99] = resolveChecks(parseAnalysis({ checks: [{ name: "s", metric: "success-rate", min: 99, interval: "10s" }, { name: "d", metric: "request-duration", max: 250 }] }), V2, undefined);
        assert.equal(
            rate.query,
            'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2",response_code!~"5.."}[10s])) / ' +
                'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[10s])) * 100',
        );
        assert.equal(p99.query, 'histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[30s])))');
        assert.equal(rate.requestsQuery, 'sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="cowsay",destination_workload="cowsay-nginx-v2"}[10s]))');
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
        assert.equal(minimumSeconds(analysisOf([{ name: "a", metric: "success-rate", min: 9, interval: "5s", count: 4 }, { name: "b", metric: "request-duration", max: 9, interval: "1m" }])), 180);
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
        ["unreachable as pass, when asked", oneCheck({ metric: "success-rate", min: 99, unreachable: "pass" }), { error: "x" }, "passed", /unreachable is pass/],
        ["slow", oneCheck({ metric: "request-duration", max: 500 }), { value: 2400, requests: 40 }, "failed", /^2400 is above max 500$/],
        ["worse than live", oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }), { value: 97, requests: 40, baseline: 99.5, baselineRequests: 40 }, "failed", /97 is below the live version's 99.5 - 1/],
        ["as good as live", oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }), { value: 99, requests: 40, baseline: 99.5, baselineRequests: 40 }, "passed", /live: 99.5/],
        ["live without traffic: the absolute bound decides", oneCheck({ metric: "success-rate", min: 90, vsLive: 1 }), { value: 95, requests: 40, baseline: 100, baselineRequests: 0 }, "passed", /not compared with the live version/],
        ["only a relative bound and an idle live version", oneCheck({ metric: "request-duration", vsLive: 10 }), { value: 5, requests: 40, baselineRequests: 0 }, "inconclusive", /too little traffic to compare/],
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
        assert.match(result.summary, /^analysis of v2 failed: check rate measurement 1\/3: 80 is below min 99 \(bound: min 99\); query at http:\/\/prom:9090: sum\(rate\(istio_requests_total/);
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
        const pending = analyse({ url: "http://prom" }, checks, "v2", { report: () => undefined, signal: controller.signal, query: () => Promise.resolve(100) });
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
