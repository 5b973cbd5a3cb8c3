// An abortable pause, shared by the gate's tries, the analysis's measurements and the fleet's clock.
// Node's timers/promises does the timer and the signal; an abort ends the pause early instead of
// throwing, because every caller checks its own reason to stop right after it.
// The module is required inside the function: the gate and the analysis run in Pulumi's dynamic
// provider, whose closure serializer turns a require of a built-in into the same require there.

/** Resolves after `ms` milliseconds, or at once when `signal` aborts (or has aborted). */
export async function pause(ms: number, signal?: AbortSignal): Promise<void> {
    const { setTimeout: wait } = require("node:timers/promises") as typeof import("node:timers/promises");
    try {
        await wait(Math.max(0, ms), undefined, { signal });
    } catch (err) {
        if ((err as Error).name !== "AbortError") throw err;
    }
}
