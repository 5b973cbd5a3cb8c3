// The SDK behaviour the mock harness works around (test/support/helpers.ts, RecordingMocks.recordDependencies):
// under `pulumi.runtime.setMocks` a resource's `dependsOn` never reaches the mocks' `newResource`,
// only the register request the SDK sends to its monitor carries it, so the harness wraps the
// monitor's `registerResource` to read it there. Shown on the installed SDK: if an upgrade starts
// passing dependencies to `newResource`, or stops sending them in the request, this fails here,
// beside the reason for the patch, instead of the ordering tests going quietly blind.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as pulumi from "@pulumi/pulumi";

/** The smallest custom resource (CustomResource itself is abstract). */
class Thing extends pulumi.CustomResource {
    constructor(name: string, props: pulumi.Inputs, opts?: pulumi.CustomResourceOptions) {
        super("test:index:Thing", name, props, opts);
    }
}

describe("the mock monitor and dependsOn (the harness's recordDependencies)", () => {
    it("gives newResource no dependencies, and sends them in the register request", async () => {
        const seen = new Map<string, Record<string, unknown>>();
        const mocks: pulumi.runtime.Mocks = {
            newResource: (args) => {
                seen.set(args.name, { ...args });
                return { id: `${args.name}-id`, state: args.inputs as Record<string, unknown> };
            },
            call: (args) => args.inputs as Record<string, unknown>,
        };
        await pulumi.runtime.setMocks(mocks, "project", "stack", false);
        const requested = new Map<string, string[]>();
        // The same wrap as the harness's: the request's dependency URNs, by resource name.
        const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: never, cb: unknown) => unknown };
        const register = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req: never, callback: unknown) => {
            const request = req as { getName(): string; getDependenciesList(): string[] };
            requested.set(request.getName(), request.getDependenciesList());
            return register(req, callback);
        };

        const first = new Thing("first", { value: 1 });
        const second = new Thing("second", { value: 2 }, { dependsOn: [first] });
        const firstUrn = await new Promise<string>((resolve) => first.urn.apply(resolve));
        await new Promise<string>((resolve) => second.urn.apply(resolve));

        // The SDK's side: newResource sees the inputs, and nothing that names `first`.
        const args = seen.get("second");
        assert.ok(args !== undefined, "newResource was called for the resource");
        assert.deepEqual(args.inputs, { value: 2 });
        assert.doesNotMatch(JSON.stringify(args), /first/, "the mocks now see dependsOn: recordDependencies can go, read it from newResource's args");
        // The request carries it: what the harness reads.
        assert.deepEqual(requested.get("second"), [firstUrn]);
        assert.deepEqual(requested.get("first"), []);
    });
});
