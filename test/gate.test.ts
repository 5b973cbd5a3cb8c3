// The gate itself, against a local HTTP server that answers like the two versions (or not at
// all): what it fetches, how it reports, when it gives up or stops, what it never prints, and which
// versions a switch makes it fetch.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, describe, it } from "node:test";

import { redactUrl, runChecks, whatToFetch, type GateInputs, type VersionCheck } from "../dynamic/gate";

const COW = "<pre>\n \\   ^__^\n  \\  (oo)\\_______\n</pre>";
const HOTDOG = "<pre>\n  |O___O |\n</pre>";
const V1: VersionCheck = { version: "v1", image: "dougbtv/nginx-cowsay:v1", expect: "^__^" };
const V2: VersionCheck = { version: "v2", image: "dougbtv/nginx-cowsay:v2", expect: "O___O" };
const V3: VersionCheck = { version: "v3", image: "registry.example.com/cowsay:v3", expect: "v3" };

describe("runChecks", () => {
    let server: Server;
    let silent: Server;
    const sockets = new Set<Socket>();
    let url = "";
    let silentUrl = "";
    const seen: { host?: string; version?: string; auth?: string; path?: string }[] = [];
    // What the "gateway" answers per version; a test may swap a page or delay readiness.
    const pages: Record<string, string> = {};
    let notReadyFor = 0;
    // Requests after this many get no answer at all (a gateway that starts to hang).
    let answerOnly = Infinity;

    before(async () => {
        server = createServer((req, res) => {
            const version = req.headers["x-cowsay-version"] as string | undefined;
            seen.push({ host: req.headers.host, version, auth: req.headers.authorization, path: req.url });
            if (seen.length > answerOnly) return;
            if (notReadyFor > 0) {
                notReadyFor--;
                res.writeHead(503).end("no healthy upstream");
                return;
            }
            res.writeHead(200, { "content-type": "text/html" }).end(pages[version ?? "v1"] ?? COW);
        });
        // Accepts connections and never answers: a gateway that hangs.
        silent = createServer(() => undefined);
        silent.on("connection", (socket) => sockets.add(socket));
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    });
    after(() => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close();
        silent.close();
    });

    const inputs = (over: Partial<GateInputs> = {}): GateInputs => ({
        gatewayUrl: url,
        host: "cowsay.example.com",
        header: "x-cowsay-version",
        checks: [V1, V2],
        timeoutSeconds: 5,
        intervalMs: 10,
        ...over,
    });
    const quiet = { report: () => undefined };

    it("passes when each version answers with its own page, asking for it by header and host, and says so", async () => {
        Object.assign(pages, { v1: COW, v2: HOTDOG });
        seen.length = 0;
        const lines: string[] = [];
        await runChecks(inputs(), [V1, V2], { report: (line) => lines.push(line) });
        assert.deepEqual(
            seen.map(({ host, version }) => ({ host, version })).sort((a, b) => String(a.version).localeCompare(String(b.version))),
            [
                { host: "cowsay.example.com", version: "v1" },
                { host: "cowsay.example.com", version: "v2" },
            ],
        );
        assert.equal(lines.length, 2);
        assert.ok(
            lines.every((l) => /^gate: v[12] answered with its own page \(try 1, \d+ s of 5 s\)$/.test(l)),
            lines.join("\n"),
        );
    });

    it("fails, naming the version and what came back, when a version answers with another's page", async () => {
        Object.assign(pages, { v1: COW, v2: COW });
        await assert.rejects(runChecks(inputs({ timeoutSeconds: 1 }), [V2], quiet), (err: Error) => {
            assert.match(
                err.message,
                /^gate failed after \d+ s of 1 s: version v2 \(dougbtv\/nginx-cowsay:v2\) at http:\/\/127\.0\.0\.1:\d+ with x-cowsay-version: v2 answered 200 with a page that does not contain "O___O"/,
            );
            assert.match(err.message, /the route was not changed and traffic stays where it was$/);
            return true;
        });
    });

    it("gives the last real answer when the deadline cuts the final try short", async () => {
        Object.assign(pages, { v1: COW, v2: COW });
        seen.length = 0;
        answerOnly = 1; // the first try gets another's page; the second hangs until the deadline
        try {
            await assert.rejects(runChecks(inputs({ timeoutSeconds: 1, intervalMs: 200 }), [V2], quiet), (err: Error) => {
                assert.match(err.message, /^gate failed after 1 s of 1 s: version v2 .* answered 200 with a page that does not contain "O___O"/);
                assert.doesNotMatch(err.message, /no answer/);
                return true;
            });
            assert.equal(seen.length, 2, "the second try was made");
        } finally {
            answerOnly = Infinity;
        }
    });

    it("retries while the version warms up, reporting each try, then passes", async () => {
        Object.assign(pages, { v1: COW, v2: HOTDOG });
        notReadyFor = 2;
        seen.length = 0;
        const lines: string[] = [];
        await runChecks(inputs(), [V2], { report: (line) => lines.push(line) });
        assert.equal(seen.length, 3);
        assert.match(lines[0], /^gate: v2 try 1 \(\d+ s of 5 s\): answered 503 with a page that does not contain "O___O": "no healthy upstream"$/);
        assert.match(lines[1], /^gate: v2 try 2 /);
        assert.match(lines[2], /^gate: v2 answered with its own page \(try 3, /);
    });

    it("gives up at its deadline when the version never gets ready", async () => {
        notReadyFor = 1_000_000;
        const lines: string[] = [];
        await assert.rejects(
            runChecks(inputs({ timeoutSeconds: 1, intervalMs: 200 }), [V1], { report: (line) => lines.push(line) }),
            /^Error: gate failed after 1 s of 1 s: version v1 .* answered 503 with a page that does not contain/,
        );
        assert.ok(lines.length >= 2, "every try is reported");
        notReadyFor = 0;
    });

    it("gives up at its deadline when the gateway accepts connections and never answers", async () => {
        await assert.rejects(runChecks(inputs({ gatewayUrl: silentUrl, timeoutSeconds: 1 }), [V1], quiet), /could not be fetched: no answer within 1 s/);
    });

    it("stops at once, without another try, when its signal fires", async () => {
        const controller = new AbortController();
        const lines: string[] = [];
        const run = runChecks(inputs({ gatewayUrl: silentUrl, timeoutSeconds: 600 }), [V1, V2], { report: (l) => lines.push(l), signal: controller.signal });
        setTimeout(() => controller.abort("the update was cancelled (Ctrl-C)"), 100);
        await assert.rejects(run, /^Error: gate stopped: the update was cancelled \(Ctrl-C\) after 0 s of 600 s; the route was not changed/);
        assert.deepEqual(lines, [], "no try was reported after the stop");
    });

    it("fails clearly when the gateway cannot be reached", async () => {
        await assert.rejects(
            runChecks(inputs({ gatewayUrl: "http://127.0.0.1:1", timeoutSeconds: 1 }), [V1], quiet),
            /version v1 .* could not be fetched: connect ECONNREFUSED/,
        );
    });

    it("sends the credentials a gatewayUrl carries, and never prints them", async () => {
        Object.assign(pages, { v1: COW, v2: COW });
        seen.length = 0;
        const secretUrl = url.replace("http://", "http://ops:s3cr3t@") + "/?token=t0k3n";
        const lines: string[] = [];
        await assert.rejects(runChecks(inputs({ gatewayUrl: secretUrl, timeoutSeconds: 1 }), [V2], { report: (l) => lines.push(l) }), (err: Error) => {
            assert.ok(!/s3cr3t|t0k3n|ops:/.test(err.message), err.message);
            assert.match(err.message, / at http:\/\/127\.0\.0\.1:\d+ with /);
            return true;
        });
        assert.ok(lines.length > 0 && lines.every((l) => !/s3cr3t|t0k3n/.test(l)), lines.join("\n"));
        assert.equal(seen[0].auth, `Basic ${Buffer.from("ops:s3cr3t").toString("base64")}`);
        assert.equal(seen[0].path, "/?token=t0k3n");
    });
});

