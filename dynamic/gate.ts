// The gate before a switch: a dynamic resource whose create/update fetches each version that is
// about to start taking traffic through the gateway's test route, and fails unless the page is that
// version's own. The live route depends on it, so a failed check fails `pulumi up` before the route
// changes: traffic stays where it was, and versions going idle keep their pods (they are scaled
// down only after the route has left them).
//
// Three promises, each tested on the real engine:
// - bounded: one `pulumi up` spends at most `timeoutSeconds` here, whatever the gateway does;
// - it reports every try (the engine shows a provider's stderr lines as it runs);
// - it stops at once when the engine cancels (Ctrl-C) or goes away (a killed `pulumi`).
// And one rule: a version that had all the live traffic just before the current switch (or was live
// when the current split began) is not checked again when traffic goes back to it. That is the
// rollback, and it must not depend on the gateway being reachable from where `pulumi up` runs. The
// version rolled back from gets no such pass, nor does a canary that leaves its split.
import * as pulumi from "@pulumi/pulumi";

import type { AnalysisSettings, ResolvedCheck } from "../lib/analysis/checks";
import { analyse, type MetricsProvider } from "../lib/analysis/judge";
import { pause } from "../lib/pause";
import { onCancelCall } from "../components/sdk";
import { sendTraffic } from "../lib/traffic";

/** One version the route is about to send traffic to. */
export interface VersionCheck {
    readonly version: string;
    /** Part of the inputs so that a new image under the same name is checked again. */
    readonly image: string;
    /** Text only this version's page contains. */
    readonly expect: string;
}

export interface GateInputs {
    /** Gateway base URL as seen from where `pulumi up` runs (http:// or https://); may be a secret. */
    readonly gatewayUrl: string;
    /** Host the gateway serves; sent as Host header and TLS server name. */
    readonly host: string;
    /** Test-route header that pins a request to one version. */
    readonly header: string;
    /** Every version that takes live traffic once the route is updated. */
    readonly checks: readonly VersionCheck[];
    /** The most time one create or update may spend checking, in seconds. */
    readonly timeoutSeconds: number;
    /** Pause between tries, in milliseconds. */
    readonly intervalMs: number;
    /** Prometheus's HTTP API, for the pre-switch analysis; may be a secret. */
    readonly prometheusUrl?: string;
    readonly prometheusToken?: string;
    /** The pre-switch analysis: each version's checks, resolved; none: only the page is checked. */
    readonly analysis?: GateAnalysis;
}

/** What the gate judges on Istio's metrics before a version takes live traffic. */
export interface GateAnalysis {
    /** Synthetic requests per second sent to the version through its test route while it is judged. */
    readonly trafficPerSecond: number;
    /** Version name -> its checks, queries resolved (part of the inputs: a preview shows them). */
    readonly checks: Readonly<Record<string, readonly ResolvedCheck[]>>;
}

export interface GateOutcome extends GateInputs {
    /** Versions a switch back to is a rollback, not checked: the whole live route before this one, or live when the split began. */
    readonly rollbackTargets: readonly VersionCheck[];
    /** Versions this create or update actually fetched (the others were live already, or a rollback). */
    readonly checked: readonly string[];
    /** When the last check ran (ISO time). */
    readonly checkedAt: string;
}

/** What a run needs from where it runs: a way to report each try, and a reason to stop early. */
export interface RunContext {
    readonly report: (line: string) => void;
    readonly signal?: AbortSignal;
}

