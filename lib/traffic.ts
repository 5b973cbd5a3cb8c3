// Synthetic traffic, bounded: a steady rate of GET requests to one URL (for the gate, a candidate
// through its test route) for a fixed time, counted per answer. Bounded three ways, because it runs
// against production gateways from inside `pulumi up`: never more than requestsPerSecond × the
// duration in requests, never more than maxInFlight waiting at once (a slow target gets fewer, not a
// pile-up), and every request within its own timeout; it stops at once on its signal.
//
// Self-contained (requires inside, nothing from this module used at run time) because Pulumi
// serializes it into a dynamic provider, like runChecks in dynamic/gate.ts.

/** What to send, how fast, for how long. */
export interface TrafficOptions {
    /** Base URL (http:// or https://); its user:password, path and query go with every request. */
    readonly url: string;
    /** Sent as the Host header and, over HTTPS, as the TLS server name. */
    readonly host: string;
    /** A header sent with every request (the test route's, to reach a candidate). Default: none. */
    readonly header?: { readonly name: string; readonly value: string };
    /** Requests started per second, evenly spaced (more than 0, at most 1000). */
    readonly requestsPerSecond: number;
    /** How long to send, in milliseconds (0 to 3600000). */
    readonly durationMs: number;
    /** The most time one request may take, connect to last byte, in milliseconds (1 to 600000). */
    readonly timeoutMs: number;
    /** Requests waiting for an answer at once (1 to 1024). Default: enough for the rate even if every request takes its timeout, at most 256. */
    readonly maxInFlight?: number;
    /** Stops everything at once: no more requests, those in flight cut off. */
    readonly signal?: AbortSignal;
}

/** How the traffic went. Every request sent is counted once, in statuses or in errors. */
export interface TrafficResult {
    /** Requests sent. */
    readonly sent: number;
    /** Answers by HTTP status code: { "200": 95, "503": 5 }. */
    readonly statuses: Readonly<Record<string, number>>;
    /** Requests that got no answer, by reason (refused, reset, timed out, stopped). */
    readonly errors: Readonly<Record<string, number>>;
    /** Slots left unused because maxInFlight requests were still waiting. */
    readonly skipped: number;
    /** Why it stopped before the end (the signal's reason); undefined when it ran its course. */
    readonly stopped?: string;
    /** From the first request to the result, in milliseconds. */
    readonly elapsedMs: number;
}

/**
 * Sends `requestsPerSecond` requests a second for `durationMs`, then waits for those still in flight
 * (each within `timeoutMs`): it resolves at most `timeoutMs` after the duration, or at once on the
 * signal. Bad options are refused with one line naming the key, the value and what is allowed.
 */
