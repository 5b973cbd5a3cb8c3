// What the metric analysis checks, as the stack config declares it (the `analysis` key), and the
// PromQL each check runs: the two built-in checks (Flagger's success rate and p99 duration over
// Istio's standard metrics, as the server's sidecar reports them) or a custom query, with the
// templates {{ namespace }}, {{ workload }}, {{ version }} and {{ interval }} filled per version.
// Queries are validated here with Prometheus's own PromQL grammar (@prometheus-io/lezer-promql),
// without contacting Prometheus, so a typo is refused before anything changes. Pure: the program's
// config, the gate and the fleet's rollout all read these functions.
import { parser } from "@prometheus-io/lezer-promql";
import { z } from "zod";

import { invalidConfig, type Refused } from "../refusal";

/** What a measurement that cannot be judged counts as: never a pass unless the user says so. */
export const WHEN_UNKNOWN = ["inconclusive", "fail", "pass"] as const;
export type WhenUnknown = (typeof WHEN_UNKNOWN)[number];

export const METRICS = ["success-rate", "request-duration"] as const;
export type BuiltInMetric = (typeof METRICS)[number];

export const TEMPLATES = ["namespace", "workload", "version", "interval"] as const;

/** The longest one analysis (all its measurements) may take, in seconds. */
export const MAX_ANALYSIS_SECONDS = 3600;

/** One check as parsed from the config, with every default filled in. */
export interface CheckSettings {
    readonly name: string;
    /** A built-in metric, or custom with `query`. */
    readonly metric: BuiltInMetric | "custom";
    /** The PromQL of a custom check, templates not yet filled. */
    readonly query?: string;
    /** The value must be at least this (success-rate: percent of non-5xx). */
    readonly min?: number;
    /** The value must be at most this (request-duration: p99 in milliseconds). */
    readonly max?: number;
    /** How far the value may be from the live version's own, in the check's unit (worse side only). */
    readonly vsLive?: number;
    /** Seconds between measurements, and the window ({{ interval }}) each measurement looks at. */
    readonly intervalSeconds: number;
    /** Measurements in one analysis. */
    readonly count: number;
    /** The check fails once more measurements than this failed. */
    readonly failureLimit: number;
    /** The check also fails once this many measurements in a row failed (0: no such limit). */
    readonly consecutiveFailureLimit: number;
    /** Fewer requests to the version in the window make the measurement inconclusive (not failed). */
    readonly minRequests: number;
    /** What a query that returns nothing means. */
    readonly noData: WhenUnknown;
    /** What an unreachable (or refusing) Prometheus means. */
    readonly unreachable: WhenUnknown;
}

export interface AnalysisSettings {
    /** Judge a version before the live route sends it traffic (in the gate), on synthetic traffic. */
    readonly preSwitch: boolean;
    /** Synthetic requests per second the gate sends to a candidate during its pre-switch analysis. */
    readonly trafficPerSecond: number;
    readonly checks: readonly CheckSettings[];
}

/** Whom a query is about: one version's workload. */
export interface Subject {
    readonly namespace: string;
    readonly workload: string;
    readonly version: string;
}

/** A check with its queries resolved for one version (and for the live version it is compared with). */
export interface ResolvedCheck extends CheckSettings {
    readonly query: string;
    /** The version's requests in the window, for minRequests. */
    readonly requestsQuery: string;
    /** The same query about the live version, when the check compares with it. */
    readonly baselineQuery?: string;
    readonly baselineRequestsQuery?: string;
    /** The bound in words: "min 99", "max 500, at most live + 50". */
    readonly bound: string;
}

// Every series of the workload as its sidecar reports it: what Flagger's Istio observer selects.
const SELECTOR = 'reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload="{{ workload }}"';

const BUILT_IN_QUERIES: Readonly<Record<BuiltInMetric, string>> = {
    "success-rate":
        `sum(rate(istio_requests_total{${SELECTOR},response_code!~"5.."}[{{ interval }}])) / ` +
        `sum(rate(istio_requests_total{${SELECTOR}}[{{ interval }}])) * 100`,
    "request-duration": `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{${SELECTOR}}[{{ interval }}])))`,
};
const REQUESTS_QUERY = `sum(increase(istio_requests_total{${SELECTOR}}[{{ interval }}]))`;

