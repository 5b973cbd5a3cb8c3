// The GitHub workflows as a user copies them: they run the Pulumi CLI the tests run, create the stack
// when the backend has none, and name in their header every secret they read, so that a user setting
// up the repository learns the full list from the file, not from a failed run.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { parse } from "yaml";

import { ROOT } from "./support/constants";

interface Step {
    readonly uses?: string;
    readonly with?: Record<string, unknown>;
}
interface Workflow {
    readonly concurrency?: { group: string; "cancel-in-progress": boolean };
    readonly jobs: Record<string, { env?: Record<string, string>; steps: Step[] }>;
}

const WORKFLOWS = ["preview.yml", "deploy.yml"];
const text = (file: string) => readFileSync(path.join(ROOT, ".github", "workflows", file), "utf8");
const workflow = (file: string) => parse(text(file)) as Workflow;
const pulumiSteps = (file: string) =>
    Object.values(workflow(file).jobs).flatMap((job) => job.steps.filter((s) => s.uses?.startsWith("pulumi/actions@") === true));

/** The one place the tests' CLI version is kept. */
const testedVersion = (): string => {
    const pin = /^PULUMI_VERSION=(\S+)$/m.exec(readFileSync(path.join(ROOT, "scripts", "engine.sh"), "utf8"));
    assert.ok(pin !== null, "scripts/engine.sh sets PULUMI_VERSION");
    return pin[1];
};

/** The comment lines at the top of a workflow, before its first key. */
const header = (file: string): string => {
    const lines = text(file).split("\n");
    return lines
        .slice(
            0,
            lines.findIndex((l) => !l.startsWith("#")),
        )
        .join("\n");
};

describe("the GitHub workflows", () => {
    for (const file of WORKFLOWS) {
        it(`${file}: runs pulumi/actions@v7 on the stack dev with the CLI version of scripts/engine.sh, creating the stack when missing`, () => {
            const steps = pulumiSteps(file);
            assert.equal(steps.length, 1);
            assert.equal(steps[0].uses, "pulumi/actions@v7");
            assert.deepEqual(
                { stack: steps[0].with?.["stack-name"], version: steps[0].with?.["pulumi-version"], upsert: steps[0].with?.upsert },
                { stack: "dev", version: testedVersion(), upsert: true },
            );
        });

        it(`${file}: names in its header comment every secret it reads, and passes the backend's to the whole job`, () => {
            const read = new Set([...text(file).matchAll(/\bsecrets\.([A-Z0-9_]+)/g)].map((m) => m[1]));
            const named = header(file);
            assert.deepEqual(
                [...read].filter((name) => !new RegExp(`\\b${name}\\b`).test(named)),
                [],
                `${file}: secrets missing from the header`,
            );
            const env = Object.values(workflow(file).jobs)[0].env ?? {};
            for (const name of [
                "PULUMI_ACCESS_TOKEN",
                "PULUMI_BACKEND_URL",
                "PULUMI_CONFIG_PASSPHRASE",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
            ]) {
                assert.equal(env[name], `\${{ secrets.${name} }}`, `${file}: env ${name}`);
            }
        });
    }

    it("deploy.yml: one deployment at a time, never cancelled by the next push", () => {
        assert.deepEqual(workflow("deploy.yml").concurrency, { group: "deploy-dev", "cancel-in-progress": false });
    });
});
