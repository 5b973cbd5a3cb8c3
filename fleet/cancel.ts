// Ctrl-C, and the fleet's own stop after a failure, forwarded to the `pulumi` of one operation in
// flight as an AbortSignal (the Automation API cancels through it), with the grace a terminal's own
// SIGINT needs.
import { StoppedAfterFailure } from "./plan";

/**
 * How long the fleet waits, after Ctrl-C, for a `pulumi` in flight to say it is cancelling before it
 * sends the SIGINT itself. A terminal's Ctrl-C reaches every process of the foreground group, the
 * `pulumi` processes included; a second SIGINT would make them terminate instead of cancel.
 */
const CANCEL_GRACE_MS = 2000;

/**
 * An AbortSignal for one operation that follows `outer` (the fleet's Ctrl-C) unless the operation's
 * `pulumi` has said it is cancelling already (see CANCEL_GRACE_MS). A stop after another operation's
 * failure (StoppedAfterFailure) reached no `pulumi` from the terminal: it is forwarded at once, so
 * that the rollback which follows does not share the machine with a check nobody waits for.
 */
export function forwardCancel(
    outer: AbortSignal | undefined,
    listener: { readonly cancelling: boolean },
    graceMs = CANCEL_GRACE_MS,
): { signal: AbortSignal | undefined; dispose(): void } {
    if (outer === undefined) return { signal: undefined, dispose: () => undefined };
    const inner = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
        if (outer.reason instanceof StoppedAfterFailure) {
            inner.abort();
            return;
        }
        timer = setTimeout(() => {
            if (!listener.cancelling) inner.abort();
        }, graceMs);
    };
    if (outer.aborted) inner.abort();
    else outer.addEventListener("abort", onAbort, { once: true });
    return {
        signal: inner.signal,
        dispose: () => {
            clearTimeout(timer);
            outer.removeEventListener("abort", onAbort);
        },
    };
}
