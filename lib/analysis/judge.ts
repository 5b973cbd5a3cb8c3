// The metric analysis at run time: every check measures its version through Prometheus's HTTP API
// (`/api/v1/query`), once per interval, `count` times, and each measurement is passed, failed or
// inconclusive; the analysis stops at the first check that fails (so a bad release swings back one
// interval after its fault shows) and passes only when every check passed. Nothing here decides
// what a verdict does: the gate refuses the switch, the fleet's rollout swings back.
//
// Runs where `pulumi` runs: in the gate's dynamic provider (Pulumi serializes these functions into
// it, so Node modules are required inside) and in the fleet tool. Never a pass by default: no data,
// too few requests and an unreachable Prometheus are inconclusive unless the check says otherwise.
import { pause } from "../pause";
import type { CheckSettings, ResolvedCheck } from "./checks";

/** Where Prometheus answers, and how to authenticate (user:password in the URL is basic auth). */
export interface MetricsProvider {
    readonly url: string;
    /** Sent as `Authorization: Bearer <token>`. */
    readonly token?: string;
}

export type Verdict = "passed" | "failed" | "inconclusive";

/** What one query pass read: undefined values mean the query returned no series (or NaN). */
export interface Sample {
    readonly value?: number;
    readonly requests?: number;
    readonly baseline?: number;
    readonly baselineRequests?: number;
    /** Prometheus could not be reached or refused the query. */
    readonly error?: string;
}

export interface Measurement {
    readonly check: string;
    /** 1-based, of `count`. */
    readonly index: number;
    readonly count: number;
    readonly at: string;
    /** The query as sent, templates filled. */
    readonly query: string;
    readonly value?: number;
    readonly requests?: number;
    readonly baseline?: number;
    readonly bound: string;
    readonly verdict: Verdict;
    /** Why, in words: "80.0 is below min 99", "4 requests in 30s, fewer than minRequests 10". */
    readonly reason: string;
}

export interface AnalysisResult {
    readonly verdict: Verdict;
    readonly measurements: readonly Measurement[];
    /** One line: for a failure or an inconclusive end, the check, its query, the value and the bound. */
    readonly summary: string;
}

export interface AnalysisContext {
    readonly report: (line: string) => void;
    readonly signal?: AbortSignal;
    /** For the tests: time and waiting. */
    readonly now?: () => number;
    readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
    /** For the tests: the query function (default: Prometheus's HTTP API at `provider`). */
    readonly query?: (promql: string) => Promise<number | undefined>;
}

const round = (value: number) => String(Number(value.toFixed(Math.abs(value) >= 100 ? 1 : 3)));

/** The URL without credentials, for messages. */
export function shownUrl(url: string): string {
    try {
        const parsed = new URL(url);
        return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`;
    } catch {
        return "<prometheusUrl>";
    }
}

const unknownVerdict = (when: CheckSettings["unreachable"]): Verdict => (when === "pass" ? "passed" : when === "fail" ? "failed" : "inconclusive");

/** The verdict of one measurement of `check` (pure: the rules of docs/analysis.md). */
export function judge(check: ResolvedCheck, sample: Sample): { verdict: Verdict; reason: string } {
    if (sample.error !== undefined) {
        return { verdict: unknownVerdict(check.unreachable), reason: `Prometheus did not answer (${sample.error}); unreachable is ${check.unreachable}` };
    }
    if (check.minRequests > 0 && (sample.requests ?? 0) < check.minRequests) {
        return {
            verdict: "inconclusive",
            reason: `${round(sample.requests ?? 0)} requests in ${check.intervalSeconds}s, fewer than minRequests ${check.minRequests}: too little traffic to judge`,
        };
    }
    if (sample.value === undefined) return { verdict: unknownVerdict(check.noData), reason: `the query returned no data; noData is ${check.noData}` };
    const value = sample.value;
    if (check.min !== undefined && value < check.min) return { verdict: "failed", reason: `${round(value)} is below min ${check.min}` };
    if (check.max !== undefined && value > check.max) return { verdict: "failed", reason: `${round(value)} is above max ${check.max}` };
    if (check.vsLive !== undefined && check.baselineQuery !== undefined) {
        const lower = check.min !== undefined || (check.max === undefined && check.metric === "success-rate");
        const comparable = sample.baseline !== undefined && (sample.baselineRequests ?? 0) >= Math.max(1, check.minRequests);
        if (!comparable) {
            if (check.min === undefined && check.max === undefined) {
                return {
                    verdict: "inconclusive",
                    reason: `${round(value)}; the live version has too little traffic to compare with (its own value is the only bound)`,
                };
            }
            return {
                verdict: "passed",
                reason: `${round(value)} within ${check.min !== undefined ? `min ${check.min}` : `max ${check.max}`}; not compared with the live version (too little traffic)`,
            };
        }
        const live = sample.baseline;
        const limit = lower ? live - check.vsLive : live + check.vsLive;
        if (lower ? value < limit : value > limit) {
            return {
                verdict: "failed",
                reason: `${round(value)} is ${lower ? "below" : "above"} the live version's ${round(live)} ${lower ? "-" : "+"} ${check.vsLive}`,
            };
        }
        return { verdict: "passed", reason: `${round(value)} within ${check.bound} (live: ${round(live)})` };
    }
    return { verdict: "passed", reason: `${round(value)} within ${check.bound}` };
}

