// The tests' live traffic: lib/traffic.ts's bounded sender, pointed only at what the tests
// started on this machine. A load generator in a test suite must never reach anything else, so any
// address that is not loopback is refused before a single request; and it stops by itself when its
// duration ends (or at stop()), so a suite that forgets it cannot leave traffic running.
import { BlockList, isIP } from "node:net";

import { sendTraffic, type TrafficOptions, type TrafficResult } from "../../lib/traffic";
import { HOST } from "./constants";

/** What to send; `host` defaults to the gateway's host, `timeoutMs` to 2000. */
export type LoadOptions = Omit<TrafficOptions, "signal" | "host" | "timeoutMs"> & { readonly host?: string; readonly timeoutMs?: number };

/** Load that runs in the background until its duration ends. */
export interface Load {
    /** Resolves when the duration has ended and the last answer is in (or right after stop()). */
    readonly done: Promise<TrafficResult>;
    /** Stops at once; resolves with the counts so far. */
    stop(): Promise<TrafficResult>;
}

// Node's BlockList also matches IPv4-mapped IPv6 forms (::ffff:127.0.0.1, ::ffff:7f00:1).
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** True for 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost; a URL's hostname may keep its brackets. */
export function isLoopback(hostname: string): boolean {
    const bare = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (bare === "localhost") return true;
    const family = isIP(bare);
    return family !== 0 && LOOPBACK.check(bare, family === 4 ? "ipv4" : "ipv6");
}

/** Starts sending to `options.url`, which must be a loopback address (else throws, sending nothing). */
export function startLoad(options: LoadOptions): Load {
    let hostname: string;
    try {
        hostname = new URL(options.url).hostname;
    } catch {
        throw new Error(`load: url is ${JSON.stringify(options.url)}; allowed: an http:// or https:// URL of a loopback address (127.0.0.0/8, ::1, localhost)`);
    }
    if (!isLoopback(hostname)) {
        throw new Error(
            `load: url ${JSON.stringify(options.url)} is not a loopback address; allowed: 127.0.0.0/8, ::1 or localhost (test traffic goes only to what the tests started here)`,
        );
    }
    const controller = new AbortController();
    const done = sendTraffic({ ...options, host: options.host ?? HOST, timeoutMs: options.timeoutMs ?? 2000, signal: controller.signal });
    return {
        done,
        stop: () => {
            controller.abort("the test stopped its load");
            return done;
        },
    };
}

/** Sends the whole load and resolves with its counts. */
export function sendLoad(options: LoadOptions): Promise<TrafficResult> {
    return startLoad(options).done;
}