/** The PromQL of a built-in metric, templates not filled (for the docs and the preview). */
export function builtInQuery(metric: BuiltInMetric): string {
    return BUILT_IN_QUERIES[metric];
}

const TEMPLATE = /\{\{\s*([A-Za-z_]\w*)\s*\}\}/g;

/** Fills the templates of `query` for `subject` over a window of `intervalSeconds`. */
export function render(query: string, subject: Subject, intervalSeconds: number): string {
    const values: Record<(typeof TEMPLATES)[number], string> = { ...subject, interval: `${intervalSeconds}s` };
    return query.replace(TEMPLATE, (_, name: string) => values[name as keyof typeof values]);
}

/**
 * Why `query` is not a PromQL expression (after its templates are filled with sample values), or
 * undefined when it is. Prometheus's own grammar, so the verdict is the parser's, not a guess.
 */
export function promqlError(query: string): string | undefined {
    const unknown = [...query.matchAll(TEMPLATE)].map((m) => m[1]).find((name) => !(TEMPLATES as readonly string[]).includes(name));
    if (unknown !== undefined) return `uses the unknown template {{ ${unknown} }}; allowed: ${TEMPLATES.map((t) => `{{ ${t} }}`).join(", ")}`;
    const sample = render(query, { namespace: "ns", workload: "app-v1", version: "v1" }, 30);
    if (sample.includes("{{") || sample.includes("}}")) return "has an unclosed template (write {{ name }})";
    if (sample.trim() === "") return "is empty";
    let at: number | undefined;
    parser.parse(sample).iterate({
        enter(node) {
            if (node.type.isError && at === undefined) at = node.from;
            return at === undefined;
        },
    });
    if (at === undefined) return undefined;
    const near = sample.slice(at, at + 20);
    return `is not valid PromQL: with its templates filled in, the parser stops at character ${at + 1}${near === "" ? " (the end: something is missing)" : ` (near ${JSON.stringify(near)})`}`;
}

/** Resolves every check's queries for `subject`, compared with `live` when a check has vsLive. */
export function resolveChecks(analysis: AnalysisSettings, subject: Subject, live: Subject | undefined): ResolvedCheck[] {
    return analysis.checks.map((check) => {
        const query = check.metric === "custom" ? (check.query as string) : BUILT_IN_QUERIES[check.metric];
        const compare = check.vsLive !== undefined && live !== undefined;
        return {
            ...check,
            query: render(query, subject, check.intervalSeconds),
            requestsQuery: render(REQUESTS_QUERY, subject, check.intervalSeconds),
            baselineQuery: compare ? render(query, live, check.intervalSeconds) : undefined,
            baselineRequestsQuery: compare ? render(REQUESTS_QUERY, live, check.intervalSeconds) : undefined,
            bound: describeBound(check, compare ? live.version : undefined),
        };
    });
}

function describeBound(check: CheckSettings, live: string | undefined): string {
    const parts = [...(check.min === undefined ? [] : [`min ${check.min}`]), ...(check.max === undefined ? [] : [`max ${check.max}`])];
    if (check.vsLive !== undefined) {
        const side = check.min !== undefined || (check.max === undefined && check.metric === "success-rate") ? "-" : "+";
        parts.push(`${live === undefined ? "the live version" : live}'s own ${side} ${check.vsLive}`);
    }
    return parts.join(", ");
}

/** The least time an analysis takes when every measurement passes: its slowest check. */
export function minimumSeconds(analysis: AnalysisSettings): number {
    return Math.max(0, ...analysis.checks.map((c) => c.intervalSeconds * c.count));
}

// ------------------------------------------------------------------------------------ the config key

const DURATION = /^(\d+)(s|m|h)$/;
const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };

