// The guard that keeps the pre-built program honest: stale or missing JavaScript stops the run.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";

import { assertBuildIsCurrent } from "../components/freshness";

describe("assertBuildIsCurrent", () => {
    let root = "";
    const write = (file: string, seconds: number) => {
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        writeFileSync(path.join(root, file), "");
        utimesSync(path.join(root, file), seconds, seconds);
    };

    beforeEach(() => {
        root = mkdtempSync(path.join(tmpdir(), "freshness-"));
        write("index.ts", 1000);
        write("components/app.ts", 1000);
        write("bin/index.js", 2000);
        write("bin/components/app.js", 2000);
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    it("passes when every compiled file is newer than its source", () => {
        assert.doesNotThrow(() => assertBuildIsCurrent(path.join(root, "bin"), root));
    });

    it("refuses a compiled file older than its source", () => {
        write("components/app.ts", 3000);
        assert.throws(() => assertBuildIsCurrent(path.join(root, "bin"), root), {
            message: `${path.join("bin", "components", "app.js")} is older than ${path.join("components", "app.ts")}: run \`npm run build\` before pulumi preview or pulumi up.`,
        });
    });

    it("refuses a source that was never compiled", () => {
        write("components/new.ts", 1000);
        assert.throws(() => assertBuildIsCurrent(path.join(root, "bin"), root), /bin\/components\/new\.js is missing: run `npm run build`/);
    });

    it("ignores declaration files and a copy that ships only JavaScript", () => {
        write("components/types.d.ts", 5000);
        assert.doesNotThrow(() => assertBuildIsCurrent(path.join(root, "bin"), root));
        rmSync(path.join(root, "index.ts"));
        write("components/app.ts", 9000);
        assert.doesNotThrow(() => assertBuildIsCurrent(path.join(root, "bin"), root));
    });
});
