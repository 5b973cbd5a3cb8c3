// The gate's failure as docs/operations.md shows it ("A gate before the switch"), built by the gate
// itself for the gatewayUrl the README has a user set: `https://$GATEWAY_ADDRESS`, the gateway's
// address with its port, 443. The doc once printed that :443, which the message never carries (a URL
// drops its scheme's default port); this holds the doc's line to what runChecks throws.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import type { ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import https from "node:https";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";

import { runChecks } from "../dynamic/gate";
import { ROOT } from "./support/constants";

const COW = "<pre>\n \\   ^__^\n  \\  (oo)\\_______\n</pre>";

/** The failure block of the doc: the fence after "`pulumi up` fails with, for example,". */
function documentedFailure(): string {
    const doc = readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
    const block = /`pulumi up` fails with, for example,\n\n```\n([^`]+)```/.exec(doc);
    assert.ok(block !== null, "docs/operations.md shows the gate's failure after '`pulumi up` fails with, for example,'");
    return block[1].trim();
}

describe("the gate's failure in docs/operations.md", () => {
    it("is what runChecks throws for https://<address>:443 when v2's request gets v1's page", async (t) => {
        // Given a gateway at 203.0.113.10 that answers every request with the v1 cow (node:https
        // replaced: the address is the docs' example, which no test can reach).
        const sent: RequestOptions[] = [];
        t.mock.method(https, "request", (options: RequestOptions, answer: (response: IncomingMessage) => void) => {
            sent.push(options);
            const request = new EventEmitter() as ClientRequest;
            request.end = () => {
                const response = Object.assign(new PassThrough(), { statusCode: 200 }) as unknown as IncomingMessage & PassThrough;
                setImmediate(() => {
                    answer(response);
                    response.end(COW);
                    request.emit("close");
                });
                return request;
            };
            request.destroy = (err?: Error) => {
                if (err !== undefined) request.emit("error", err);
                request.emit("close");
                return request;
            };
            return request;
        });
        // When the gate checks v2 through the URL the README's `gatewayUrl "https://$GATEWAY_ADDRESS"` makes.
        const inputs = { gatewayUrl: "https://203.0.113.10:443", host: "cowsay.example.com", header: "x-cowsay-version", timeoutSeconds: 1, intervalMs: 200 };
        const v2 = { version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" };
        const error = await runChecks({ ...inputs, checks: [v2] }, [v2], { report: () => undefined }).then(
            () => assert.fail("the gate passed on v1's page"),
            (err: Error) => err,
        );
        // Then the request went to port 443, and the message is the doc's: the doc shows a 60 s bound, wraps
        // the line after the header, and elides the page.
        assert.equal(sent[0].hostname, "203.0.113.10");
        assert.equal(sent[0].port, undefined, "https's default port, 443");
        const asDocumented = error.message
            .replace(/^gate failed after \d+ s of 1 s:/, "gate failed after 60 s of 60 s:")
            .replace(` ${JSON.stringify(COW.slice(0, 120))};`, ' "<pre>...";')
            .replace("x-cowsay-version: v2 answered", "x-cowsay-version: v2\nanswered");
        assert.equal(asDocumented, documentedFailure());
    });
});