/** Where a check stands after its measurements so far: undefined while it may still pass. */
export function checkEnd(check: CheckSettings, verdicts: readonly Verdict[]): Verdict | undefined {
    const failed = verdicts.filter((v) => v === "failed").length;
    let run = 0;
    for (let i = verdicts.length - 1; i >= 0 && verdicts[i] === "failed"; i--) run++;
    if (failed > check.failureLimit) return "failed";
    if (check.consecutiveFailureLimit > 0 && run >= check.consecutiveFailureLimit) return "failed";
    // Never a pass without a passed measurement; an inconclusive one ends it (it could not pass any more).
    if (verdicts.includes("inconclusive")) return "inconclusive";
    return verdicts.length >= check.count ? "passed" : undefined;
}

/**
 * One instant query against Prometheus's HTTP API: the value of a single-series result, undefined
 * for no series or NaN; rejects when Prometheus cannot be reached, refuses the query, or returns more
 * than one series (a check needs one number: aggregate with sum). Self-contained (requires inside).
 */
export async function queryPrometheus(provider: MetricsProvider, promql: string, signal?: AbortSignal, timeoutMs = 5000): Promise<number | undefined> {
    const http = require("node:http") as typeof import("node:http");
    const https = require("node:https") as typeof import("node:https");
    const base = new URL(provider.url);
    const path = `${base.pathname.replace(/\/+$/, "")}/api/v1/query?${new URLSearchParams({ query: promql }).toString()}`;
    const headers: Record<string, string> = { accept: "application/json" };
    if (provider.token !== undefined && provider.token !== "") headers.authorization = `Bearer ${provider.token}`;
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const request = (base.protocol === "https:" ? https : http).request(
            {
                hostname: base.hostname,
                port: base.port === "" ? undefined : Number(base.port),
                path,
                method: "GET",
                headers,
                auth: base.username === "" ? undefined : `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`,
                signal,
            },
            (response) => {
                let text = "";
                response.setEncoding("utf8");
                response.on("data", (chunk: string) => (text += chunk));
                response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
                response.on("error", reject);
            },
        );
        const timer = setTimeout(() => request.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
        request.on("close", () => clearTimeout(timer));
        request.on("error", reject);
        request.end();
    });
    let parsed: { status?: string; error?: string; data?: { resultType?: string; result?: unknown } };
    try {
        parsed = JSON.parse(body.text) as typeof parsed;
    } catch {
        throw new Error(`HTTP ${body.status}: not a Prometheus API answer: ${JSON.stringify(body.text.slice(0, 80))}`);
    }
    if (parsed.status !== "success") throw new Error(`HTTP ${body.status}: ${parsed.error ?? "the query failed"}`);
    const result = parsed.data?.result;
    let text: string | undefined;
    if (parsed.data?.resultType === "scalar") text = (result as [number, string])[1];
    else if (parsed.data?.resultType === "vector") {
        const series = result as { value: [number, string] }[];
        if (series.length > 1) throw new Error(`the query returned ${series.length} series; a check needs one value (aggregate it, e.g. with sum)`);
        text = series[0]?.value[1];
    } else throw new Error(`the query returned a ${parsed.data?.resultType ?? "missing"} result; a check needs an instant vector or a scalar`);
    if (text === undefined) return undefined;
    const value = Number(text);
    return Number.isNaN(value) ? undefined : value;
}