export async function sendTraffic(options: TrafficOptions): Promise<TrafficResult> {
    const http = require("node:http") as typeof import("node:http");
    const https = require("node:https") as typeof import("node:https");

    // A plain Error, not lib/refusal.ts's Refused: this function is serialized into the gate's own
    // process (hence the requires inside), where nothing tells one error from another; it reaches the
    // user as the gate's failure.
    const refuse = (key: string, value: unknown, allowed: string): never => {
        throw new Error(`traffic: ${key} is ${JSON.stringify(value)}; allowed: ${allowed}`);
    };
    const inRange = (key: string, value: unknown, min: number, max: number, allowed: string): number => {
        if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) refuse(key, value, allowed);
        return value as number;
    };
    let base: URL;
    try {
        base = new URL(options.url);
    } catch {
        return refuse("url", options.url, "an http:// or https:// URL");
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") refuse("url", options.url, "an http:// or https:// URL");
    if (typeof options.host !== "string" || options.host === "") refuse("host", options.host, "a host name");
    const rate = inRange("requestsPerSecond", options.requestsPerSecond, 0, 1000, "a number above 0, at most 1000");
    if (rate === 0) refuse("requestsPerSecond", rate, "a number above 0, at most 1000");
    const durationMs = inRange("durationMs", options.durationMs, 0, 3_600_000, "milliseconds from 0 to 3600000");
    const timeoutMs = inRange("timeoutMs", options.timeoutMs, 1, 600_000, "milliseconds from 1 to 600000");
    const maxInFlight =
        options.maxInFlight === undefined
            ? // One more than the requests that overlap when each takes its whole timeout: the rate holds even then.
              Math.min(256, Math.ceil((rate * timeoutMs) / 1000) + 1)
            : inRange("maxInFlight", options.maxInFlight, 1, 1024, "a whole number from 1 to 1024");
    if (!Number.isInteger(maxInFlight)) refuse("maxInFlight", maxInFlight, "a whole number from 1 to 1024");
    if (options.header !== undefined && (typeof options.header.name !== "string" || options.header.name === "")) {
        refuse("header.name", options.header.name, "a header name");
    }

    // The bound on the count: the slots are i × (1000 / rate) for every i whose slot lies inside the duration.
    const total = Math.floor((rate * durationMs) / 1000);
    const intervalMs = 1000 / rate;
    const secure = base.protocol === "https:";
    // Connections are reused, as a client of a real gateway would; never more than the requests in flight.
    const agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: maxInFlight });
    const headers: Record<string, string> = { host: options.host };
    if (options.header !== undefined) headers[options.header.name] = options.header.value;

    const statuses: Record<string, number> = {};
    const errors: Record<string, number> = {};
    const count = (table: Record<string, number>, key: string) => (table[key] = (table[key] ?? 0) + 1);
    const inFlight = new Set<import("node:http").ClientRequest>();
    let sent = 0;
    let skipped = 0;
    let stopped: string | undefined;
    const started = Date.now();

    let wake: () => void = () => undefined;
    const onAbort = () => {
        stopped = String(options.signal?.reason ?? "stopped");
        wake();
    };
    if (options.signal?.aborted === true) onAbort();
    options.signal?.addEventListener("abort", onAbort);
    // Sleeps until `ms` have passed or the signal fires.
    const sleep = (ms: number) =>
        new Promise<void>((resolve) => {
            const timer = setTimeout(done, Math.max(0, ms));
            function done() {
                clearTimeout(timer);
                resolve();
            }
            wake = done;
        });

    // Every name is declared before the closures that use it: Pulumi's closure serializer refuses
    // a closure that reads a variable declared further down ("missing variable in closure environment").
    const send = (): Promise<void> =>
        new Promise((resolve) => {
            sent++;
            let settled = false;
            let timedOut = false;
            const request = (secure ? https : http).request({
                hostname: base.hostname,
                port: base.port === "" ? undefined : Number(base.port),
                path: `${base.pathname}${base.search}`,
                auth: base.username === "" ? undefined : `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`,
                method: "GET",
                headers,
                agent,
                // Which version answers matters here, not who signed the certificate: the
                // default issuer is self-signed and the gateway is addressed by IP.
                ...(secure ? { servername: options.host, rejectUnauthorized: false } : {}),
            });
            inFlight.add(request);
            const timer = setTimeout(() => {
                timedOut = true;
                request.destroy(new Error(`no answer within ${timeoutMs} ms`));
            }, timeoutMs);
            // Why a request got no answer: the stop or its own bound first, whatever Node says then.
            const reason = (err: Error) => (stopped !== undefined ? `stopped: ${stopped}` : timedOut ? `no answer within ${timeoutMs} ms` : err.message);
            const settle = (status: number | undefined, error?: string) => {
                if (settled) return;
                settled = true;
                inFlight.delete(request);
                clearTimeout(timer);
                if (status !== undefined) count(statuses, String(status));
                else count(errors, error ?? "no answer");
                resolve();
            };
            request.on("response", (response: import("node:http").IncomingMessage) => {
                // The body is read (and dropped) so that the connection can be reused; the answer
                // counts once it has all arrived.
                response.on("end", () => settle(response.statusCode));
                response.on("error", (err) => settle(undefined, reason(err)));
                response.on("close", () => settle(undefined, reason(new Error("the connection closed before the answer ended"))));
                response.resume();
            });
            request.on("error", (err) => settle(undefined, reason(err)));
            // A safety net: whatever ends the exchange, the request is counted (settle counts once).
            request.on("close", () => setImmediate(() => settle(undefined, reason(new Error("the connection closed without an answer")))));
            request.end();
        });

    const pending: Promise<void>[] = [];
    try {
        for (let i = 0; i < total && stopped === undefined; i++) {
            await sleep(started + i * intervalMs - Date.now());
            if (stopped !== undefined) break;
            if (inFlight.size >= maxInFlight) {
                skipped++;
                continue;
            }
            pending.push(send());
        }
        if (stopped === undefined) {
            // Wait for the answers, or for the signal, whichever comes first.
            await Promise.race([Promise.all(pending), new Promise<void>((resolve) => (wake = resolve))]);
        }
    } finally {
        options.signal?.removeEventListener("abort", onAbort);
        for (const request of inFlight) request.destroy(new Error(`stopped: ${stopped ?? "done"}`));
        agent.destroy();
    }
    // Requests cut off above settle on their error event, asynchronously: wait for that, so the counts add up.
    await Promise.all(pending);
    return { sent, statuses: { ...statuses }, errors: { ...errors }, skipped, stopped, elapsedMs: Date.now() - started };
}
