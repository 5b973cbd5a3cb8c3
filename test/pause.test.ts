// The shared abortable pause (lib/pause.ts): it waits, an abort ends it early without an
// error, and it still does both once Pulumi's closure serializer has turned it into the dynamic
// provider's code (the gate and the analysis sleep with it there).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";

import * as pulumi from "@pulumi/pulumi";

import { pause } from "../lib/pause";

/** Whether `promise` settles before `ms` (a bound far above what it should take: no timing claim). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
        return await Promise.race([promise.then(() => true as const), late]);
    } finally {
        clearTimeout(timer);
    }
}

describe("the abortable pause", () => {
    it("waits at least the time asked", async () => {
        const started = performance.now();
        await pause(50);
        assert.ok(performance.now() - started >= 49, "it returned before 50 ms had passed");
    });

    it("ends without an error when its signal aborts, long before its time", async () => {
        const stop = new AbortController();
        const paused = pause(60_000, stop.signal);
        setTimeout(() => stop.abort(new Error("stopped")), 20);
        assert.equal(await settlesWithin(paused, 5_000), true);
    });

    it("does not wait at all on a signal that has aborted already", async () => {
        assert.equal(await settlesWithin(pause(60_000, AbortSignal.abort()), 5_000), true);
    });

    it("a negative time is no wait", async () => {
        assert.equal(await settlesWithin(pause(-5), 5_000), true);
    });

    it("works once Pulumi has serialized it, in a process of its own, as the dynamic provider runs it", async () => {
        const serialized = await pulumi.runtime.serializeFunction(pause);
        const dir = mkdtempSync(path.join(tmpdir(), "cowsay-pause-fn-"));
        try {
            const file = path.join(dir, "pause.js");
            writeFileSync(file, serialized.text);
            // A 60 s pause aborted after 50 ms: the process ends only if the abort reached it.
            const run = `const f = require(${JSON.stringify(file)}).${serialized.exportName}; const t = Date.now(); f(30, undefined).then(() => f(60000, AbortSignal.timeout(50))).then(() => console.log(Date.now() - t))`;
            const { stdout } = await promisify(execFile)(process.execPath, ["-e", run], { timeout: 20_000 });
            assert.ok(Number(stdout) >= 29, `the serialized pause returned after ${stdout.trim()} ms, before its first 30 ms had passed`);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