/**
 * Runs every check of `checks` at once, each one measurement per interval (the first one interval
 * after the start, so its window holds only traffic from now on), until each has ended; stops every
 * check at the first that fails, and when `signal` fires. Reports each measurement as a line.
 */
export async function analyse(provider: MetricsProvider, checks: readonly ResolvedCheck[], what: string, context: AnalysisContext): Promise<AnalysisResult> {
    const now = context.now ?? Date.now;
    const sleep = context.sleep ?? pause;
    const query = context.query ?? ((promql: string) => queryPrometheus(provider, promql, context.signal));
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    context.signal?.addEventListener("abort", onAbort);
    const measurements: Measurement[] = [];
    const ends = new Map<string, Verdict>();
    const read = async (promql: string | undefined): Promise<number | undefined> => (promql === undefined ? undefined : query(promql));

    const runCheck = async (check: ResolvedCheck): Promise<void> => {
        const verdicts: Verdict[] = [];
        const start = now();
        for (let index = 1; index <= check.count; index++) {
            await sleep(Math.max(0, start + index * check.intervalSeconds * 1000 - now()), stop.signal);
            if (stop.signal.aborted) return;
            let sample: Sample;
            try {
                const [value, requests, baseline, baselineRequests] = await Promise.all([
                    read(check.query),
                    check.minRequests > 0 ? read(check.requestsQuery) : undefined,
                    read(check.baselineQuery),
                    read(check.baselineRequestsQuery),
                ]);
                sample = { value, requests, baseline, baselineRequests };
            } catch (err) {
                if (stop.signal.aborted) return;
                sample = { error: err instanceof Error ? err.message : String(err) };
            }
            const { verdict, reason } = judge(check, sample);
            const measurement: Measurement = {
                check: check.name,
                index,
                count: check.count,
                at: new Date(now()).toISOString(),
                query: check.query,
                ...(sample.value === undefined ? {} : { value: sample.value }),
                ...(sample.requests === undefined ? {} : { requests: sample.requests }),
                ...(sample.baseline === undefined ? {} : { baseline: sample.baseline }),
                bound: check.bound,
                verdict,
                reason,
            };
            measurements.push(measurement);
            verdicts.push(verdict);
            context.report(`analysis: ${what} ${check.name} ${index}/${check.count}: ${verdict}: ${reason}`);
            const end = checkEnd(check, verdicts);
            if (end !== undefined) {
                ends.set(check.name, end);
                // A failure ends the analysis at once: the sooner the swing back starts, the better.
                if (end === "failed") stop.abort();
                return;
            }
        }
    };

    try {
        await Promise.all(checks.map(runCheck));
    } finally {
        context.signal?.removeEventListener("abort", onAbort);
    }
    if (context.signal?.aborted === true) {
        return { verdict: "inconclusive", measurements, summary: `analysis of ${what} stopped: ${String(context.signal.reason ?? "cancelled")}` };
    }
    const all = [...ends.values()];
    const verdict: Verdict = all.includes("failed") ? "failed" : all.includes("inconclusive") || all.length < checks.length ? "inconclusive" : "passed";
    if (verdict === "passed") {
        return {
            verdict,
            measurements,
            summary: `analysis of ${what} passed: ${checks.map((c) => `${c.name} ${c.count}/${c.count}`).join(", ")} at ${shownUrl(provider.url)}`,
        };
    }
    const deciding = [...measurements].reverse().find((m) => m.verdict === verdict && ends.get(m.check) === verdict) as Measurement;
    return {
        verdict,
        measurements,
        summary:
            `analysis of ${what} ${verdict === "failed" ? "failed" : "was inconclusive (not a pass)"}: check ${deciding.check} measurement ${deciding.index}/${deciding.count}: ` +
            `${deciding.reason} (bound: ${deciding.bound}); query at ${shownUrl(provider.url)}: ${deciding.query}`,
    };
}
