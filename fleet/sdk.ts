// Where the fleet works around the Automation API (@pulumi/pulumi/automation, pinned in
// package.json) instead of calling it as documented: each workaround says which SDK behaviour it
// avoids and why. test/fleet/sdk.test.ts runs the installed SDK against a recording `pulumi` and fails
// when that behaviour changes, so that an upgrade shows which workaround has become unneeded (or
// wrong) instead of leaving it in place unnoticed.
import { Stack, type EngineEvent, type LocalWorkspace } from "@pulumi/pulumi/automation";

/** The stack's own resource, whose outputs are the stack outputs. */
export const STACK_TYPE = "pulumi:pulumi:Stack";

/**
 * The workspace as the stacks see it, with stack selection left out. `Stack.select` runs
 * `workspace.selectStack` (`pulumi stack select`, which rewrites the user's current stack in the
 * workspace settings) before it hands a stack out, and then names it with --stack in every command
 * anyway. The fleet knows its stacks exist (listStacks), so selecting them would only cost a `pulumi`
 * run per stack, change the user's current stack, and race with the selections of the other stacks.
 */
export function withoutSelection(workspace: LocalWorkspace): LocalWorkspace {
    return new Proxy(workspace, {
        get: (target, property, receiver) => (property === "selectStack" ? () => Promise.resolve() : (Reflect.get(target, property, receiver) as unknown)),
    });
}

/** A stack known to exist, through a workspace from withoutSelection: no `pulumi` runs. */
export function existingStack(name: string, unselecting: LocalWorkspace): Promise<Stack> {
    return Stack.select(name, unselecting);
}

/**
 * The stack, for one `up` that does not read the stack back afterwards. `Stack.up` ends with
 * `this.outputs()` and `this.info()`: three more `pulumi` runs (the outputs twice, masked and with
 * their secrets, then the last history entry), about a second per stack and wave, in the critical
 * path of every wave; the fleet has the outputs from the update's own events (stackOutputsOf) and
 * never uses the summary. The `up` of this stack resolves with `outputs: {}` and no summary.
 */
export function withoutReadBack(stack: Stack): Stack {
    return Object.create(stack, {
        outputs: { value: () => Promise.resolve({}) },
        info: { value: () => Promise.resolve(undefined) },
    }) as Stack;
}

/**
 * The stack outputs an update registered, from one of its engine events (undefined for the other
 * events): with withoutReadBack, `up` returns none. Secrets are masked ("[secret]") in events.
 */
export function stackOutputsOf(event: EngineEvent): Record<string, unknown> | undefined {
    const done = event.resOutputsEvent?.metadata;
    return done?.type === STACK_TYPE ? (done.new?.outputs ?? {}) : undefined;
}

/**
 * The stack's outputs, from its exported state: one `pulumi` run (`stack export`) where
 * `Stack.outputs()` takes two (`stack output --json`, then again with --show-secrets, to tell
 * secrets apart, which the fleet does not need).
 */
export async function exportedOutputs(stack: Stack): Promise<Record<string, unknown>> {
    const state = (await stack.exportStack()) as { deployment?: { resources?: { type: string; outputs?: Record<string, unknown> }[] } };
    return (state.deployment?.resources ?? []).find((r) => r.type === STACK_TYPE)?.outputs ?? {};
}