/** "30s", "2m", "1h" as seconds (one unit: what {{ interval }} becomes in PromQL is always seconds). */
function durationSeconds(text: string): number | undefined {
    const match = DURATION.exec(text);
    return match === null ? undefined : Number(match[1]) * UNIT_SECONDS[match[2]];
}

const finite = z.number().refine(Number.isFinite);
const count = (min: number, max: number) => z.int().min(min).max(max);
const whenUnknown = z.enum(WHEN_UNKNOWN);

const checkInput = z.strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
    metric: z.enum([...METRICS, "custom"]).optional(),
    query: z.string().optional(),
    min: finite.optional(),
    max: finite.optional(),
    vsLive: finite.min(0).optional(),
    interval: z.string().optional(),
    count: count(1, 100).optional(),
    failureLimit: count(0, 100).optional(),
    consecutiveFailureLimit: count(0, 100).optional(),
    minRequests: count(0, 1_000_000).optional(),
    noData: whenUnknown.optional(),
    unreachable: whenUnknown.optional(),
});

const analysisInput = z.strictObject({
    preSwitch: z.boolean().optional(),
    trafficPerSecond: count(1, 100).optional(),
    checks: z.array(checkInput).max(20).optional(),
});

export const CHECK_DEFAULTS = {
    interval: "30s",
    count: 3,
    failureLimit: 0,
    consecutiveFailureLimit: 0,
    minRequests: 10,
    noData: "inconclusive",
    unreachable: "inconclusive",
} as const;

/** The checks a stack runs when its `analysis` names none: the two built-ins, Flagger's defaults. */
export const DEFAULT_ANALYSIS = {
    preSwitch: true,
    trafficPerSecond: 5,
    checks: [
        { name: "success-rate", metric: "success-rate", min: 99 },
        { name: "request-duration", metric: "request-duration", max: 500 },
    ],
} as const;

/**
 * The refusal of the field at `path` inside the `analysis` value (`checks[1].query`), keyed as the
 * config key `pulumi config set --path` takes (`analysis.checks[1].query`).
 */
function refusedAt(path: string, reason: string): Refused {
    return invalidConfig(`analysis${path === "" ? "" : path.startsWith("[") ? path : `.${path}`}`, reason);
}

function pathOf(path: readonly PropertyKey[]): string {
    return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}

const FIELD_ALLOWED: Readonly<Record<string, string>> = {
    name: "a DNS label (lower-case letters, digits, '-')",
    metric: `${METRICS.join(", ")} or custom`,
    query: "a PromQL expression",
    min: "a number",
    max: "a number",
    vsLive: "a number of 0 or more",
    interval: "a duration such as 30s, 2m or 1h",
    count: "an integer from 1 to 100",
    failureLimit: "an integer from 0 to 100",
    consecutiveFailureLimit: "an integer from 0 to 100 (0: no limit)",
    minRequests: "an integer from 0 to 1000000",
    noData: WHEN_UNKNOWN.join(", "),
    unreachable: WHEN_UNKNOWN.join(", "),
    preSwitch: "true or false",
    trafficPerSecond: "an integer from 1 to 100",
    checks: "a list of at most 20 checks",
};

/**
 * The `analysis` config value (already JSON-parsed) as settings, or a Refused naming the field
 * inside it, its value and what is allowed.
 */