/** Which of `next` must be fetched, given what was live before (`previous`, from the resource's state). */
export function whatToFetch(
    next: readonly VersionCheck[],
    previous: Pick<GateOutcome, "checks" | "rollbackTargets"> | undefined,
): { toCheck: VersionCheck[]; rollbackTargets: VersionCheck[] } {
    const same = (a: VersionCheck) => (b: VersionCheck) => a.version === b.version && a.image === b.image && a.expect === b.expect;
    const live = previous?.checks ?? [];
    const trusted = previous?.rollbackTargets ?? [];
    const starting = next.filter((c) => !live.some(same(c)));
    const leaving = live.filter((c) => !next.some(same(c)));
    const toCheck = starting.filter((c) => !trusted.some(same(c)));
    const isRollback = starting.length > 0 && toCheck.length === 0;
    const union = (a: readonly VersionCheck[], b: readonly VersionCheck[]) => [...a, ...b.filter((c) => !a.some(same(c)))];
    // A version earns a pass (a switch back to it is a rollback, not fetched) only by having been the
    // whole live route, or live when a split began: a canary that leaves its split was never more than
    // a candidate, so a rollback from a 10% step leaves it to be checked again, as it was judged bad.
    const established = (c: VersionCheck) => trusted.some(same(c)) || live.length === 1;
    let rollbackTargets: VersionCheck[];
    if (isRollback) {
        // The version this rollback leaves is the one rolled back from: going to it again is checked.
        rollbackTargets = [];
    } else if (leaving.length > 0) {
        const earned = leaving.filter(established);
        rollbackTargets = earned.length > 0 ? earned : trusted.filter((c) => !next.some(same(c)));
    } else if (starting.length > 0) {
        // A split begins: what serves now is what a rollback of the canary returns to.
        rollbackTargets = union(trusted, live);
    } else {
        // Only a setting (or a weight) changed.
        rollbackTargets = [...trusted];
    }
    return { toCheck, rollbackTargets };
}

/** The gateway URL without credentials (user:password@ or a query string), for messages. */
export function redactUrl(url: string): string {
    try {
        const parsed = new URL(url);
        return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`;
    } catch {
        return "<gatewayUrl>";
    }
}

/**
 * Fetches every version in `checks` until its page contains its text, all within one deadline.
 * Self-contained (requires inside) because Pulumi serializes it into the dynamic provider.
 */
export async function runChecks(inputs: GateInputs, checks: readonly VersionCheck[], context: RunContext): Promise<void> {
    const http = require("node:http") as typeof import("node:http");
    const https = require("node:https") as typeof import("node:https");
    const base = new URL(inputs.gatewayUrl);
    const shownUrl = redactUrl(inputs.gatewayUrl);
    const started = Date.now();
    const deadline = started + inputs.timeoutSeconds * 1000;
    const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s of ${inputs.timeoutSeconds} s`;
    const stopped = () => context.signal?.aborted === true;

    const get = (version: string, timeoutMs: number): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
            const secure = base.protocol === "https:";
            const request = (secure ? https : http).request(
                {
                    hostname: base.hostname,
                    port: base.port === "" ? undefined : Number(base.port),
                    // A path prefix, a query token or user:password in gatewayUrl go with every request.
                    path: `${base.pathname}${base.search}`,
                    auth: base.username === "" ? undefined : `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`,
                    method: "GET",
                    headers: { host: inputs.host, [inputs.header]: version },
                    signal: context.signal,
                    // The gate checks which version answers, not who signed the certificate: the
                    // default issuer is self-signed and the gateway is addressed by IP.
                    ...(secure ? { servername: inputs.host, rejectUnauthorized: false } : {}),
                },
                (response) => {
                    let body = "";
                    response.setEncoding("utf8");
                    response.on("data", (chunk: string) => (body += chunk));
                    response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
                    response.on("error", reject);
                },
            );
            // One bound for the whole exchange (connect, TLS, headers, body), not an idle timeout.
            const timer = setTimeout(() => request.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
            request.on("close", () => clearTimeout(timer));
            request.on("error", reject);
            request.end();
        });

    const checkOne = async (check: VersionCheck): Promise<string> => {
        let last = "was not tried";
        for (let attempt = 1; !stopped(); attempt++) {
            const remaining = deadline - Date.now();
            if (remaining <= 0) break;
            const bound = Math.min(5000, remaining);
            try {
                const { status, body } = await get(check.version, bound);
                if (status === 200 && body.includes(check.expect)) {
                    context.report(`gate: ${check.version} answered with its own page (try ${attempt}, ${elapsed()})`);
                    return "";
                }
                const hint = status >= 300 && status < 400 ? " (a redirect: with httpsRedirect on, use an https:// gatewayUrl)" : "";
                last = `answered ${status}${hint} with a page that does not contain ${JSON.stringify(check.expect)}: ${JSON.stringify(body.slice(0, 120))}`;
            } catch (err) {
                // A try that the deadline, not its own 5 s bound, cut short says nothing about the
                // gateway: what the tries before it found is the better reason to give.
                if (attempt > 1 && bound < 5000 && Date.now() >= deadline && !stopped()) break;
                last = `could not be fetched: ${err instanceof Error ? err.message : String(err)}`;
            }
            if (stopped()) break;
            context.report(`gate: ${check.version} try ${attempt} (${elapsed()}): ${last}`);
            await pause(Math.min(inputs.intervalMs, Math.max(0, deadline - Date.now())), context.signal);
        }
        return last;
    };

    const failures = (await Promise.all(checks.map(async (check) => ({ check, last: await checkOne(check) })))).filter((f) => f.last !== "");
    if (stopped()) {
        throw new Error(
            `gate stopped: ${String(context.signal?.reason ?? "cancelled")} after ${elapsed()}; the route was not changed and traffic stays where it was`,
        );
    }
    if (failures.length > 0) {
        const { check, last } = failures[0];
        throw new Error(
            `gate failed after ${elapsed()}: version ${check.version} (${check.image}) at ${shownUrl} with ${inputs.header}: ${check.version} ${last}; ` +
                `the route was not changed and traffic stays where it was`,
        );
    }
}

