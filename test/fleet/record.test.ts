// The record of the last switch (what rollback returns to) and the stale locks a killed switch
// leaves: written whole or not at all, read back exactly, damaged files refused.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";

import { allStale, fileBackendLocks, lockHolders } from "../../fleet/locks";
import { RECORD_FILE, inState, newRecord, readRecord, stillRunning, withAnalysis, writeRecord } from "../../fleet/record";

const BEFORE = {
    staging: { wave: "canary", config: { activeVersion: "v1" }, ran: { v1: 100 } },
    eu: { wave: "production", config: {}, ran: { v1: 90, v2: 10 } },
};

describe("the switch record", () => {
    it("reads back what was written, and replaces the file whole (no temporary file left)", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-record-"));
        assert.equal(readRecord(dir), undefined);
        const record = newRecord({ kind: "version", version: "v2" }, BEFORE, new Date("2026-11-29T10:00:00Z"));
        writeRecord(dir, record);
        assert.deepEqual(readRecord(dir), record);
        writeRecord(dir, inState(record, "switched"));
        assert.equal(readRecord(dir)?.state, "switched");
        assert.deepEqual(readdirSync(path.join(dir, ".fleet")), ["last-switch.json"]);
        assert.equal(record.id, `2026-11-29T10:00:00.000Z-${process.pid}`);
    });

    it("refuses a damaged record instead of rolling back to a guess", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-record-"));
        mkdirSync(path.join(dir, ".fleet"));
        writeFileSync(path.join(dir, RECORD_FILE), '{"id": "x", "tar');
        assert.throws(() => readRecord(dir), {
            message: ".fleet/last-switch.json is not JSON; it was not written by npm run fleet (restore it from a backup, or remove it and roll back by hand)",
        });
        writeFileSync(path.join(dir, RECORD_FILE), JSON.stringify({ ...newRecord({ kind: "version", version: "v2" }, BEFORE), state: "done" }));
        assert.throws(() => readRecord(dir), /^Refused: \.fleet\/last-switch\.json: state: Invalid option/);
    });

    it("a switch is still running only while its process lives on this machine", () => {
        const record = { ...newRecord({ kind: "version", version: "v2" }, BEFORE), pid: 4242, host: "laptop" };
        assert.equal(
            stillRunning(record, () => true, "laptop"),
            true,
        );
        assert.equal(
            stillRunning(record, () => false, "laptop"),
            false,
            "killed",
        );
        assert.equal(
            stillRunning(record, () => true, "ci-runner"),
            false,
            "another machine's: its locks guard the stacks",
        );
        assert.equal(
            stillRunning({ ...record, state: "interrupted" }, () => true, "laptop"),
            false,
        );
    });
});

describe("the record of a rollout", () => {
    const ENTRY = {
        stack: "eu",
        step: 10,
        phase: "step" as const,
        verdict: "failed" as const,
        summary: "analysis of v2 on eu at 10% failed: check success-rate measurement 1/2: 80 is below min 99 (bound: min 99); query at http://p:9090: q",
        measurements: [
            {
                check: "success-rate",
                index: 1,
                count: 2,
                at: "2026-11-29T10:00:02.000Z",
                query: "q",
                value: 80,
                requests: 40,
                bound: "min 99",
                verdict: "failed" as const,
                reason: "80 is below min 99",
            },
        ],
    };

    it("holds its steps, its bake and every analysis as it ended, and reads back exactly", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-record-"));
        const record = newRecord({ kind: "version", version: "v2" }, BEFORE, new Date("2026-11-29T10:00:00Z"), { steps: [10, 50, 100], bake: 30 });
        assert.deepEqual(record.rollout, { steps: [10, 50, 100], bake: 30, analyses: [] });
        const twice = withAnalysis(withAnalysis(record, ENTRY), { ...ENTRY, stack: "us", verdict: "passed" });
        writeRecord(dir, inState(twice, "rolled-back"));
        const read = readRecord(dir);
        assert.deepEqual(
            read?.rollout?.analyses.map((a) => [a.stack, a.verdict]),
            [
                ["eu", "failed"],
                ["us", "passed"],
            ],
        );
        assert.deepEqual(read?.rollout?.analyses[0], ENTRY);
        assert.equal(read?.state, "rolled-back");
    });

    it("a switch's record has no rollout part, and a record without one still reads", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-record-"));
        const record = newRecord({ kind: "version", version: "v2" }, BEFORE);
        assert.equal("rollout" in record, false);
        writeRecord(dir, record);
        assert.deepEqual(readRecord(dir), record);
        assert.throws(() => withAnalysis(record, ENTRY), { message: "withAnalysis: the record is not a rollout's" });
    });

    it("refuses a measurement with an unknown verdict: the judge never writes one", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-record-"));
        const record = withAnalysis(newRecord({ kind: "version", version: "v2" }, BEFORE, new Date(), { steps: [100], bake: 0 }), {
            ...ENTRY,
            verdict: "maybe" as "passed",
        });
        writeRecord(dir, record);
        assert.throws(() => readRecord(dir), /^Refused: \.fleet\/last-switch\.json: rollout\.analyses\.0\.verdict: Invalid option/);
    });
});

describe("locks left by a killed update", () => {
    const MESSAGE = [
        "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
        "  file:///tmp/state/.pulumi/locks/organization/cowsay-bluegreen/eu/1.json: created by root@laptop (pid 111) at 2026-11-29T10:00:00Z",
        "  file:///tmp/state/.pulumi/locks/organization/cowsay-bluegreen/eu/2.json: created by ci user@runner-7 (pid 222) at 2026-11-29T10:00:01Z",
    ].join("\n");

    it("reads the holders from the CLI's error", () => {
        assert.deepEqual(lockHolders(MESSAGE), [
            { user: "root", host: "laptop", pid: 111 },
            { user: "ci user", host: "runner-7", pid: 222 },
        ]);
        assert.equal(lockHolders("error: gate failed"), undefined);
        assert.deepEqual(lockHolders(`${MESSAGE}\n${MESSAGE}`), lockHolders(MESSAGE), "one holder per lock file, however often the error is quoted");
    });

    it("are stale only when every holder is a process of this machine that no longer runs", () => {
        const holders = lockHolders(MESSAGE) ?? [];
        assert.equal(
            allStale(holders.slice(0, 1), "laptop", () => false),
            true,
        );
        assert.equal(
            allStale(holders.slice(0, 1), "laptop", () => true),
            false,
            "a live update",
        );
        assert.equal(
            allStale(holders, "laptop", () => false),
            false,
            "one is another machine's",
        );
        assert.equal(
            allStale([], "laptop", () => false),
            false,
        );
    });

    it("are read from a file:// backend's lock directory; other backends cannot say", () => {
        const state = mkdtempSync(path.join(tmpdir(), "fleet-locks-"));
        const dir = path.join(state, ".pulumi", "locks", "organization", "cowsay-bluegreen", "eu");
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, "a.json"), JSON.stringify({ pid: 7, username: "root", hostname: "laptop", timestamp: "2026-11-29T10:00:00Z" }));
        const url = pathToFileURL(state).href;
        assert.deepEqual(fileBackendLocks(url, "cowsay-bluegreen", "eu"), [{ user: "root", host: "laptop", pid: 7 }]);
        assert.deepEqual(fileBackendLocks(url, "cowsay-bluegreen", "us"), []);
        assert.equal(fileBackendLocks("s3://bucket", "cowsay-bluegreen", "eu"), undefined);
    });
});
