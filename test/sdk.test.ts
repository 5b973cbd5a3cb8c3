// The Pulumi SDK behaviours components/sdk.ts works around, shown on the installed SDK: each test
// asserts what the SDK itself does as well as what the workaround does, so that an upgrade that changes
// the SDK's side (the internal disappears, the public API starts telling secrets apart, the dynamic
// provider starts handling Cancel) fails here, where the workaround is, instead of going unnoticed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import * as grpc from "@grpc/grpc-js";
import * as pulumi from "@pulumi/pulumi";
import { ResourceProviderClient, ResourceProviderService } from "@pulumi/pulumi/proto/provider_grpc_pb";
import { Empty } from "google-protobuf/google/protobuf/empty_pb";

import { engineSignal } from "../dynamic/gate";
import { onCancelCall, sdkIsConfigSecret } from "../components/sdk";

/** A file of the installed SDK. */
const sdkFile = (file: string): string => readFileSync(path.join(path.dirname(require.resolve("@pulumi/pulumi/package.json")), file), "utf8");

describe("config secrets (sdkIsConfigSecret)", () => {
    it("the public API returns a secret decrypted with no mark, and does not declare the check", () => {
        pulumi.runtime.setAllConfig({ "p:token": "s3cret", "p:host": "example.com" }, ["p:token"]);
        assert.equal(pulumi.runtime.allConfig()["p:token"], "s3cret");
        assert.equal(new pulumi.Config("p").get("token"), "s3cret");
        assert.doesNotMatch(sdkFile("runtime/config.d.ts"), /isConfigSecret/, "the SDK now declares isConfigSecret: call it without the cast");
    });

    it("the SDK's internal check tells the stack's secret keys from the others", () => {
        pulumi.runtime.setAllConfig({ "p:token": "s3cret", "p:host": "example.com" }, ["p:token"]);
        assert.equal(typeof sdkIsConfigSecret, "function", "the SDK no longer has runtime.isConfigSecret: every secret-capable key is now treated as a secret");
        assert.deepEqual([sdkIsConfigSecret?.("p:token"), sdkIsConfigSecret?.("p:host")], [true, false]);
    });
});

describe("the engine's Cancel in a dynamic provider (onCancelCall)", () => {
    it("the SDK's dynamic provider only acknowledges Cancel", () => {
        // Read from its source: the module starts a provider when loaded. A reformatted SDK fails this
        // too; then read its cancel() again.
        const cancel = /\n    cancel\(call, callback\) \{\n([\s\S]*?)\n    \}\n/.exec(sdkFile("cmd/dynamic-provider/index.js"))?.[1];
        assert.equal(cancel?.trim(), "callback(undefined, new emptyproto.Empty());");
    });

    it("sees a Cancel call on the process's gRPC server (grpc-js, as the dynamic provider serves)", async () => {
        const server = new grpc.Server();
        server.addService(ResourceProviderService, { cancel: (_call: unknown, callback: grpc.sendUnaryData<Empty>) => callback(null, new Empty()) });
        const port = await new Promise<number>((resolve, reject) =>
            server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err === null ? resolve(p) : reject(err))),
        );
        const client = new ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
        try {
            let cancelled = 0;
            assert.equal(
                onCancelCall(() => (cancelled += 1)),
                1,
                "the gRPC server is among the process's active handles",
            );
            assert.equal(cancelled, 0);
            await new Promise<void>((resolve, reject) => client.cancel(new Empty(), (err) => (err === null ? resolve() : reject(err))));
            assert.equal(cancelled, 1);
        } finally {
            client.close();
            server.forceShutdown();
        }
    });

    it("is serialized into the dynamic provider with the gate's engineSignal, and nothing else of components/sdk.ts", async () => {
        const { text } = await pulumi.runtime.serializeFunction(engineSignal);
        assert.match(text, /path\.endsWith\("\/Cancel"\)/);
        assert.doesNotMatch(text, /sdkIsConfigSecret|@pulumi\/pulumi/);
    });
});
