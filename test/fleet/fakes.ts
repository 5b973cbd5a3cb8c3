// Virtual time for the rollout's plan tests: sleeps end in the order of their deadlines, and time
// jumps only once nothing else can run (every fake operation resolves through microtasks only), so
// concurrent waits (a bake's checks every 10 s beside analyses of 4 s each) add up as they would on
// a wall clock, without waiting for one. And a fake workspace for the commands' refusals.
import * as path from "node:path";
import { PassThrough } from "node:stream";

import { stackSettingsFile } from "../../lib/stack-config";
import { main } from "../../fleet/cli";
import type { Clock } from "../../fleet/plan";
import type { FleetWorkspace, StackView } from "../../fleet/workspace";

export class VirtualClock implements Clock {
    t = 0;
    private readonly timers: { at: number; resolve: () => void }[] = [];
    private pumping = false;

    now(): number {
        return this.t;
    }

    sleep(ms: number, signal: AbortSignal): Promise<void> {
        return new Promise<void>((resolve) => {
            if (signal.aborted) return resolve();
            const onAbort = () => {
                const i = this.timers.indexOf(timer);
                if (i >= 0) this.timers.splice(i, 1);
                resolve();
            };
            const timer = {
                at: this.t + ms,
                resolve: () => {
                    signal.removeEventListener("abort", onAbort);
                    resolve();
                },
            };
            this.timers.push(timer);
            signal.addEventListener("abort", onAbort, { once: true });
            this.pump();
        });
    }

    /** Fires the earliest timer once the microtasks have drained (setImmediate runs only then). */
    private pump(): void {
        if (this.pumping) return;
        this.pumping = true;
        setImmediate(() => {
            this.pumping = false;
            this.timers.sort((a, b) => a.at - b.at);
            const next = this.timers.shift();
            if (next === undefined) return;
            this.t = Math.max(this.t, next.at);
            next.resolve();
            if (this.timers.length > 0) this.pump();
        });
    }
}

/** Lets other microtask-only work interleave, as real operations overlap. */
export async function yieldMicrotasks(n = 5): Promise<void> {
    for (let i = 0; i < n; i++) await Promise.resolve();
}

/**
 * The stacks of a fleet as a FleetWorkspace that reads and never changes anything: the views given,
 * no locks, empty stack files. Whatever would reach a stack (`stack`, `applyConfig`) or the Automation
 * API (`workspace`) is recorded in `touched` and rejects, so a refusal can be shown to touch nothing.
 */
export function fakeWorkspace(dir: string, views: readonly StackView[]): { open: (dir: string) => Promise<FleetWorkspace>; touched: string[] } {
    const touched: string[] = [];
    const byName = (name: string): StackView => {
        const view = views.find((v) => v.name === name);
        if (view === undefined) throw new Error(`the fake workspace has no stack ${name}`);
        return view;
    };
    const touch = (what: string): Promise<never> => {
        touched.push(what);
        return Promise.reject(new Error(`${what}: the fake workspace reaches no stack`));
    };
    const fake: Pick<FleetWorkspace, keyof FleetWorkspace> = {
        dir,
        project: "cowsay-bluegreen",
        stackNames: views.map((v) => v.name),
        get workspace(): never {
            touched.push("workspace");
            throw new Error("workspace: the fake workspace has no Automation API");
        },
        view: (name) => Promise.resolve(byName(name)),
        live: (name) => Promise.resolve(byName(name).live),
        outputs: (name) => Promise.resolve({ trafficSplit: byName(name).live }),
        locks: () => [],
        stackFile: (name) => path.join(dir, stackSettingsFile(name)),
        readStackFile: () => "",
        stack: (name) => touch(`stack ${name}`),
        applyConfig: (name) => touch(`applyConfig ${name}`),
    };
    return { open: () => Promise.resolve(fake as FleetWorkspace), touched };
}

/** `npm run fleet -- argv` in `dir` on the workspace `open` gives, with what it printed on stdout and stderr. */
export async function runFleetCli(
    argv: string[],
    dir: string,
    open: (dir: string) => Promise<FleetWorkspace>,
): Promise<{ code: number; out: string; err: string }> {
    const out = new PassThrough();
    const err = new PassThrough();
    let outText = "";
    let errText = "";
    out.on("data", (c: Buffer) => (outText += c.toString()));
    err.on("data", (c: Buffer) => (errText += c.toString()));
    const code = await main(argv, { out, err: err as unknown as NodeJS.WriteStream, signal: new AbortController().signal, open }, dir);
    return { code, out: outText, err: errText };
}
