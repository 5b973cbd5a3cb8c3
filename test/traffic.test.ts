// The bounded traffic sender (lib/traffic.ts) against local servers that count what reaches
// them, answer slowly or never: never more requests than the rate and duration allow, never more in
// flight than the bound, a stop that is immediate, what goes on the wire (Host, TLS server name,
// credentials, path, query, the header), the refusals; that it still works once Pulumi has
// serialized it as a dynamic provider would; and the tests' load generator (test/support/load.ts), which
// refuses anything but loopback.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";

import * as pulumi from "@pulumi/pulumi";

import { sendTraffic, type TrafficOptions } from "../lib/traffic";
import { selfSignedCertificate } from "./support/certificate";
import { isLoopback, startLoad } from "./support/load";

/** A local server that records each request and answers as `handle` says (or never). */
interface Recorder {
    readonly url: string;
    readonly seen: { url?: string; host?: string; auth?: string; header?: string; servername?: string }[];
    /** Requests waiting for an answer now, and the most there ever were. */
    inFlight: number;
    maxInFlight: number;
    close(): Promise<void>;
}

async function recorder(server: Server, handle: (req: IncomingMessage, res: ServerResponse) => void, scheme = "http"): Promise<Recorder> {
    const sockets = new Set<Socket>();
    const rec: Recorder = {
        url: "",
        seen: [],
        inFlight: 0,
        maxInFlight: 0,
        close: async () => {
            const closed = new Promise<void>((resolve) => server.close(() => resolve()));
            for (const socket of sockets) socket.destroy();
            await closed;
        },
    };
    server.on("connection", (socket: Socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
    });
    server.on("secureConnection", (socket: Socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
        rec.seen.push({
            url: req.url,
            host: req.headers.host,
            auth: req.headers.authorization,
            header: req.headers["x-cowsay-version"] as string | undefined,
            servername: (req.socket as TLSSocket).servername || undefined,
        });
        rec.inFlight++;
        rec.maxInFlight = Math.max(rec.maxInFlight, rec.inFlight);
        res.on("close", () => rec.inFlight--);
        handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return Object.assign(rec, { url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

const ok = (_req: IncomingMessage, res: ServerResponse) => res.writeHead(200).end("moo");
const never = () => undefined;

const options = (url: string, more: Partial<TrafficOptions> = {}): TrafficOptions => ({
    url,
    host: "cowsay.example.com",
    requestsPerSecond: 10,
    durationMs: 100,
    timeoutMs: 1000,
    ...more,
});

describe("sendTraffic", () => {
    let answering: Recorder;
    let hanging: Recorder;
    let secure: Recorder;
    let certDir: string;

    before(async () => {
        answering = await recorder(createServer(), (req, res) => (req.url?.includes("fail") === true ? res.writeHead(503).end() : ok(req, res)));
        hanging = await recorder(createServer(), never);
        certDir = mkdtempSync(path.join(tmpdir(), "cowsay-traffic-"));
        const pem = selfSignedCertificate(certDir, "cowsay.example.com");
        const tls = createHttpsServer({ key: readFileSync(pem.key), cert: readFileSync(pem.cert) });
        secure = await recorder(tls, ok, "https");
    });

    after(async () => {
        await Promise.all([answering.close(), hanging.close(), secure.close()]);
        rmSync(certDir, { recursive: true, force: true });
    });

    it("sends exactly rate × duration requests, evenly, and counts every answer", async () => {
        const from = answering.seen.length;
        const started = Date.now();
        const result = await sendTraffic(options(answering.url, { requestsPerSecond: 50, durationMs: 400 }));
        const took = Date.now() - started;
        assert.deepEqual([result.sent, result.statuses, result.errors, result.skipped, result.stopped], [20, { "200": 20 }, {}, 0, undefined]);
        assert.equal(answering.seen.length - from, 20, "the server saw exactly what was sent");
        // 20 slots 20 ms apart: the last starts at 380 ms; not a burst, not much later.
        assert.ok(took >= 380 && took < 1400, `took ${took} ms`);

        const odd = await sendTraffic(options(answering.url, { requestsPerSecond: 7, durationMs: 1000 }));
        assert.equal(odd.sent, 7);
        assert.equal((await sendTraffic(options(answering.url, { requestsPerSecond: 10, durationMs: 0 }))).sent, 0);
        assert.deepEqual((await sendTraffic(options(`${answering.url}/fail`, { requestsPerSecond: 20, durationMs: 250 }))).statuses, { "503": 5 });
    });

    it("never has more than maxInFlight waiting: a target that hangs gets that many, the other slots are skipped", async () => {
        const from = hanging.seen.length;
        const result = await sendTraffic(options(hanging.url, { requestsPerSecond: 100, durationMs: 300, maxInFlight: 4, timeoutMs: 500 }));
        assert.deepEqual([result.sent, result.skipped, result.statuses, result.errors], [4, 26, {}, { "no answer within 500 ms": 4 }]);
        assert.equal(hanging.seen.length - from, 4);
        assert.equal(hanging.maxInFlight, 4);
        assert.ok(result.elapsedMs < 1500, `resolved ${result.elapsedMs} ms after the start: the duration, then one timeout`);
    });

    it("stops at once on its signal: no more requests, those in flight cut off and counted", async () => {
        const from = hanging.seen.length;
        const controller = new AbortController();
        setTimeout(() => controller.abort("the engine cancelled"), 250);
        const started = Date.now();
        const result = await sendTraffic(options(hanging.url, { requestsPerSecond: 20, durationMs: 10_000, timeoutMs: 10_000, signal: controller.signal }));
        const took = Date.now() - started;
        assert.ok(took < 600, `resolved ${took} ms after the start, abort at 250 ms`);
        assert.equal(result.stopped, "the engine cancelled");
        assert.ok(result.sent >= 4 && result.sent <= 7, `sent ${result.sent}`);
        assert.deepEqual(result.errors, { "stopped: the engine cancelled": result.sent }, "every request sent is counted once");
        // The server sees a request when it arrives, which can be just after the stop for one sent
        // just before it: what it has seen, given time, is at most what was sent before the stop
        // (at 20 a second, a generator still sending would add about six in 300 ms).
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.ok(hanging.seen.length - from <= result.sent, `nothing after the stop: the server saw ${hanging.seen.length - from}, ${result.sent} sent`);

        const before = answering.seen.length;
        const aborted = new AbortController();
        aborted.abort("already");
        assert.deepEqual((await sendTraffic(options(answering.url, { signal: aborted.signal }))).sent, 0);
        assert.equal(answering.seen.length, before);
    });

    it("over HTTPS sends the host as TLS server name and Host, the URL's credentials, path and query, and the header", async () => {
        const from = secure.seen.length;
        const url = secure.url.replace("https://", "https://gate:s%3Acret@") + "/base/page?token=t1";
        const result = await sendTraffic(options(url, { header: { name: "x-cowsay-version", value: "v2" }, requestsPerSecond: 10, durationMs: 200 }));
        assert.deepEqual(result.statuses, { "200": 2 });
        const expected = {
            url: "/base/page?token=t1",
            host: "cowsay.example.com",
            auth: `Basic ${Buffer.from("gate:s:cret").toString("base64")}`,
            header: "v2",
            servername: "cowsay.example.com",
        };
        assert.deepEqual(secure.seen.slice(from), [expected, expected]);
    });

    it("refuses bad options with one line naming the key, the value and what is allowed", async () => {
        const refused = async (more: Partial<TrafficOptions>, message: string) => assert.rejects(sendTraffic(options(answering.url, more)), { message });
        await refused({ url: "ftp://127.0.0.1/" }, 'traffic: url is "ftp://127.0.0.1/"; allowed: an http:// or https:// URL');
        await refused({ url: "not a url" }, 'traffic: url is "not a url"; allowed: an http:// or https:// URL');
        await refused({ requestsPerSecond: 0 }, "traffic: requestsPerSecond is 0; allowed: a number above 0, at most 1000");
        await refused({ requestsPerSecond: 5000 }, "traffic: requestsPerSecond is 5000; allowed: a number above 0, at most 1000");
        await refused({ durationMs: -1 }, "traffic: durationMs is -1; allowed: milliseconds from 0 to 3600000");
        await refused({ timeoutMs: 0 }, "traffic: timeoutMs is 0; allowed: milliseconds from 1 to 600000");
        await refused({ maxInFlight: 1.5 }, "traffic: maxInFlight is 1.5; allowed: a whole number from 1 to 1024");
        await refused({ host: "" }, 'traffic: host is ""; allowed: a host name');
    });

    it("works once Pulumi has serialized it, in a process of its own, as the dynamic provider runs it", async () => {
        const serialized = await pulumi.runtime.serializeFunction(sendTraffic);
        const dir = mkdtempSync(path.join(tmpdir(), "cowsay-traffic-fn-"));
        try {
            const file = path.join(dir, "traffic.js");
            writeFileSync(file, serialized.text);
            const run = `require(${JSON.stringify(file)}).${serialized.exportName}(${JSON.stringify(options(answering.url, { requestsPerSecond: 20, durationMs: 250 }))}).then((r) => console.log(JSON.stringify(r)))`;
            const { stdout } = await promisify(execFile)(process.execPath, ["-e", run], { timeout: 10_000 });
            const result = JSON.parse(stdout);
            assert.deepEqual([result.sent, result.statuses], [5, { "200": 5 }]);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("the tests' load generator", () => {
    it("refuses any address that is not loopback, before sending anything", () => {
        for (const url of ["http://10.0.0.1/", "https://cowsay.example.com/", "http://[::2]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0:80/"]) {
            assert.throws(() => startLoad({ url, requestsPerSecond: 1, durationMs: 1000 }), {
                message: `load: url ${JSON.stringify(url)} is not a loopback address; allowed: 127.0.0.0/8, ::1 or localhost (test traffic goes only to what the tests started here)`,
            });
        }
        assert.throws(() => startLoad({ url: "nope", requestsPerSecond: 1, durationMs: 1000 }), {
            message: 'load: url is "nope"; allowed: an http:// or https:// URL of a loopback address (127.0.0.0/8, ::1, localhost)',
        });
    });

    it("knows loopback: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost", () => {
        const table: [string, boolean][] = [
            ["127.0.0.1", true],
            ["127.255.0.9", true],
            ["[::1]", true],
            ["::ffff:127.0.0.1", true],
            ["[::ffff:7f00:1]", true],
            ["localhost", true],
            ["LOCALHOST", true],
            ["128.0.0.1", false],
            ["::", false],
            ["localhost.example.com", false],
        ];
        assert.deepEqual(
            table.map(([host]) => [host, isLoopback(host)]),
            table,
        );
    });

    it("stops by itself when its duration ends, or at once on stop()", async () => {
        const server = await recorder(createServer(), never);
        try {
            const started = Date.now();
            const bounded = await startLoad({ url: server.url, requestsPerSecond: 10, durationMs: 300, timeoutMs: 200 }).done;
            const took = Date.now() - started;
            assert.equal(bounded.sent, 3);
            assert.ok(took >= 200 && took < 1000, `took ${took} ms: the duration, then one timeout`);

            const load = startLoad({ url: server.url, requestsPerSecond: 10, durationMs: 60_000, timeoutMs: 60_000 });
            await new Promise((resolve) => setTimeout(resolve, 150));
            const stopping = Date.now();
            const stopped = await load.stop();
            assert.ok(Date.now() - stopping < 200, "stop() resolves at once");
            assert.equal(stopped.stopped, "the test stopped its load");
            assert.ok(stopped.sent >= 1 && stopped.sent <= 3, `sent ${stopped.sent}`);
        } finally {
            await server.close();
        }
    });
});
