// scripts/lib.sh, the log, die and go_env every script in scripts/ sources: each script's lines keep its
// own prefix (the e2e suites match `[cluster HH:MM:SS] ...` and `[cluster] error: ...`, and a reader of
// interleaved logs tells the scripts apart by it), and go_env points Go at the shared caches.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { ROOT } from "./support/constants";

const LIB = path.join(ROOT, "scripts", "lib.sh");
// The library's path in LIB, not in $1: `source` without arguments passes the caller's on.
const bash = (script: string, env: NodeJS.ProcessEnv = process.env) =>
    spawnSync("bash", ["-euo", "pipefail", "-c", script], { encoding: "utf8", env: { ...env, LIB } });
const script = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(path.join(ROOT, "scripts", name), args, { encoding: "utf8", cwd: tmpdir(), env: { ...process.env, ...env } });

describe("scripts/lib.sh", () => {
    it("log prefixes a line with the script's name and the time, die with the name and `error:`, and die exits 1", () => {
        const result = bash('source "$LIB" cluster; log "up in 3 s"; die "no kubectl"; echo unreachable');
        assert.equal(result.status, 1);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, /^\[cluster \d\d:\d\d:\d\d\] up in 3 s\n\[cluster\] error: no kubectl\n$/);
    });

    it("refuses to be sourced without a name", () => {
        const result = bash('source "$LIB"');
        assert.notEqual(result.status, 0);
        assert.match(result.stderr, /usage: source scripts\/lib\.sh NAME/);
    });

    it("go_env exports the Go caches under COWSAY_GO_CACHE, and dies naming its purpose when Go is missing", () => {
        const env = { ...process.env, COWSAY_GO_CACHE: "/tmp/go-cache" };
        const exported = bash('source "$LIB" engine; go() { :; }; go_env "build x"; echo "$GOMODCACHE $GOCACHE $GOFLAGS $CGO_ENABLED $GOWORK"', env);
        assert.equal(exported.stderr, "");
        assert.equal(exported.stdout, "/tmp/go-cache/mod /tmp/go-cache/build -buildvcs=false -mod=readonly 0 off\n");
        // No `go` on PATH: bash itself is called by its absolute path, and `command -v go` finds nothing.
        const missing = spawnSync("/bin/bash", ["-c", 'source "$LIB" engine; go_env "build the toolchain"'], {
            encoding: "utf8",
            env: { ...env, LIB, PATH: "/nonexistent" },
        });
        assert.equal(missing.status, 1);
        assert.equal(missing.stderr, "[engine] error: Go is required to build the toolchain (go 1.26 or newer).\n");
    });
});

describe("the scripts that source it keep their own prefix", () => {
    // Bad input stops each script before it builds or starts anything, so these run in milliseconds.
    const stub = { W: "/nonexistent", LOCKS: "/nonexistent", TIMEOUT: "1", BIN: "/nonexistent" };
    const cases: [string, string[], NodeJS.ProcessEnv, string][] = [
        ["engine.sh", ["bogus"], {}, "[engine] error: unknown command 'bogus' (try: build, built, env, exec, clean, help)\n"],
        ["cluster.sh", ["status"], { COWSAY_CLUSTER_NODES: "x" }, "[cluster] error: COWSAY_CLUSTER_NODES is 'x'; allowed: a whole number of 1 or more\n"],
        [
            "istiod.sh",
            ["bogus"],
            { ...stub, ISTIOD_BIN: "/nonexistent" },
            "[istiod] error: unknown command 'bogus'; allowed: start, chart, stop, kill, env, pid\n",
        ],
        [
            "prometheus.sh",
            ["bogus"],
            { ...stub, PROMETHEUS_BIN: "/nonexistent" },
            "[prometheus] error: unknown command 'bogus'; allowed: start, stop, kill, env, pid, ready\n",
        ],
    ];
    for (const [name, args, env, expected] of cases) {
        it(`scripts/${name} ${args.join(" ")}: ${expected.trim()}`, () => {
            // Run from elsewhere: the library is found next to the script, not in the working directory.
            const result = script(name, args, env);
            assert.equal(result.status, 1);
            assert.equal(result.stderr, expected);
        });
    }
});
