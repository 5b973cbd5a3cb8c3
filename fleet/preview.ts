// `pulumi preview --diff` of one stack for the fleet preview, on a temporary copy of its stack file
// (--config-file), so that no stack file is ever written by a preview.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

import { forwardCancel } from "./cancel";
import { EngineListener, changes, resourceName } from "./engine-events";
import type { PlanProgress } from "./plan";
import { describeTarget, switchConfig, withSwitchConfig, type Target, type Weights } from "./target";
import type { FleetWorkspace, StackView } from "./workspace";

/** One stack's preview in a fleet preview: what its update would change (not a plan: fleet/plan.ts is the plan). */
export interface StackPreview {
    readonly stack: string;
    readonly live: Weights | undefined;
    /** Resources the update would change: op and "Type name". */
    readonly steps: readonly { op: string; resource: string }[];
    /** `pulumi preview --diff` as printed. */
    readonly diff: string;
    readonly error?: string;
}

/**
 * `pulumi preview --diff` of one stack with the config a switch to `target` would give it (or its
 * config as it is). The preview runs on a copy of the stack file (--config-file): the stack's own
 * file is never written, so it stays byte for byte as it was, whatever happens to this process.
 */
export async function previewStack(
    fleet: FleetWorkspace,
    view: StackView,
    target: Target | undefined,
    progress: PlanProgress,
    signal: AbortSignal,
): Promise<StackPreview> {
    const stack = await fleet.stack(view.name);
    const file = fleet.stackFile(view.name);
    const text = fleet.readStackFile(view.name);
    const copyDir = mkdtempSync(path.join(tmpdir(), "fleet-preview-"));
    const copy = path.join(copyDir, path.basename(file));
    writeFileSync(copy, target === undefined ? text : withSwitchConfig(text, fleet.project, switchConfig(target, view.config)));
    const listener = new EngineListener(view.name, progress, "previewing");
    const steps: { op: string; resource: string }[] = [];
    const cancel = forwardCancel(signal, listener);
    try {
        progress.step(view.name, "previewing");
        progress.line(view.name, `previewing ${target === undefined ? "its config as it is" : `a switch to ${describeTarget(target)}`}`);
        const result = await stack.preview({
            configFile: copy,
            diff: true,
            color: "never",
            signal: cancel.signal,
            onEvent: (event) => {
                listener.onEvent(event);
                const step = event.resourcePreEvent?.metadata;
                if (step !== undefined && changes(step)) steps.push({ op: step.op, resource: resourceName(step.urn) });
            },
        });
        progress.step(view.name, "previewed");
        return { stack: view.name, live: view.live, steps, diff: result.stdout };
    } catch (err) {
        progress.step(view.name, "preview failed");
        return { stack: view.name, live: view.live, steps, diff: "", error: listener.reason(err).message };
    } finally {
        cancel.dispose();
        rmSync(copyDir, { recursive: true, force: true });
    }
}
