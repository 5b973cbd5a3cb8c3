// What the fleet shows while it works: plain prefixed lines off a terminal, a live table on one.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";

import { createProgress } from "../../fleet/progress";

/** A stream that records what is written, and the cursor moves a terminal would get. */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
    const stream = new PassThrough() as unknown as NodeJS.WriteStream & { columns: number };
    let text = "";
    (stream as unknown as PassThrough).on("data", (c: Buffer) => (text += c.toString()));
    stream.columns = 80;
    stream.moveCursor = (_dx: number, dy: number) => {
        text += `<up ${-dy}>`;
        return true;
    };
    stream.clearScreenDown = () => {
        text += "<clear>";
        return true;
    };
    return { stream, text: () => text };
}

const STACKS = [
    { stack: "staging", wave: "canary" },
    { stack: "eu", wave: "production" },
];

describe("progress", () => {
    it("off a terminal: one plain line per event, prefixed by the stack's name (or fleet), no steps", async () => {
        const { stream, text } = terminal();
        const progress = createProgress(stream, STACKS, false);
        progress.step("eu", "switching");
        progress.line("eu", "gate: v2 answered with its own page");
        progress.line(undefined, "wave production: eu");
        progress.close();
        await new Promise((r) => setImmediate(r));
        assert.equal(text(), "[eu     ] gate: v2 answered with its own page\n[fleet  ] wave production: eu\n");
    });

    it("on a terminal: the table (stack, wave, seconds, step) is redrawn under the lines the stacks print", async () => {
        const { stream, text } = terminal();
        const progress = createProgress(stream, STACKS, true);
        progress.step("eu", "switching: update VirtualService cowsay-route");
        progress.line("eu", "gate: v2 answered with its own page");
        progress.close();
        await new Promise((r) => setImmediate(r));
        const frames = text().split("<clear>");
        const table = [
            "stack    wave        seconds  step",
            "staging  canary               waiting",
            "eu       production        0  switching: update VirtualService cowsay-route",
            "",
        ].join("\n");
        // The line, once, above the table; the next redraw (close) draws the table alone.
        assert.equal(frames[frames.length - 2], `[eu     ] gate: v2 answered with its own page\n${table}<up 3>`);
        assert.equal(frames[frames.length - 1], table);
        assert.equal(text().split("gate: v2 answered").length, 2);
    });
});
