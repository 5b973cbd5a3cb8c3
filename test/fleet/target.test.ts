// A switch's target and the config change it makes: the same change for the switch (the fleet
// writes the stack file) and for the preview (a copy of it), the version's rules left to the program.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { describeWeights, parseSplit, parseVersion, sameWeights, stackFileConfig, switchConfig, targetWeights, withSwitchConfig } from "../../fleet/target";

describe("the target of a switch", () => {
    it("a version takes all traffic: activeVersion is set, trafficSplit removed", () => {
        const target = parseVersion("v2");
        assert.deepEqual(targetWeights(target), { v2: 100 });
        assert.deepEqual(switchConfig(target, { activeVersion: "v1", trafficSplit: '{"v1":90,"v2":10}' }), { activeVersion: "v2", trafficSplit: undefined });
    });

    it("a split keeps activeVersion while it has a share, else moves it to the largest share (the program requires one)", () => {
        const canary = parseSplit('{"v1":90,"v2":10}');
        assert.deepEqual(switchConfig(canary, { activeVersion: "v1" }), { activeVersion: "v1", trafficSplit: '{"v1":90,"v2":10}' });
        assert.deepEqual(switchConfig(canary, {}), { activeVersion: "v1", trafficSplit: '{"v1":90,"v2":10}' }, "unset means the default, v1");
        const last = parseSplit('{"v1":0,"v2":100}');
        assert.deepEqual(switchConfig(last, { activeVersion: "v1" }), { activeVersion: "v2", trafficSplit: '{"v1":0,"v2":100}' });
        assert.deepEqual(targetWeights(last), { v2: 100 }, "the trafficSplit output lists shares > 0 only");
    });

    it("refuses what is not a version or not a split, in one line; the rest is the program's rule", () => {
        assert.throws(() => parseVersion("v 2"), { message: 'version "v 2" is not a version name; allowed: a version every stack declares, such as v2' });
        assert.throws(() => parseSplit("{v1:90}"), { message: `--split {v1:90} is not JSON; allowed: an object such as '{"v1":90,"v2":10}'` });
        assert.throws(() => parseSplit('{"v1":"90"}'), {
            message: `--split {"v1":"90"} is not a split; allowed: version -> integer percent, such as '{"v1":90,"v2":10}'`,
        });
        assert.throws(() => parseSplit("{}"), { message: `--split {} is not a split; allowed: version -> integer percent, such as '{"v1":90,"v2":10}'` });
        // Sums and known versions are checked per stack by the program's own parser (runner.refusal).
        assert.deepEqual(parseSplit('{"v1":90,"v2":20}'), { kind: "split", weights: { v1: 90, v2: 20 } });
    });

    it("compares and shows live traffic as the outputs have it", () => {
        assert.ok(sameWeights({ v1: 90, v2: 10 }, { v2: 10, v1: 90 }));
        assert.ok(sameWeights({ v2: 100 }, { v1: 0, v2: 100 }));
        assert.ok(!sameWeights({ v1: 100 }, { v2: 100 }));
        assert.ok(!sameWeights(undefined, { v2: 100 }));
        assert.equal(describeWeights({ v2: 100 }), "v2");
        assert.equal(describeWeights({ v1: 90, v2: 10 }), "v1 90% / v2 10%");
        assert.equal(describeWeights(undefined), "nothing (never deployed)");
    });
});

describe("a switched stack file (the switch writes it, the preview writes a copy)", () => {
    const FILE = `encryptionsalt: v1:abc
config:
  # the cluster of this stack
  kubernetes:kubeconfig: /etc/eu.yaml
  cowsay-bluegreen:activeVersion: v1
  cowsay-bluegreen:trafficSplit: '{"v1":90,"v2":10}'
  cowsay-bluegreen:gatewayUrl:
    secure: v1:xyz
`;

    it("changes the two switch keys and keeps the rest, comments and secrets included", () => {
        const text = withSwitchConfig(FILE, "cowsay-bluegreen", { activeVersion: "v2", trafficSplit: undefined });
        assert.equal(
            text,
            `encryptionsalt: v1:abc
config:
  # the cluster of this stack
  kubernetes:kubeconfig: /etc/eu.yaml
  cowsay-bluegreen:activeVersion: v2
  cowsay-bluegreen:gatewayUrl:
    secure: v1:xyz
`,
        );
    });

    it("adds keys a stack file does not have, also to an empty or missing file", () => {
        assert.match(
            withSwitchConfig("config:\n  kubernetes:context: eu\n", "p", { activeVersion: "v1", trafficSplit: '{"v1":90,"v2":10}' }),
            /p:trafficSplit: '\{"v1":90,"v2":10\}'/,
        );
        assert.equal(withSwitchConfig("", "p", { activeVersion: "v2" }), "config:\n  p:activeVersion: v2\n");
    });

    it("leaves a key that already has the value as the user wrote it: quotes and a YAML map stay", () => {
        const file = 'config:\n  p:activeVersion: "v1"\n  p:trafficSplit:\n    v1: 90\n    v2: 10\n';
        assert.equal(withSwitchConfig(file, "p", { activeVersion: "v1", trafficSplit: '{"v1":90,"v2":10}' }), file);
        // Only the key that changes is rewritten; a new value keeps its node's quotes.
        assert.equal(withSwitchConfig(file, "p", { activeVersion: "v1", trafficSplit: undefined }), 'config:\n  p:activeVersion: "v1"\n');
        assert.equal(
            withSwitchConfig(file, "p", { activeVersion: "v2", trafficSplit: '{"v1":90,"v2":10}' }),
            'config:\n  p:activeVersion: "v2"\n  p:trafficSplit:\n    v1: 90\n    v2: 10\n',
        );
    });
});

describe("the switch keys of a stack file", () => {
    it("reads them as the file sets them: absent stays absent, a YAML map reads as its JSON", () => {
        assert.deepEqual(stackFileConfig("config:\n  p:activeVersion: v2\n  p:trafficSplit:\n    v1: 90\n    v2: 10\n", "p"), {
            activeVersion: "v2",
            trafficSplit: '{"v1":90,"v2":10}',
        });
        assert.deepEqual(stackFileConfig("config:\n  q:activeVersion: v2\n", "p"), { activeVersion: undefined, trafficSplit: undefined });
        assert.deepEqual(stackFileConfig("", "p"), { activeVersion: undefined, trafficSplit: undefined });
    });
});