describe("redactUrl", () => {
    it("keeps the scheme, host, port and path, and drops user, password and query", () => {
        assert.equal(redactUrl("https://ops:s3cr3t@203.0.113.10:8443/gw?token=x"), "https://203.0.113.10:8443/gw");
        assert.equal(redactUrl("http://localhost:8080"), "http://localhost:8080");
        assert.equal(redactUrl("not a url"), "<gatewayUrl>");
    });
});

describe("which versions a change makes the gate fetch", () => {
    const versions = (checks: readonly VersionCheck[]) => checks.map((c) => c.version);
    // [what, previous state (live, rollback targets) or undefined for a new gate, next live, fetched, next rollback targets]
    const CASES: [string, { checks: VersionCheck[]; rollbackTargets: VersionCheck[] } | undefined, VersionCheck[], string[], string[]][] = [
        ["a new gate checks every live version", undefined, [V1], ["v1"], []],
        ["a switch checks the version it moves to, and remembers the one it leaves", { checks: [V1], rollbackTargets: [] }, [V2], ["v2"], ["v1"]],
        ["the rollback to that version fetches nothing, and gives the version it leaves no pass", { checks: [V2], rollbackTargets: [V1] }, [V1], [], []],
        [
            "so a canary of the version rolled back from is checked, and the live version is its rollback target",
            { checks: [V1], rollbackTargets: [] },
            [V1, V2],
            ["v2"],
            ["v1"],
        ],
        [
            "promoting a canary fetches nothing and remembers the version that was live when the split began",
            { checks: [V1, V2], rollbackTargets: [V1] },
            [V2],
            [],
            ["v1"],
        ],
        ["rolling back from a canary fetches nothing and gives the canary no pass", { checks: [V1, V2], rollbackTargets: [V1] }, [V1], [], []],
        ["a split begun by an earlier version of this program (no target) earns nothing when it ends", { checks: [V1, V2], rollbackTargets: [] }, [V2], [], []],
        ["a switch to a third version checks it even with a rollback target", { checks: [V2], rollbackTargets: [V1] }, [V3], ["v3"], ["v2"]],
        [
            "a new image under the rollback target's name is checked",
            { checks: [V2], rollbackTargets: [V1] },
            [{ ...V1, image: "dougbtv/nginx-cowsay:v1.1" }],
            ["v1"],
            ["v2"],
        ],
        ["a change of settings alone fetches nothing and keeps the rollback target", { checks: [V2], rollbackTargets: [V1] }, [V2], [], ["v1"]],
        [
            "a canary next to the live version keeps the rollback target and adds the live version",
            { checks: [V2], rollbackTargets: [V1] },
            [V2, V3],
            ["v3"],
            ["v1", "v2"],
        ],
        ["rolling back from that canary keeps the older target", { checks: [V2, V3], rollbackTargets: [V1, V2] }, [V2], [], ["v1"]],
    ];
    for (const [what, previous, next, fetched, targets] of CASES) {
        it(what, () => {
            const result = whatToFetch(next, previous);
            assert.deepEqual(versions(result.toCheck), fetched);
            assert.deepEqual(versions(result.rollbackTargets), targets);
        });
    }

    // Each change starts from the state the one before it left, as the resource's state carries it.
    const walk = (steps: VersionCheck[][]) => {
        let state: { checks: VersionCheck[]; rollbackTargets: VersionCheck[] } | undefined;
        return steps.map((next) => {
            const { toCheck, rollbackTargets } = whatToFetch(next, state);
            state = { checks: next, rollbackTargets };
            return versions(toCheck);
        });
    };
    it("a canary judged bad and rolled back is fetched again on the next switch to it", () => {
        assert.deepEqual(walk([[V1], [V1, V2], [V1], [V2]]), [["v1"], ["v2"], [], ["v2"]]);
    });
    it("a rollout through its steps leaves the old version as a rollback that fetches nothing", () => {
        // v1, then 10% and 50% of v2 (the same two versions), then v2 alone, then back to v1.
        assert.deepEqual(walk([[V1], [V1, V2], [V1, V2], [V2], [V1]]), [["v1"], ["v2"], [], [], []]);
    });
});
