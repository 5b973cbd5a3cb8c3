// Every refusal is one type (lib/refusal.ts Refused), and the two places that end a run treat every
// one alike, whatever file refused: the program prints its line as Pulumi's RunError (no stack trace,
// nothing registered), the fleet prints it on stderr and exits 4 with nothing touched. One refusal
// from each place that refuses, through the program under mocks and the fleet's command line on a
// fake workspace; a config refusal reads the same through both.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { CONFIG_KEYS, parseSettings, type LastRun } from "../config";
import type { FleetWorkspace, StackView } from "../fleet/workspace";
import { EXIT_CODES } from "../fleet/plan";
import { RECORD_FILE } from "../fleet/record";
import { Refused } from "../lib/refusal";
import { fakeWorkspace, runFleetCli } from "./fleet/fakes";
import { runProgram } from "./support/helpers";

const cow = { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" };
const hotdog = { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" };
const VERSIONS = { v1: cow, v2: hotdog };
/** What the stack ran last: v1, all of the live traffic. */
const RAN: LastRun = { live: ["v1"], versions: VERSIONS };
const ONE_WAVE = "waves:\n  - name: all\n    stacks: [eu]\nbake: 0\n";

/** Stack eu on v1 alone, with `raw` over its config. */
const view = (raw: Record<string, string> = {}, extra: Partial<StackView> = {}): StackView => ({
    name: "eu",
    config: { activeVersion: "v1" },
    raw: { activeVersion: "v1", versions: JSON.stringify(VERSIONS), smokeCheck: "false", ...raw },
    secretKeys: new Set(),
    live: { v1: 100 },
    activeVersion: "v1",
    versions: VERSIONS,
    ...extra,
});

/** `npm run fleet -- argv` in a project holding `files`, on the fake workspace of `views` (or `open`). */
async function fleet(views: readonly StackView[], files: Record<string, string>, argv: string[], open?: (dir: string) => Promise<FleetWorkspace>) {
    const dir = mkdtempSync(path.join(tmpdir(), "fleet-refused-"));
    for (const [file, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        writeFileSync(path.join(dir, file), text);
    }
    const fake = fakeWorkspace(dir, views);
    const { code, out, err } = await runFleetCli(argv, dir, open ?? fake.open);
    // Whether the fleet wrote its record of a switch (a record the project held before does not count).
    const record = path.join(dir, RECORD_FILE);
    const recorded = existsSync(record) && readFileSync(record, "utf8") !== files[RECORD_FILE];
    return { code, out, err, touched: fake.touched, recorded };
}

/**
 * One refusal of the stack config from each file that refuses one: the stack's config (as a switch
 * to v2 leaves it), its secrets and its last run, the key and the line.
 */
const CONFIG_REFUSALS: { from: string; raw: Record<string, string>; secret?: string; last?: LastRun; key: string; message: string }[] = [
    {
        from: "config/values.ts, a zod conversion",
        raw: { replicas: "two" },
        key: "replicas",
        message: 'Invalid config replicas: "two" is not allowed; expected an integer from 1 to 1000.',
    },
    {
        from: "config/index.ts, a key the schema does not declare",
        raw: { colour: "blue" },
        key: "colour",
        message: `Invalid config colour: unknown key; allowed keys: ${CONFIG_KEYS.join(", ")}.`,
    },
    {
        from: "config/index.ts, a secret where it cannot be kept",
        raw: { hostname: "cowsay.example.com" },
        secret: "hostname",
        key: "hostname",
        message:
            "Invalid config hostname: is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only gatewayUrl, prometheusUrl, prometheusToken and acmeEmail can be kept secret. Set it again without --secret.",
    },
    {
        from: "config/rules.ts, a live version dropped",
        raw: { versions: JSON.stringify({ v2: hotdog }) },
        last: RAN,
        key: "versions",
        message:
            "Invalid config versions: v1 takes live traffic now, but versions declares only v2; this update would delete it. Declare it again (pulumi config set --path 'versions.v1.image' 'dougbtv/nginx-cowsay:v1' && pulumi config set --path 'versions.v1.expect' '^__^'), move the traffic away first, and remove a version once it is idle.",
    },
    {
        from: "lib/analysis/checks.ts, the analysis value",
        raw: { analysis: JSON.stringify({ checks: [{ name: "a", query: "up", min: 5, max: 1 }] }) },
        key: "analysis.checks[0].min",
        message: "Invalid config analysis.checks[0].min: is 5, above max 1; no value could pass.",
    },
];

describe("a refusal of the stack config, from each file that refuses one", () => {
    for (const refusal of CONFIG_REFUSALS) {
        const config = { activeVersion: "v2", versions: JSON.stringify(VERSIONS), smokeCheck: "false", ...refusal.raw };
        const secretKeys = refusal.secret === undefined ? [] : [refusal.secret];

        it(`${refusal.from}: is a Refused naming the key`, () => {
            assert.throws(
                () => parseSettings(config, new Set(secretKeys), refusal.last),
                (err: unknown) => err instanceof Refused && err.key === refusal.key && err.message === refusal.message,
            );
        });

        it(`${refusal.from}: fails the program with its line as a RunError, nothing registered`, async () => {
            const previousOutputs = refusal.last === undefined ? undefined : { trafficSplit: { v1: 100 }, versions: refusal.last.versions };
            const run = await runProgram(config, { secretKeys, previousOutputs });
            assert.ok(pulumi.RunError.isInstance(run.error), String(run.error));
            assert.equal(run.error?.message, `${refusal.message} Nothing was changed.`);
            assert.deepEqual(run.resources, []);
        });

        it(`${refusal.from}: refuses the fleet's switch with the program's line for the stack, exit 4, nothing touched`, async () => {
            // The stack still runs v1; the switch to v2 would give it `config`.
            const stack = view(refusal.raw, { secretKeys: new Set(secretKeys) });
            assert.deepEqual(await fleet([stack], { "fleet.yaml": ONE_WAVE }, ["switch", "v2"]), {
                code: EXIT_CODES.refused,
                out: "",
                err: `error: stack eu: ${refusal.message} Nothing was changed.\n`,
                touched: [],
                recorded: false,
            });
        });
    }
});

/** One refusal of the fleet's own from each file that refuses: the project, the command line and the line. */
const FLEET_REFUSALS: { from: string; views?: StackView[]; files?: Record<string, string>; argv: string[]; line: string }[] = [
    { from: "fleet/cli.ts, the arguments", argv: ["status", "v2"], line: "status takes no arguments, got v2" },
    {
        from: "fleet/target.ts, the target",
        argv: ["switch", "--split", "90/10"],
        line: `--split 90/10 is not JSON; allowed: an object such as '{"v1":90,"v2":10}'`,
    },
    {
        from: "fleet/file.ts, the fleet file",
        files: { "fleet.yaml": "waves: []\n" },
        argv: ["switch", "v2"],
        line: "fleet.yaml: waves is []; allowed: a list of at least one wave, each with a name and stacks",
    },
    {
        from: "fleet/record.ts, the switch record",
        files: { [RECORD_FILE]: "{" },
        argv: ["rollback"],
        line: `${RECORD_FILE} is not JSON; it was not written by npm run fleet (restore it from a backup, or remove it and roll back by hand)`,
    },
    {
        from: "fleet/commands.ts, nothing to roll back",
        argv: ["rollback"],
        line: `no fleet switch is recorded here (${RECORD_FILE}): nothing to roll back`,
    },
    {
        from: "fleet/commands.ts, a locked stack",
        views: [view({}, { locked: true })],
        files: { "fleet.yaml": ONE_WAVE },
        argv: ["switch", "v2"],
        line: "stack eu is locked by another update; wait for it, or run pulumi cancel --stack eu once nothing runs. Nothing was changed.",
    },
    {
        from: "fleet/rollout-command.ts, the stack of a rollout",
        argv: ["rollout", "v2", "--stack", "asia"],
        line: "--stack asia is not a stack of this project; allowed: eu",
    },
    {
        from: "fleet/rollout-runner.ts, a stack without a Prometheus",
        argv: ["rollout", "v2", "--stack", "eu"],
        line: "stack eu: prometheusUrl is not set; a rollout judges every step on the stack's Prometheus (pulumi config set prometheusUrl http://prometheus:9090 --stack eu; docs/analysis.md). Nothing was changed.",
    },
];

describe("a refusal of the fleet's, from each file that refuses one", () => {
    for (const refusal of FLEET_REFUSALS) {
        it(`${refusal.from}: exit 4, its one line, nothing touched`, async () => {
            const result = await fleet(refusal.views ?? [view()], refusal.files ?? {}, refusal.argv);
            assert.deepEqual(result, { code: EXIT_CODES.refused, out: "", err: `error: ${refusal.line}\n`, touched: [], recorded: false });
        });
    }

    it("is told apart by its type alone: a Refused from anywhere is exit 4, any other error is the tool's failure", async () => {
        const throwing = (err: Error) => () => Promise.reject(err);
        const refused = await fleet([], {}, ["status"], throwing(new Refused("the workspace refused")));
        assert.deepEqual([refused.code, refused.err], [EXIT_CODES.refused, "error: the workspace refused\n"]);
        await assert.rejects(fleet([], {}, ["status"], throwing(new Error("the workspace broke"))), /^Error: the workspace broke$/);
    });
});