export function parseAnalysis(value: unknown): AnalysisSettings {
    const parsed = analysisInput.safeParse(value);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        if (issue.code === "unrecognized_keys") {
            const where = pathOf(issue.path);
            const allowed = Object.keys(issue.path.length === 0 ? analysisInput.shape : checkInput.shape).join(", ");
            throw refusedAt(`${where}${where === "" ? "" : "."}${issue.keys[0]}`, `is not a known field; allowed: ${allowed}.`);
        }
        const path = pathOf(issue.path);
        const field = String(issue.path[issue.path.length - 1] ?? "");
        const got = path === "" ? value : issue.path.reduce<unknown>((v, p) => (v as Record<PropertyKey, unknown> | undefined)?.[p], value);
        const allowed = FIELD_ALLOWED[field] ?? (issue.path.length === 0 ? "an object with preSwitch, trafficPerSecond, checks" : "a check object");
        throw refusedAt(path, `is ${JSON.stringify(got) ?? "missing"}; allowed: ${allowed}.`);
    }
    const input = parsed.data;
    const names = new Set<string>();
    const declared: readonly z.infer<typeof checkInput>[] = input.checks ?? DEFAULT_ANALYSIS.checks;
    const checks = declared.map((c, i): CheckSettings => {
        const at = `checks[${i}]`;
        if (names.has(c.name)) throw refusedAt(`${at}.name`, `is ${JSON.stringify(c.name)}, already the name of another check; allowed: a name used once.`);
        names.add(c.name);
        const { query, min, max, vsLive } = c;
        const metric = c.metric ?? (query === undefined ? undefined : "custom");
        if (metric === undefined) throw refusedAt(`${at}.metric`, `is missing; allowed: ${METRICS.join(", ")}, or a custom query.`);
        if (metric === "custom") {
            if (query === undefined) throw refusedAt(`${at}.query`, "is missing; a custom check needs a PromQL query.");
            const error = promqlError(query);
            if (error !== undefined) throw refusedAt(`${at}.query`, `${JSON.stringify(query)} ${error}.`);
        } else if (query !== undefined) {
            throw refusedAt(`${at}.query`, `is set on the built-in metric ${metric}; allowed: a query only with metric custom (or no metric).`);
        }
        if (metric === "success-rate" && max !== undefined)
            throw refusedAt(`${at}.max`, "is set on success-rate; allowed: min (the least percent of non-5xx answers).");
        if (metric === "request-duration" && min !== undefined)
            throw refusedAt(`${at}.min`, "is set on request-duration; allowed: max (the most p99 milliseconds).");
        if (min === undefined && max === undefined && vsLive === undefined) throw refusedAt(at, "has no bound; allowed: min, max or vsLive (at least one).");
        if (vsLive !== undefined && min !== undefined && max !== undefined) {
            throw refusedAt(`${at}.vsLive`, "is set on a check with both min and max; allowed: vsLive with one of them, which says the worse side.");
        }
        if (min !== undefined && max !== undefined && min > max) throw refusedAt(`${at}.min`, `is ${min}, above max ${max}; no value could pass.`);
        const interval = c.interval ?? CHECK_DEFAULTS.interval;
        const intervalSeconds = durationSeconds(interval);
        if (intervalSeconds === undefined || intervalSeconds < 1)
            throw refusedAt(`${at}.interval`, `is ${JSON.stringify(interval)}; allowed: ${FIELD_ALLOWED.interval}.`);
        const n = c.count ?? CHECK_DEFAULTS.count;
        if (intervalSeconds * n > MAX_ANALYSIS_SECONDS) {
            throw refusedAt(at, `takes ${intervalSeconds * n} s (count ${n} × interval ${interval}); allowed: at most ${MAX_ANALYSIS_SECONDS} s.`);
        }
        return {
            name: c.name,
            metric,
            ...(query === undefined ? {} : { query }),
            ...(min === undefined ? {} : { min }),
            ...(max === undefined ? {} : { max }),
            ...(vsLive === undefined ? {} : { vsLive }),
            intervalSeconds,
            count: n,
            failureLimit: c.failureLimit ?? CHECK_DEFAULTS.failureLimit,
            consecutiveFailureLimit: c.consecutiveFailureLimit ?? CHECK_DEFAULTS.consecutiveFailureLimit,
            minRequests: c.minRequests ?? CHECK_DEFAULTS.minRequests,
            noData: c.noData ?? CHECK_DEFAULTS.noData,
            unreachable: c.unreachable ?? CHECK_DEFAULTS.unreachable,
        };
    });
    if (checks.length === 0) throw refusedAt("checks", "is empty; allowed: at least one check (leave prometheusUrl unset for no analysis).");
    return { preSwitch: input.preSwitch ?? DEFAULT_ANALYSIS.preSwitch, trafficPerSecond: input.trafficPerSecond ?? DEFAULT_ANALYSIS.trafficPerSecond, checks };
}
