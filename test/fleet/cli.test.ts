// The command line: usage, and the arguments refused before any stack (or pulumi) is reached.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";

import { USAGE, main } from "../../fleet/cli";
import { EXIT_CODES } from "../../fleet/plan";
import { ROOT } from "../support/engine";

async function fleet(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out = new PassThrough();
    const err = new PassThrough() as unknown as NodeJS.WriteStream;
    let outText = "";
    let errText = "";
    out.on("data", (c: Buffer) => (outText += c.toString()));
    (err as unknown as PassThrough).on("data", (c: Buffer) => (errText += c.toString()));
    // An empty directory and no pulumi on PATH: a refusal must come before either is needed.
    const saved = process.env.PATH;
    process.env.PATH = "";
    try {
        const code = await main(argv, { out, err, signal: new AbortController().signal }, mkdtempSync(path.join(tmpdir(), "fleet-cli-")));
        return { code, out: outText, err: errText };
    } finally {
        process.env.PATH = saved;
    }
}

describe("npm run fleet", () => {
    it("prints the usage on --help (exit 0) and without a verb (exit 4)", async () => {
        assert.deepEqual(await fleet("--help"), { code: 0, out: `${USAGE}\n`, err: "" });
        assert.deepEqual(await fleet(), { code: 4, out: "", err: `${USAGE}\n` });
    });

    const REFUSALS: [string[], string][] = [
        [["deploy"], 'error: unknown verb "deploy"; allowed: status, preview, switch, rollout, rollback'],
        [["switch"], `error: switch needs a version (switch v2) or --split '{"v1":90,"v2":10}'`],
        [["switch", "v2", "v3"], "error: switch takes one version, got v2 v3"],
        [["switch", "v2", "--split", '{"v2":100}'], "error: switch takes a version or --split, not both"],
        [["switch", "--split", "90/10"], `error: --split 90/10 is not JSON; allowed: an object such as '{"v1":90,"v2":10}'`],
        [
            ["switch", "v2", "--wait", "5"],
            "error: switch: unknown option --wait; allowed: --json (status), --split JSON (switch, preview), --rollout (preview), --steps LIST, --stack NAME, --bake SECONDS (rollout, preview --rollout)",
        ],
        [["rollout"], "error: rollout needs a version (rollout v2)"],
        [["rollout", "v2", "v3"], "error: rollout takes one version, got v2 v3"],
        [
            ["rollout", "v2", "--steps", "50,10,100"],
            "error: --steps 50,10,100 is not a list of steps; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [
            ["rollout", "v2", "--steps", "10,50"],
            "error: --steps 10,50 is not a list of steps; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [
            ["rollout", "v2", "--steps", "10%,100%"],
            "error: --steps 10%,100% is not a list of steps; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [["rollout", "v2", "--bake", "1m"], "error: --bake 1m is not a number of seconds; allowed: an integer, 0 or more"],
        [["rollout", "--split", '{"v2":100}'], "error: --split is an option of switch and preview only"],
        [["switch", "v2", "--steps", "10,100"], "error: --steps is an option of rollout and preview --rollout only"],
        [["switch", "v2", "--bake", "5"], "error: --bake is an option of rollout and preview --rollout only"],
        [["preview", "v2", "--stack", "eu"], "error: --stack is an option of rollout and preview --rollout only"],
        [["switch", "v2", "--rollout"], "error: --rollout is an option of preview only (the verb is rollout)"],
        [["preview", "--rollout"], "error: preview --rollout needs a version (preview v2 --rollout)"],
        [["preview", "--steps", "10,100"], "error: preview --rollout needs a version (preview v2 --rollout)"],
        [["preview", "v2", "--rollout", "--split", '{"v1":90,"v2":10}'], "error: preview takes --split or --rollout, not both"],
        [["switch", "--split"], "error: switch: Option '--split <value>' argument missing"],
        [["status", "v2"], "error: status takes no arguments, got v2"],
        [["rollback", "--json"], "error: --json is an option of status only"],
        [["rollback", "--split", '{"v1":100}'], "error: --split is an option of switch and preview only"],
    ];
    for (const [argv, message] of REFUSALS) {
        it(`refuses ${argv.join(" ") || "nothing"} in one line, exit 4`, async () => {
            const result = await fleet(...argv);
            assert.equal(result.code, 4);
            assert.equal(result.err, `${message}\n`);
            assert.equal(result.out, "");
        });
    }

    it("says how to get pulumi when it is not on PATH", async () => {
        assert.deepEqual(await fleet("status"), {
            code: 4,
            out: "",
            err: 'error: pulumi is not on PATH: install the Pulumi CLI, or run eval "$(scripts/engine.sh env)" (README)\n',
        });
    });
});

describe("the fleet's exit codes", () => {
    it("are one per outcome, and docs/fleet.md's table gives each code its outcome, as EXIT_CODES does", () => {
        const codes = Object.values(EXIT_CODES);
        assert.equal(new Set(codes).size, codes.length, `two outcomes share an exit code: ${JSON.stringify(EXIT_CODES)}`);
        const docs = readFileSync(path.join(ROOT, "docs", "fleet.md"), "utf8");
        const header = "| exit | outcome | meaning |";
        assert.ok(docs.includes(header), `docs/fleet.md has the table of exit codes (${header})`);
        const table = docs.slice(docs.indexOf(header));
        const documented = [...table.slice(0, table.indexOf("\n\n")).matchAll(/^\| (\d+) \| `([^`]+)` \|/gm)].map((m) => [m[2], Number(m[1])]);
        const inCode = Object.entries(EXIT_CODES).sort((a, b) => a[1] - b[1]);
        assert.deepEqual(documented, inCode);
    });
});
