// How a stack's config is named (lib/stack-config.ts), which the program and the fleet both
// read stacks' config through: the `<project>:` namespace of its keys (what is stripped, what is left
// out, which keys are secrets) and the name of its stack settings file.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { namespacedKey, projectConfig, projectKey, stackSettingsFile } from "../lib/stack-config";

describe("a stack's config keys", () => {
    it("are namespaced by the project, and stripped back to the key", () => {
        assert.equal(namespacedKey("cowsay-bluegreen", "activeVersion"), "cowsay-bluegreen:activeVersion");
        assert.equal(projectKey("cowsay-bluegreen", "cowsay-bluegreen:activeVersion"), "activeVersion");
        // A path set with --path keeps its dots after the prefix.
        assert.equal(projectKey("p", "p:versions.v1.image"), "versions.v1.image");
    });

    it("of another namespace, or of a project whose name only starts the same, are not the project's", () => {
        assert.equal(projectKey("cowsay", "kubernetes:context"), undefined);
        assert.equal(projectKey("cowsay", "cowsay-bluegreen:activeVersion"), undefined);
        assert.equal(projectKey("cowsay", "cowsay"), undefined);
    });

    it("read as the project's keys and values, with the secrets among them, asking isSecret only of the project's keys", () => {
        // Given a stack's config with the project's keys, a provider's and another project's,
        const config: [string, string][] = [
            ["p:activeVersion", "v2"],
            ["kubernetes:kubeconfig", "apiVersion: v1"],
            ["p:gatewayUrl", "https://10.0.0.1"],
            ["q:activeVersion", "v1"],
        ];
        const asked: string[] = [];
        // when it is read with p:gatewayUrl as the one secret,
        const { raw, secretKeys } = projectConfig("p", config, (key) => {
            asked.push(key);
            return key === "p:gatewayUrl";
        });
        // then only p's keys come back, without the prefix, and the secret one is named.
        assert.deepEqual(raw, { activeVersion: "v2", gatewayUrl: "https://10.0.0.1" });
        assert.deepEqual([...secretKeys], ["gatewayUrl"]);
        assert.deepEqual(asked, ["p:activeVersion", "p:gatewayUrl"]);
    });
});

describe("a stack's settings file", () => {
    it("is Pulumi.<stack>.yaml, named after the stack's own name when the name is qualified", () => {
        assert.equal(stackSettingsFile("dev"), "Pulumi.dev.yaml");
        assert.equal(stackSettingsFile("acme/dev"), "Pulumi.dev.yaml");
        assert.equal(stackSettingsFile("organization/cowsay-bluegreen/eu-west"), "Pulumi.eu-west.yaml");
    });
});