/**
 * Inside the dynamic provider's process: an AbortSignal that fires when the engine cancels the
 * update (Ctrl-C) or goes away (pulumi killed); in the second case the process also exits, since
 * nothing will ever stop it (the SDK's dynamic provider has no health check). One per process,
 * installed on the provider's first call. Self-contained, like runChecks.
 *
 * The Node.js SDK's dynamic provider acknowledges the engine's Cancel call and does nothing else,
 * and the engine waits for in-flight operations; so this watches the provider's own gRPC server for
 * that call (onCancelCall, components/sdk.ts). Independently, it polls the
 * engine's address (the provider's first argument): once nothing listens there, the engine is gone.
 */
export function engineSignal(): AbortSignal {
    const holder = globalThis as { cowsayEngineSignal?: AbortSignal };
    if (holder.cowsayEngineSignal !== undefined) return holder.cowsayEngineSignal;
    const net = require("node:net") as typeof import("node:net");
    const controller = new AbortController();
    holder.cowsayEngineSignal = controller.signal;

    onCancelCall(() => controller.abort("the update was cancelled (Ctrl-C)"));

    const engine = /^(.*):(\d+)$/.exec(process.argv[2] ?? "");
    if (engine !== null) {
        const timer = setInterval(() => {
            const socket = net.connect({ host: engine[1], port: Number(engine[2]) });
            socket.setTimeout(2000, () => socket.destroy());
            socket.on("connect", () => socket.destroy());
            socket.on("error", (err: NodeJS.ErrnoException) => {
                if (err.code !== "ECONNREFUSED") return;
                controller.abort("the pulumi engine went away");
                // Let a running check see the abort, then leave: no engine will ever stop this process.
                setTimeout(() => process.exit(1), 200);
            });
        }, 1000);
        timer.unref();
    }
    return controller.signal;
}

/**
 * The pre-switch analysis of each version in `checks` that has analysis checks: synthetic traffic
 * through its test route for as long as its analysis runs, then the verdict. Fails unless every
 * version passed; a failed or inconclusive analysis names the check, its query, the value and the bound.
 */
export async function runAnalysis(inputs: GateInputs, checks: readonly VersionCheck[], context: RunContext): Promise<void> {
    const analysis = inputs.analysis;
    if (analysis === undefined || inputs.prometheusUrl === undefined) return;
    const provider: MetricsProvider = { url: inputs.prometheusUrl, token: inputs.prometheusToken };
    const judged = checks.filter((c) => (analysis.checks[c.version]?.length ?? 0) > 0);
    const results = await Promise.all(
        judged.map(async (check) => {
            const resolved = analysis.checks[check.version];
            const longest = Math.max(...resolved.map((c) => c.intervalSeconds * c.count));
            context.report(
                `gate: analysing ${check.version} for up to ${longest} s on ${analysis.trafficPerSecond} synthetic requests a second through its test route`,
            );
            // The traffic stops when the analysis ends (passed early, failed, or stopped).
            const traffic = new AbortController();
            const stop = () => traffic.abort();
            context.signal?.addEventListener("abort", stop);
            const sent = sendTraffic({
                url: inputs.gatewayUrl,
                host: inputs.host,
                header: { name: inputs.header, value: check.version },
                requestsPerSecond: analysis.trafficPerSecond,
                durationMs: longest * 1000,
                timeoutMs: 5000,
                signal: traffic.signal,
            });
            try {
                return await analyse(provider, resolved, check.version, { report: context.report, signal: context.signal });
            } finally {
                traffic.abort();
                context.signal?.removeEventListener("abort", stop);
                await sent.catch(() => undefined);
            }
        }),
    );
    if (context.signal?.aborted === true) {
        throw new Error(
            `gate stopped: ${String(context.signal.reason ?? "cancelled")} during the analysis; the route was not changed and traffic stays where it was`,
        );
    }
    const bad = results.find((r) => r.verdict !== "passed");
    if (bad !== undefined) throw new Error(`gate failed: ${bad.summary}; the route was not changed and traffic stays where it was`);
    for (const result of results) context.report(`gate: ${result.summary}`);
}

