// What the fleet shows while it works, on stderr (stdout carries the result: the report, the status,
// the last lines). On a terminal: a live table (stack, wave, step, seconds) redrawn under the lines
// the stacks print. Elsewhere (CI, a pipe): plain lines only. Every line of a stack is prefixed by
// its name, so the gates of stacks that run at once can be told apart.
import type { PlanProgress } from "./plan";

export interface Progress extends PlanProgress {
    /** Stops redrawing and leaves the last table on screen. */
    close(): void;
}

interface Row {
    readonly stack: string;
    readonly wave: string;
    step: string;
    started?: number;
    ended?: number;
}

/** Steps after which a stack's clock stops. */
const FINAL = /^(switched|failed|cancelled|rolled back|rollback failed|previewed|preview failed|baking: serves the target|bake check failed)$/;

export function createProgress(
    stream: NodeJS.WriteStream,
    stacks: readonly { stack: string; wave: string }[],
    live = stream.isTTY === true && process.env.CI === undefined,
): Progress {
    const prefixWidth = Math.max(0, ...stacks.map((s) => s.stack.length));
    const prefix = (stack: string | undefined) => (stack === undefined ? "fleet".padEnd(prefixWidth) : stack.padEnd(prefixWidth));
    if (!live) {
        return {
            step: () => undefined,
            line: (stack, text) => stream.write(`[${prefix(stack)}] ${text}\n`),
            close: () => undefined,
        };
    }

    const rows = new Map<string, Row>(stacks.map((s) => [s.stack, { stack: s.stack, wave: s.wave, step: "waiting" }]));
    let drawn = 0;
    let pending: string[] = [];
    const table = (): string[] => {
        const now = Date.now();
        const width = stream.columns ?? 100;
        const waveWidth = Math.max(4, ...stacks.map((s) => s.wave.length));
        const header = `${"stack".padEnd(prefixWidth)}  ${"wave".padEnd(waveWidth)}  ${"seconds".padStart(7)}  step`;
        const lines = [...rows.values()].map((r) => {
            const seconds = r.started === undefined ? "" : (((r.ended ?? now) - r.started) / 1000).toFixed(0);
            return `${r.stack.padEnd(prefixWidth)}  ${r.wave.padEnd(waveWidth)}  ${seconds.padStart(7)}  ${r.step}`;
        });
        return [header, ...lines].map((l) => (l.length > width - 1 ? `${l.slice(0, width - 2)}…` : l));
    };
    const render = () => {
        if (drawn > 0) {
            stream.moveCursor(0, -drawn);
            stream.clearScreenDown();
        }
        for (const line of pending) stream.write(`${line}\n`);
        pending = [];
        const lines = table();
        stream.write(`${lines.join("\n")}\n`);
        drawn = lines.length;
    };
    const timer = setInterval(render, 1000);
    timer.unref();
    render();
    return {
        step: (stack, step) => {
            const row = rows.get(stack);
            if (row === undefined) return;
            if (row.started === undefined || row.ended !== undefined) {
                row.started = Date.now();
                row.ended = undefined;
            }
            row.step = step;
            if (FINAL.test(step)) row.ended = Date.now();
            render();
        },
        line: (stack, text) => {
            pending.push(`[${prefix(stack)}] ${text}`);
            render();
        },
        close: () => {
            clearInterval(timer);
            render();
        },
    };
}
