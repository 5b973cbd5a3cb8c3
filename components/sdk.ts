// Where the program works around the Pulumi Node.js SDK (@pulumi/pulumi, pinned in package.json)
// instead of calling it as documented: each workaround says which SDK behaviour it avoids and why.
// test/sdk.test.ts runs them on the installed SDK and fails when that behaviour changes, so that an
// upgrade shows which workaround has become unneeded (or wrong) instead of leaving it in place.
import * as pulumi from "@pulumi/pulumi";

/**
 * Whether the stack stores a config key (`<project>:<key>`) as a secret, from the SDK's internal
 * `runtime.isConfigSecret`; undefined if the SDK no longer has it. The SDK knows (the language host
 * passes the secret keys), but its public API does not say: `runtime.allConfig()` and `Config.get`
 * return a secret decrypted, with no mark, and the check is left out of the typings as internal.
 */
export const sdkIsConfigSecret: ((fullKey: string) => boolean) | undefined = (pulumi.runtime as unknown as { isConfigSecret?: (fullKey: string) => boolean })
    .isConfigSecret;

/**
 * Inside a dynamic provider's process: calls `onCancel` when the engine calls the provider's Cancel
 * (on Ctrl-C); returns how many gRPC servers it watches. The SDK's dynamic provider acknowledges
 * Cancel and does nothing else, and the engine then waits for the operations in flight, so this
 * watches the provider's own gRPC server for that call: @grpc/grpc-js serves on a Node Http2Server,
 * which Node keeps among the process's active handles (`process._getActiveHandles`, undocumented).
 * Self-contained (no imports): Pulumi serializes it into the dynamic provider with its caller.
 */
export function onCancelCall(onCancel: () => void): number {
    type Handle = { constructor?: { name?: string }; on?: (event: string, listener: (stream: unknown, headers: unknown) => void) => void };
    const handles = (process as unknown as { _getActiveHandles?: () => Handle[] })._getActiveHandles?.() ?? [];
    const servers = handles.filter((h) => h.constructor?.name === "Http2Server");
    for (const server of servers) {
        server.on?.("stream", (_stream, headers) => {
            const path = (headers as Record<string, string> | undefined)?.[":path"];
            if (typeof path === "string" && path.endsWith("/Cancel")) onCancel();
        });
    }
    return servers.length;
}