async function runGate(inputs: GateInputs, previous: GateOutcome | undefined): Promise<GateOutcome> {
    const { toCheck, rollbackTargets } = whatToFetch(inputs.checks, previous);
    const report = (line: string) => console.error(line);
    const skipped = inputs.checks.filter((c) => !toCheck.includes(c)).map((c) => c.version);
    if (skipped.length > 0) report(`gate: not fetching ${skipped.join(", ")}: live already, or live just before this switch (a rollback)`);
    if (toCheck.length > 0) {
        // The page first: a version that does not serve its own page is not worth the analysis.
        await runChecks(inputs, toCheck, { report, signal: engineSignal() });
        await runAnalysis(inputs, toCheck, { report, signal: engineSignal() });
    }
    return { ...inputs, rollbackTargets, checked: toCheck.map((c) => c.version), checkedAt: new Date().toISOString() };
}

const provider: pulumi.dynamic.ResourceProvider<GateInputs, GateOutcome> = {
    // The engine checks inputs first on every preview and update: the earliest moment to start
    // watching it, so that this process never outlives a killed `pulumi`.
    async check(_olds, news) {
        engineSignal();
        return Promise.resolve({ inputs: news });
    },
    async create(inputs) {
        return { id: `gate-${Date.now()}`, outs: await runGate(inputs, undefined) };
    },
    async update(_id, olds, news) {
        return { outs: await runGate(news, olds) };
    },
};

export type GateArgs = { readonly [K in keyof GateInputs]: pulumi.Input<GateInputs[K]> };

/** The gate's type token until it was named the gate, for the aliases of gates created before. */
export const FORMER_GATE_TYPE = "pulumi-nodejs:dynamic/cowsay-bluegreen:SmokeCheck";

/** How the gate reaches the versions, from the config. */
export interface GateSettings {
    /** Gateway base URL as seen from where `pulumi up` runs; a secret when the config is one. */
    readonly gatewayUrl: pulumi.Input<string>;
    /** The most time one `pulumi up` spends checking, in seconds. Default: 60. */
    readonly timeoutSeconds?: number;
    /** Pause between tries in milliseconds. Default: 2000. */
    readonly intervalMs?: number;
    /** The pre-switch analysis; undefined: none. */
    readonly analysis?: {
        readonly prometheusUrl: pulumi.Input<string>;
        readonly prometheusToken?: pulumi.Input<string>;
        readonly trafficPerSecond: number;
        readonly settings: AnalysisSettings;
        /** The version that was live before this update, which vsLive compares with. */
        readonly liveBefore?: string;
    };
}

/** Passes only when every version about to take traffic answers with its own page. */
export class Gate extends pulumi.dynamic.Resource {
    declare readonly checkedAt: pulumi.Output<string>;
    declare readonly checked: pulumi.Output<string[]>;

    constructor(name: string, args: GateArgs, opts?: pulumi.CustomResourceOptions) {
        super(
            provider,
            name,
            { ...args, rollbackTargets: undefined, checked: undefined, checkedAt: undefined },
            // The URLs may carry credentials; the state keeps them encrypted whenever the config does.
            { ...opts, additionalSecretOutputs: ["gatewayUrl", "prometheusUrl", "prometheusToken"] },
            "cowsay-bluegreen",
            "Gate",
        );
    }
}
