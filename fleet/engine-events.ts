// Engine events of one stack (the Automation API's onEvent) as progress lines prefixed by the
// stack's name: the step it is at, its gate's lines, its errors; and the one line that says why an
// operation failed.
import type { EngineEvent } from "@pulumi/pulumi/automation";

import type { PlanProgress } from "./plan";

const SHOWN_SEVERITIES: readonly string[] = ["info", "info#err", "warning", "error"];

/**
 * One line of what went wrong, and everything the engine said, for a lock's holders. A stack's own
 * command failed here, after the engine ran and perhaps changed something: not a Refused
 * (lib/refusal.ts), which the fleet reports as refused before anything was touched.
 */
export class StackError extends Error {
    constructor(
        message: string,
        readonly detail: string,
    ) {
        super(message);
    }
}

/** Engine events of one stack, as progress: the step it is at, its gate's lines, its errors. */
export class EngineListener {
    readonly errors: string[] = [];
    /** The `pulumi` in flight said it is cancelling (it received the terminal's Ctrl-C itself). */
    cancelling = false;

    constructor(
        private readonly stack: string,
        private readonly progress: PlanProgress,
        private readonly label: string,
    ) {}

    readonly onEvent = (event: EngineEvent): void => {
        const pre = event.resourcePreEvent;
        if (pre !== undefined && pre.planning !== true && changes(pre.metadata)) {
            this.progress.step(this.stack, `${this.label}: ${pre.metadata.op} ${resourceName(pre.metadata.urn)}`);
        }
        const done = event.resOutputsEvent;
        if (done !== undefined && done.planning !== true && changes(done.metadata)) {
            this.progress.line(this.stack, `${done.metadata.op} ${resourceName(done.metadata.urn)}: done`);
        }
        const stdout = event.stdoutEvent?.message ?? "";
        if (/(\^C|SIGTERM) received/.test(stdout)) this.cancelling = true;
        const diagnostic = event.diagnosticEvent;
        // Debug diagnostics (the SDK's RPC traces) are left out, as the CLI leaves them out.
        if (diagnostic !== undefined && diagnostic.ephemeral !== true && SHOWN_SEVERITIES.includes(diagnostic.severity)) {
            const lines = diagnostic.message
                .split("\n")
                .map((l) => l.trim())
                .filter((l) => l !== "");
            if (diagnostic.severity === "error") this.errors.push(...lines);
            for (const line of lines) this.progress.line(this.stack, diagnostic.severity === "error" ? `error: ${line}` : line);
        }
    };

    /** The one line that says why the operation failed. */
    reason(err: unknown): StackError {
        const detail = String((err as Error).message ?? err);
        // The engine's own errors (the gate, the program's refusals) come first; the CLI's (a lock,
        // a missing stack) are only in its stderr.
        const engine = this.errors
            .map((l) => l.replace(/^(Error: )+/, ""))
            .find((l) => !/^update failed$|^preview failed$|^an unhandled error occurred/i.test(l));
        const cli = /^error: (.*)$/m.exec(detail)?.[1];
        return new StackError(engine ?? cli ?? detail.split("\n").find((l) => l.trim() !== "") ?? "failed", detail);
    }
}

/** A step that changes a resource (providers left out, as the CLI's summary leaves them out). */
export function changes(step: { op: string; type: string }): boolean {
    return !["same", "read"].includes(step.op) && !step.type.startsWith("pulumi:providers:");
}

/** "VirtualService cowsay-route" from a URN. */
export function resourceName(urn: string): string {
    const [, type = "", name = ""] = /::([^:]*(?::[^:]*)*)::([^:]*)$/.exec(urn) ?? [];
    return `${type.split(":").pop() ?? type} ${name}`.trim();
}
