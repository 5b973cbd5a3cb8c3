// The Automation API behaviours fleet/sdk.ts works around, shown on the installed SDK with a recording
// `pulumi` (no CLI, no engine): each first test asserts what the SDK itself does, and fails when an
// upgrade changes it (the workaround may then go, or be wrong); the second shows the workaround.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import * as grpc from "@grpc/grpc-js";
import { LocalWorkspace, PulumiCommand, Stack, type EngineEvent } from "@pulumi/pulumi/automation";
import { EventsClient } from "@pulumi/pulumi/proto/events_grpc_pb";
import { EventRequest } from "@pulumi/pulumi/proto/events_pb";

import { STACK_TYPE, existingStack, exportedOutputs, stackOutputsOf, withoutReadBack, withoutSelection } from "../../fleet/sdk";

const OUTPUTS = { trafficSplit: { v1: 100 }, activeVersion: "v1" };
const STACK_URN = "urn:pulumi:eu::cowsay-bluegreen::pulumi:pulumi:Stack::cowsay-bluegreen-eu";
const STACK_OUTPUTS_EVENT: EngineEvent = {
    sequence: 1,
    timestamp: 0,
    resOutputsEvent: {
        metadata: {
            op: "same",
            urn: STACK_URN,
            type: STACK_TYPE,
            provider: "",
            new: { type: STACK_TYPE, urn: STACK_URN, id: "", parent: "", provider: "", inputs: {}, outputs: OUTPUTS },
        },
    },
};

/** Sends `events` to the SDK's event server of one command, as the engine does with --event-log tcp://... */
async function sendEvents(address: string, events: readonly EngineEvent[]): Promise<void> {
    const client = new EventsClient(address.replace(/^tcp:\/\//, ""), grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) => {
        const call = client.streamEvents((err) => (err === null ? resolve() : reject(err)));
        for (const event of events) call.write(new EventRequest().setEvent(JSON.stringify(event)));
        call.end();
    });
    client.close();
}

/**
 * A LocalWorkspace over a `pulumi` that records each command and answers
 * as the CLI would: the outputs, an empty history, a state with the Stack resource; an `up` with an
 * event log gets the Stack's outputs event.
 */
async function recordingWorkspace(): Promise<{ workspace: LocalWorkspace; calls: string[] }> {
    const calls: string[] = [];
    const answer = (args: readonly string[]): string => {
        const command = args.slice(0, 2).join(" ");
        if (command === "stack output") return JSON.stringify(OUTPUTS);
        if (command === "stack history") return "[]";
        if (args[0] === "config") return "{}";
        if (command === "stack export") return JSON.stringify({ version: 3, deployment: { resources: [{ urn: "", type: STACK_TYPE, outputs: OUTPUTS }] } });
        return "";
    };
    // PulumiCommand's constructor and run are internal to the SDK: the mock boundary.
    const pulumi = Object.create(PulumiCommand.prototype, {
        command: { value: "pulumi" },
        // The CLI this SDK release ships with, so that the SDK takes its current event path (gRPC).
        version: { value: { toString: () => (require("@pulumi/pulumi/package.json") as { version: string }).version } },
        run: {
            // What the SDK reads of the CLI's result (its CommandResult is not in its types).
            value: async (args: string[]): Promise<{ stdout: string; stderr: string; code: number }> => {
                calls.push(args.join(" "));
                const log = args.indexOf("--event-log");
                if (log >= 0) await sendEvents(args[log + 1], [STACK_OUTPUTS_EVENT]);
                return { stdout: answer(args), stderr: "", code: 0 };
            },
        },
    }) as PulumiCommand;
    const workspace = await LocalWorkspace.create({ workDir: mkdtempSync(path.join(tmpdir(), "fleet-sdk-")), pulumiCommand: pulumi });
    return { workspace, calls };
}

describe("the Automation API's stack selection (withoutSelection)", () => {
    it("Stack.select runs pulumi stack select, which changes the user's current stack", async () => {
        const { workspace, calls } = await recordingWorkspace();
        await Stack.select("eu", workspace);
        assert.deepEqual(calls, ["stack select --stack eu"]);
    });

    it("through withoutSelection no pulumi runs, and every command still names its stack", async () => {
        const { workspace, calls } = await recordingWorkspace();
        const stack = await existingStack("eu", withoutSelection(workspace));
        assert.deepEqual(calls, []);
        await stack.getAllConfig();
        await stack.setConfig("cowsay-bluegreen:activeVersion", { value: "v2" });
        assert.deepEqual(calls, [
            "config --show-secrets --json --stack eu",
            "config set cowsay-bluegreen:activeVersion --stack eu --plaintext --non-interactive -- v2",
        ]);
    });
});

describe("the Automation API's up (withoutReadBack, stackOutputsOf)", () => {
    it("Stack.up reads the stack back after the update: its outputs twice, then its last history entry", async () => {
        const { workspace, calls } = await recordingWorkspace();
        const stack = await existingStack("eu", withoutSelection(workspace));
        const result = await stack.up({ message: "m" });
        assert.deepEqual(calls, [
            "up --yes --skip-preview --message m --exec-kind auto.local --stack eu",
            "stack output --json --stack eu",
            "stack output --json --show-secrets --stack eu",
            "stack history --json --show-secrets --page-size 1 --page 1 --stack eu",
        ]);
        assert.deepEqual(result.outputs.activeVersion, { value: "v1", secret: false });
    });

    it("withoutReadBack runs the update alone; its outputs come from the update's own events", async () => {
        const { workspace, calls } = await recordingWorkspace();
        const stack = await existingStack("eu", withoutSelection(workspace));
        let outputs: Record<string, unknown> | undefined;
        const result = await withoutReadBack(stack).up({ message: "m", onEvent: (event) => (outputs = stackOutputsOf(event) ?? outputs) });
        assert.equal(calls.length, 1, calls.join("\n"));
        assert.match(calls[0], /^up --yes --skip-preview --message m --exec-kind auto\.local --event-log tcp:\/\/127\.0\.0\.1:\d+ --stack eu$/);
        assert.deepEqual([result.outputs, result.summary], [{}, undefined]);
        assert.deepEqual(outputs, OUTPUTS);
    });
});

describe("the Automation API's outputs (exportedOutputs)", () => {
    it("Stack.outputs runs pulumi twice (masked, then with secrets); the exported state once", async () => {
        const { workspace, calls } = await recordingWorkspace();
        const stack = await existingStack("eu", withoutSelection(workspace));
        await stack.outputs();
        assert.deepEqual(calls, ["stack output --json --stack eu", "stack output --json --show-secrets --stack eu"]);
        calls.length = 0;
        assert.deepEqual(await exportedOutputs(stack), OUTPUTS);
        assert.deepEqual(calls, ["stack export --show-secrets --stack eu"]);
    });
});
