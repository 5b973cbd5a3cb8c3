// The fleet file: what a good one becomes, and every refusal with its exact line (the key, the value,
// what is allowed), raised before any stack is read or touched.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { fleetStacks, parseFleet, readFleet } from "../../fleet/file";
import { Refused } from "../../lib/refusal";

const STACKS = ["staging", "eu", "us", "asia"];
const GOOD = `waves:
  - name: canary
    stacks: [staging]
  - name: production
    stacks: [eu, us, asia]
    parallel: 2          # at most 2 stacks of this wave update at once
bake: 60
onFailure: rollback
`;

describe("fleet.yaml", () => {
    it("the issue's example: waves in order, parallel defaulting to the whole wave, bake and onFailure", () => {
        const fleet = parseFleet(GOOD, STACKS);
        assert.deepEqual(fleet, {
            waves: [
                { name: "canary", stacks: ["staging"], parallel: 1 },
                { name: "production", stacks: ["eu", "us", "asia"], parallel: 2 },
            ],
            bake: 60,
            onFailure: "rollback",
        });
        assert.deepEqual(fleetStacks(fleet), [
            { stack: "staging", wave: "canary" },
            { stack: "eu", wave: "production" },
            { stack: "us", wave: "production" },
            { stack: "asia", wave: "production" },
        ]);
    });

    it("defaults: every stack of a wave at once, bake 0, onFailure rollback", () => {
        assert.deepEqual(parseFleet("waves:\n  - name: all\n    stacks: [eu, us]\n", STACKS), {
            waves: [{ name: "all", stacks: ["eu", "us"], parallel: 2 }],
            bake: 0,
            onFailure: "rollback",
        });
        assert.equal(parseFleet("waves: [{name: a, stacks: [eu]}]\nbake: 0.5\nonFailure: halt\n", STACKS).bake, 0.5);
    });

    const wave = (extra: string) => `waves:\n  - name: canary\n    stacks: [staging]\n${extra}`;
    const REFUSALS: [string, string, string][] = [
        ["not YAML", "waves: [", "fleet.yaml: not valid YAML: "],
        ["an empty file", "", "fleet.yaml: the file is empty; allowed: a mapping with the keys waves, bake, onFailure and steps"],
        ["a list", "- staging\n", 'fleet.yaml: the file is ["staging"]; allowed: a mapping with the keys waves, bake, onFailure and steps'],
        ["no waves", "bake: 60\n", "fleet.yaml: waves is missing; allowed: a list of at least one wave, each with a name and stacks"],
        ["no wave", "waves: []\n", "fleet.yaml: waves is []; allowed: a list of at least one wave, each with a name and stacks"],
        ["an unknown key", wave("bakes: 60\n"), 'fleet.yaml: unknown key "bakes"; allowed keys: waves, bake, onFailure, steps'],
        [
            "an unknown key in a wave",
            "waves:\n  - name: a\n    stacks: [eu]\n    paralel: 2\n",
            'fleet.yaml: waves[0]: unknown key "paralel"; allowed keys: name, stacks, parallel',
        ],
        ["a wave without a name", "waves:\n  - stacks: [eu]\n", "fleet.yaml: waves[0].name is missing; allowed: a non-empty name"],
        [
            "an empty wave",
            wave("  - name: production\n    stacks: []\n"),
            "fleet.yaml: waves[1].stacks is []; allowed: a list of at least one stack of this project",
        ],
        [
            "a wave without stacks",
            wave("  - name: production\n"),
            "fleet.yaml: waves[1].stacks is missing; allowed: a list of at least one stack of this project",
        ],
        ["a stack that is not a name", "waves:\n  - name: a\n    stacks: [3]\n", "fleet.yaml: waves[0].stacks[0] is 3; allowed: a stack name"],
        [
            "parallel 0",
            wave("  - name: production\n    stacks: [eu]\n    parallel: 0\n"),
            "fleet.yaml: waves[1].parallel is 0; allowed: an integer of at least 1 (default: every stack of the wave at once)",
        ],
        [
            "parallel 1.5",
            wave("  - name: production\n    stacks: [eu]\n    parallel: 1.5\n"),
            "fleet.yaml: waves[1].parallel is 1.5; allowed: an integer of at least 1 (default: every stack of the wave at once)",
        ],
        ["a negative bake", wave("bake: -5\n"), "fleet.yaml: bake is -5; allowed: a number of seconds, 0 or more (default 0)"],
        ["a bake as text", wave('bake: "60s"\n'), 'fleet.yaml: bake is "60s"; allowed: a number of seconds, 0 or more (default 0)'],
        [
            "steps that go down",
            wave("steps: [50, 10, 100]\n"),
            "fleet.yaml: steps is [50,10,100]; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [
            "steps that do not end at 100",
            wave("steps: [10, 50]\n"),
            "fleet.yaml: steps is [10,50]; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [
            "a step of 0",
            wave("steps: [0, 100]\n"),
            "fleet.yaml: steps is [0,100]; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        [
            "a step that is not an integer",
            wave("steps: [12.5, 100]\n"),
            "fleet.yaml: steps[0] is 12.5; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100",
        ],
        ["no steps", wave("steps: []\n"), "fleet.yaml: steps is []; allowed: increasing integers from 1 to 100 that end at 100, such as 10,50,100"],
        ["an unknown onFailure", wave("onFailure: retry\n"), 'fleet.yaml: onFailure is "retry"; allowed: rollback or halt (default rollback)'],
        [
            "an unknown stack",
            wave("  - name: production\n    stacks: [eu, eux]\n"),
            'fleet.yaml: waves[1].stacks[1] is "eux", not a stack of this project; allowed: asia, eu, staging, us',
        ],
        [
            "a stack in two waves",
            wave("  - name: production\n    stacks: [eu, staging]\n"),
            'fleet.yaml: waves[1].stacks[1] is "staging", already in wave "canary" (waves[0]); allowed: each stack in one wave, once',
        ],
        [
            "a stack twice in one wave",
            "waves:\n  - name: a\n    stacks: [eu, eu]\n",
            'fleet.yaml: waves[0].stacks[1] is "eu", already in this wave; allowed: each stack in one wave, once',
        ],
        [
            "two waves of one name",
            wave("  - name: canary\n    stacks: [eu]\n"),
            'fleet.yaml: waves[1].name is "canary", already the name of waves[0]; allowed: a name no other wave has',
        ],
    ];
    for (const [what, text, message] of REFUSALS) {
        it(`refuses ${what} in one line: ${message}`, () => {
            assert.throws(
                () => parseFleet(text, STACKS),
                (err: unknown) => {
                    assert.ok(err instanceof Refused);
                    assert.ok(!err.message.includes("\n"), `one line: ${err.message}`);
                    if (what === "not YAML") assert.ok(err.message.startsWith(message), err.message);
                    else assert.equal(err.message, message);
                    return true;
                },
            );
        });
    }

    it("steps, when the file sets them, are a rollout's (fleet.yaml's steps beat the default 10,50,100)", () => {
        assert.deepEqual(parseFleet(wave("steps: [5, 25, 100]\n"), STACKS).steps, [5, 25, 100]);
        assert.deepEqual(parseFleet(wave("steps: [100]\n"), STACKS).steps, [100]);
        assert.equal("steps" in parseFleet(wave(""), STACKS), false);
    });

    it("a project without stacks says how to make one", () => {
        assert.throws(() => parseFleet(wave(""), []), {
            message: 'fleet.yaml: waves[0].stacks[0] is "staging", not a stack of this project; allowed: none yet (pulumi stack init <name>)',
        });
    });

    it("reads fleet.yaml from the project directory, and says where it looked when there is none", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "fleet-file-"));
        assert.throws(() => readFleet(dir, STACKS), { message: `fleet.yaml: not found in ${dir}; write one (docs/fleet.md says how)` });
        writeFileSync(path.join(dir, "fleet.yaml"), GOOD);
        assert.equal(readFleet(dir, STACKS).waves[1].parallel, 2);
    });
});
