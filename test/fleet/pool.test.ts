// The fleet's worker pool (fleet/pool.ts): never more than `limit` items at once, started in order,
// each once, the next one as soon as a worker is free, none after the stop says so, results in the
// items' order whatever order they end in. Every item ends when the test says, so no timing decides.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { eachLimited, mapLimited } from "../../fleet/pool";

/** A pool run whose items each wait until the test ends them by name. */
function controlled<T>(items: readonly T[], limit: number, options: { stop?: () => boolean } = {}) {
    const started: T[] = [];
    const running = new Set<T>();
    let most = 0;
    const enders = new Map<T, () => void>();
    const done = eachLimited(
        items,
        limit,
        (item) =>
            new Promise<void>((resolve) => {
                started.push(item);
                running.add(item);
                most = Math.max(most, running.size);
                enders.set(item, () => {
                    running.delete(item);
                    resolve();
                });
            }),
        options,
    );
    /** Ends `item` and lets the pool take its next step. */
    const end = async (item: T) => {
        const ender = enders.get(item);
        assert.ok(ender !== undefined, `${String(item)} was not started`);
        ender();
        await new Promise((resolve) => setImmediate(resolve));
    };
    return { started, running, most: () => most, end, done };
}

describe("eachLimited", () => {
    it("runs at most `limit` items at once, starting them in order, the next one as soon as one ends", async () => {
        // Given five items and room for two,
        const pool = controlled(["a", "b", "c", "d", "e"], 2);
        await new Promise((resolve) => setImmediate(resolve));
        // the first two start, and nothing more while they run;
        assert.deepEqual(pool.started, ["a", "b"]);
        // when the second ends first, the third takes its place, not a fourth beside them;
        await pool.end("b");
        assert.deepEqual(pool.started, ["a", "b", "c"]);
        assert.deepEqual([...pool.running].sort(), ["a", "c"]);
        await pool.end("a");
        await pool.end("c");
        await pool.end("d");
        await pool.end("e");
        await pool.done;
        // then every item ran once, in order, never more than two at a time.
        assert.deepEqual(pool.started, ["a", "b", "c", "d", "e"]);
        assert.equal(pool.most(), 2);
    });

    it("starts every item at once when the limit is above their number", async () => {
        const pool = controlled([1, 2, 3], 8);
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(pool.started, [1, 2, 3]);
        for (const item of [3, 1, 2]) await pool.end(item);
        await pool.done;
        assert.equal(pool.most(), 3);
    });

    it("starts no next item once the stop says so, and lets the ones running finish", async () => {
        // Given four items, two at a time, and a stop that turns true while a and b run,
        let stopped = false;
        const pool = controlled(["a", "b", "c", "d"], 2, { stop: () => stopped });
        await new Promise((resolve) => setImmediate(resolve));
        stopped = true;
        // when both end,
        await pool.end("a");
        await pool.end("b");
        await pool.done;
        // then neither worker took another item.
        assert.deepEqual(pool.started, ["a", "b"]);
    });

    it("asks the stop before the very first item too", async () => {
        const pool = controlled(["a"], 1, { stop: () => true });
        await pool.done;
        assert.deepEqual(pool.started, []);
    });

    it("rejects with the error of an item", async () => {
        await assert.rejects(
            eachLimited(["a", "b"], 2, (item) => (item === "b" ? Promise.reject(new Error("b failed")) : Promise.resolve())),
            /^Error: b failed$/,
        );
    });
});

describe("mapLimited", () => {
    it("gives the results in the items' order, whatever order they end in", async () => {
        const ends: string[] = [];
        const results = await mapLimited(["slow", "fast", "mid"], 3, async (item) => {
            // Each item ends after as many turns of the event loop as its delay says.
            const turns = { slow: 3, fast: 1, mid: 2 }[item] ?? 0;
            for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
            ends.push(item);
            return item.toUpperCase();
        });
        assert.deepEqual(ends, ["fast", "mid", "slow"]);
        assert.deepEqual(results, ["SLOW", "FAST", "MID"]);
    });
});
