// The verbs that change stacks refuse, before any stack is touched, a fleet they could only fail:
// here a stack whose provider renders YAML (its bake would find no cluster to read). Run through the
// command line with a fake workspace: the exit code, the one line, and nothing touched, not even the
// record of a switch.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { EXIT_CODES } from "../../fleet/plan";
import { RECORD_FILE } from "../../fleet/record";
import { renderRefusal } from "../../fleet/refusal";
import type { StackView } from "../../fleet/workspace";
import { fakeWorkspace, runFleetCli } from "./fakes";

const VERSIONS = { v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" }, v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" } };
const ANALYSIS = { preSwitch: false, checks: [{ name: "success-rate", metric: "success-rate", min: 99 }] };
const view = (name: string, extra: Partial<StackView> = {}): StackView => ({
    name,
    config: { activeVersion: "v1" },
    raw: {
        activeVersion: "v1",
        versions: JSON.stringify(VERSIONS),
        smokeCheck: "false",
        prometheusUrl: "http://prometheus:9090",
        analysis: JSON.stringify(ANALYSIS),
    },
    secretKeys: new Set(),
    live: { v1: 100 },
    activeVersion: "v1",
    versions: VERSIONS,
    ...extra,
});
const RENDERED = "/tmp/rendered/eu";
const RENDERED_LINE =
    'error: stack eu: kubernetes:renderYamlToDirectory is "/tmp/rendered/eu", so its provider renders YAML and reaches no cluster; ' +
    "the fleet's bake reads every switched stack's live route on its cluster (also with bake 0) and would find none. " +
    "Allowed: a stack on a cluster (pulumi config rm kubernetes:renderYamlToDirectory --stack eu). Nothing was changed.\n";

/** `npm run fleet -- argv` in a project with `fleetYaml`, on the fake workspace of `views`. */
async function fleet(views: readonly StackView[], fleetYaml: string, ...argv: string[]) {
    const dir = mkdtempSync(path.join(tmpdir(), "fleet-commands-"));
    writeFileSync(path.join(dir, "fleet.yaml"), fleetYaml);
    const { open, touched } = fakeWorkspace(dir, views);
    const { code, out, err } = await runFleetCli(argv, dir, open);
    return { code, out, err, touched, recorded: existsSync(path.join(dir, RECORD_FILE)) };
}

const TWO_WAVES = "waves:\n  - name: canary\n    stacks: [staging]\n  - name: production\n    stacks: [eu]\nbake: 0\n";

describe("a fleet with a stack that renders YAML", () => {
    const stacks = [view("staging"), view("eu", { renderYamlTo: RENDERED })];

    for (const argv of [
        ["switch", "v2"],
        ["switch", "--split", '{"v1":90,"v2":10}'],
        ["rollout", "v2"],
        ["rollout", "v2", "--stack", "eu", "--bake", "0"],
    ]) {
        it(`is refused by ${argv.join(" ")} (exit 4), naming the stack and the key, before anything is touched`, async () => {
            const result = await fleet(stacks, TWO_WAVES, ...argv);
            assert.deepEqual(result, { code: EXIT_CODES.refused, out: "", err: RENDERED_LINE, touched: [], recorded: false });
        });
    }

    it("is previewed all the same: a preview changes nothing and reads no cluster, so it goes on to preview each stack", async () => {
        await assert.rejects(fleet(stacks, TWO_WAVES, "preview", "v2"), /^Error: stack (staging|eu): the fake workspace reaches no stack$/);
    });

    it("is not refused for a stack that reaches its cluster", () => {
        assert.equal(renderRefusal(view("eu")), undefined);
        assert.match(renderRefusal(view("eu", { renderYamlTo: RENDERED })) ?? "", /^stack eu: kubernetes:renderYamlToDirectory is /);
    });
});

describe("a fleet whose stacks all reach a cluster", () => {
    it("gets past the refusals: the switch records the fleet and changes the canary's config first", async () => {
        const result = await fleet([view("staging"), view("eu")], TWO_WAVES, "switch", "v2");
        assert.equal(result.recorded, true);
        assert.equal(result.touched[0], "applyConfig staging", result.err);
        assert.ok(!result.touched.includes("applyConfig eu"), "the production wave is never started after the canary failed");
    });
});
