// The smoke check itself, against a local HTTP server that answers like the two versions.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { runSmokeChecks, type SmokeCheckInputs } from "../components/smokecheck";

const COW = "<pre>\n \\   ^__^\n  \\  (oo)\\_______\n</pre>";
const HOTDOG = "<pre>\n  |O___O |\n</pre>";

describe("runSmokeChecks", () => {
    let server: Server;
    let url = "";
    const seen: { host?: string; version?: string }[] = [];
    // What the "gateway" answers per version; a test may swap a page or delay readiness.
    const pages: Record<string, string> = {};
    let notReadyFor = 0;

    before(async () => {
        server = createServer((req, res) => {
            const version = req.headers["x-cowsay-version"] as string | undefined;
            seen.push({ host: req.headers.host, version });
            if (notReadyFor > 0) {
                notReadyFor--;
                res.writeHead(503).end("no healthy upstream");
                return;
            }
            res.writeHead(200, { "content-type": "text/html" }).end(pages[version ?? "v1"] ?? COW);
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => server.close());

    const inputs = (over: Partial<SmokeCheckInputs> = {}): SmokeCheckInputs => ({
        gatewayUrl: url,
        host: "cowsay.example.com",
        header: "x-cowsay-version",
        checks: [
            { version: "v1", image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            { version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
        ],
        attempts: 3,
        intervalMs: 10,
        ...over,
    });

    it("passes when each version answers with its own page, asking for it by header and host", async () => {
        Object.assign(pages, { v1: COW, v2: HOTDOG });
        seen.length = 0;
        const outcome = await runSmokeChecks(inputs());
        assert.match(outcome.checkedAt, /^\d{4}-\d\d-\d\dT/);
        assert.deepEqual(seen, [
            { host: "cowsay.example.com", version: "v1" },
            { host: "cowsay.example.com", version: "v2" },
        ]);
    });

    it("fails, naming the version and what came back, when a version answers with another's page", async () => {
        Object.assign(pages, { v1: COW, v2: COW });
        await assert.rejects(runSmokeChecks(inputs()), (err: Error) => {
            assert.match(err.message, /^smoke check failed: version v2 \(dougbtv\/nginx-cowsay:v2\) at http:\/\/127\.0\.0\.1:\d+ with x-cowsay-version: v2 answered 200 with a page that does not contain "O___O"/);
            assert.match(err.message, /the route was not changed and traffic stays where it was$/);
            return true;
        });
    });

    it("retries while the version warms up, then passes", async () => {
        Object.assign(pages, { v1: COW, v2: HOTDOG });
        notReadyFor = 2;
        seen.length = 0;
        await runSmokeChecks(inputs({ checks: [{ version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" }] }));
        assert.equal(seen.length, 3);
    });

    it("gives up after its attempts when the version never gets ready", async () => {
        notReadyFor = 100;
        await assert.rejects(runSmokeChecks(inputs({ attempts: 2 })), /version v1 .* answered 503 with a page that does not contain/);
        notReadyFor = 0;
    });

    it("fails clearly when the gateway cannot be reached", async () => {
        await assert.rejects(runSmokeChecks(inputs({ gatewayUrl: "http://127.0.0.1:1", attempts: 1 })), /version v1 .* could not be fetched: connect ECONNREFUSED/);
    });
});
