// At most `limit` stacks at once: the workers of a wave (plan.ts, rollout.ts) and of the previews
// (commands.ts, rollout-command.ts). Hand-made rather than p-limit or p-map: neither is a dependency
// of the project (only of its tools, p-map as an ES module), and what the callers need beyond them,
// a stop that is checked before each next item is started, is a line here.

export interface EachLimitedOptions {
    /**
     * Asked before each next item is started; once it says true, no worker starts another item (those
     * running finish). Default: never.
     */
    readonly stop?: () => boolean;
}

/**
 * Calls `fn` on every item, at most `limit` at once, starting them in the items' order: each worker
 * takes the next item not yet taken as soon as its last one ends. Resolves once every worker is done;
 * rejects with the first error of `fn` (the other workers' items in flight still run to their end).
 * No item is started with a `limit` below 1.
 */
export async function eachLimited<T>(
    items: readonly T[],
    limit: number,
    fn: (item: T, index: number) => Promise<void>,
    options: EachLimitedOptions = {},
): Promise<void> {
    let next = 0;
    const worker = async () => {
        for (let i = next++; i < items.length; i = next++) {
            if (options.stop?.() === true) return;
            await fn(items[i], i);
        }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** What `fn` gives for each item, in the items' order, computed at most `limit` at once (eachLimited). */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
    const results: R[] = new Array<R>(items.length);
    await eachLimited(items, limit, async (item, i) => {
        results[i] = await fn(item);
    });
    return results;
}
