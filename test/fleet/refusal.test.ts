// Before a switch touches anything, each stack's new config goes through the program's own rules;
// the fleet refuses with the program's line, naming the stack.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { switchRefusal } from "../../fleet/refusal";
import type { StackView } from "../../fleet/workspace";
import { parseSplit, parseVersion } from "../../fleet/target";

const VERSIONS = { v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" }, v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" } };
const view = (extra: Partial<StackView> = {}): StackView => ({
    name: "eu",
    config: { activeVersion: "v1" },
    raw: { activeVersion: "v1", versions: JSON.stringify(VERSIONS), smokeCheck: "false" },
    secretKeys: new Set(),
    live: { v1: 100 },
    activeVersion: "v1",
    versions: VERSIONS,
    ...extra,
});

describe("the program's rules, before the first stack is touched", () => {
    it("lets a switch to a declared version, or a split that sums to 100, through", () => {
        assert.equal(switchRefusal(view(), parseVersion("v2")), undefined);
        assert.equal(switchRefusal(view(), parseSplit('{"v1":90,"v2":10}')), undefined);
    });

    it("refuses with the program's own line, naming the stack", () => {
        assert.equal(
            switchRefusal(view(), parseVersion("v3")),
            'stack eu: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.',
        );
        assert.equal(
            switchRefusal(view(), parseSplit('{"v1":90,"v2":20}')),
            'stack eu: Invalid config trafficSplit: {"v1":90,"v2":20} sums to 110; the weights must sum to 100. Nothing was changed.',
        );
    });

    it("refuses a stack never deployed: there is nothing to switch from", () => {
        assert.equal(switchRefusal(view({ live: undefined }), parseVersion("v2")), "stack eu has never been deployed (no outputs); run pulumi up on it first");
    });
});
