// The README and the docs as tests. The README blocks CI types: `.ci/run` reads the blocks marked
// `<!-- ci: <id> -->` with scripts/readme-block.sh (bash, since it runs before `npm ci`), the suites read
// theirs with test/support/readme.ts; these tests hold the two readers to one format, and hold CI to the
// README's first command. Then the docs: every e2e block is claimed by a suite, every other shell block
// says why no test runs it, and every relative link and #anchor resolves.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

import { ROOT } from "./support/engine";
import { OTHER_SUITES_FILES, README_SUITE_FILES, readmeBlocks, storyBlocks } from "./support/readme";

const SCRIPT = path.join(ROOT, "scripts", "readme-block.sh");
const block = (id: string, file?: string) => spawnSync(SCRIPT, file === undefined ? [id] : [id, file], { encoding: "utf8" });
const fixture = (text: string): string => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "readme-block-")), "README.md");
    writeFileSync(file, text);
    return file;
};

describe("the README blocks CI runs", () => {
    it("scripts/readme-block.sh prints what test/support/readme.ts reads, for every ci block of the README", () => {
        const blocks = readmeBlocks(undefined, "ci");
        assert.deepEqual(
            blocks.map((b) => b.id),
            ["see-it-work", "set-up-and-test"],
        );
        for (const b of blocks) {
            const printed = block(b.id);
            assert.equal(printed.status, 0, printed.stderr);
            assert.equal(printed.stdout, `${b.script}\n`);
        }
    });

    it("CI starts with the README's first command, the one a newcomer types", () => {
        const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
        const firstRunnable = readme.indexOf("<!-- ci: see-it-work -->");
        assert.ok(firstRunnable >= 0 && firstRunnable < readme.indexOf("<!-- ci: set-up-and-test -->"));
        // The first block a newcomer is told to run (the one under "See it work") is CI's first.
        assert.equal(block("see-it-work").stdout.trim(), "npm ci && npm run demo");
        const ciRun = readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
        const order = [...ciRun.matchAll(/^run_readme_block ([a-z-]+)$/gm)].map((m) => m[1]);
        assert.deepEqual(order, ["see-it-work", "set-up-and-test"], ".ci/run runs the README's blocks in README order, and nothing before them");
        assert.doesNotMatch(ciRun.slice(0, ciRun.indexOf("run_readme_block see-it-work\n")), /^\s*(npm|npx|scripts\/)/m, "no command before the newcomer's");
    });

    it("refuses a missing, a doubled, an unfenced and an unclosed mark, as the suites' reader does", () => {
        const cases: [string, RegExp][] = [
            ["# x\n", /no block is marked <!-- ci: a -->/],
            ["<!-- ci: a -->\n```sh\nx\n```\n<!-- ci: a -->\n```sh\ny\n```\n", /is used twice/],
            ["<!-- ci: a -->\n\n```sh\nx\n```\n", /must be followed by a ```sh fence/],
            ["<!-- ci: a -->\n```sh\nx\n", /is not closed/],
        ];
        for (const [text, message] of cases) {
            const file = fixture(text);
            const printed = block("a", file);
            assert.equal(printed.status, 2, text);
            assert.match(printed.stderr, message);
            if (!/no block/.test(message.source) && !/not closed/.test(message.source)) assert.throws(() => readmeBlocks(file, "ci"));
        }
    });

    it("prints a block's lines exactly, comments and blank lines included", () => {
        const text = "<!-- ci: a -->\n```sh\nnpm ci   # set up\n\necho \"$HOME\" 'a b'\n```\n";
        assert.equal(execFileSync(SCRIPT, ["a", fixture(text)], { encoding: "utf8" }), "npm ci   # set up\n\necho \"$HOME\" 'a b'\n");
        assert.equal(readmeBlocks(fixture(text), "ci")[0].script, "npm ci   # set up\n\necho \"$HOME\" 'a b'");
    });
});

/** A temporary tree with `files` (path relative to it → text), removed after the tests. */
const trees: string[] = [];
after(() => trees.forEach((root) => rmSync(root, { recursive: true, force: true })));
const tree = (files: Record<string, string>): string => {
    const root = mkdtempSync(path.join(tmpdir(), "docs-tree-"));
    trees.push(root);
    for (const [file, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        writeFileSync(path.join(root, file), text);
    }
    return root;
};
/** Every file the README suite reads, empty but for a title: what a fixture then overrides. */
const suiteFiles = (): Record<string, string> => Object.fromEntries(README_SUITE_FILES.map((f) => [f, "# x\n"]));
const e2e = (id: string) => `<!-- e2e: ${id} -->\n\`\`\`sh\necho ${id}\n\`\`\`\n`;
/** README.md and docs/*.md under `root`, relative to it. */
const docsOf = (root: string): string[] => [
    "README.md",
    ...readdirSync(path.join(root, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => `docs/${f}`),
];

describe("the docs the README suite runs", () => {
    it("reads README.md, then the listed docs in their order, and names each block's own file and line", () => {
        const root = tree({
            ...suiteFiles(),
            "README.md": `# x\n\n${e2e("a")}`,
            "docs/operations.md": `# Ops\n\ntext\n${e2e("b")}\n${e2e("c")}`,
            "docs/security.md": `# Sec\n${e2e("d")}`,
            "docs/fleet.md": `# Fleet\n${e2e("f")}`,
        });
        const blocks = storyBlocks(root).map((b) => [b.id, path.relative(root, b.file), b.line, b.script]);
        assert.deepEqual(blocks, [
            ["a", "README.md", 4, "echo a"],
            ["b", "docs/operations.md", 5, "echo b"],
            ["c", "docs/operations.md", 10, "echo c"],
            ["d", "docs/security.md", 3, "echo d"],
        ]);
    });

    it("runs every e2e block of README.md and docs/*.md, other suites' files aside, in the order of README_SUITE_FILES", () => {
        const blocks = storyBlocks();
        const order = blocks.map((b) => README_SUITE_FILES.indexOf(b.file));
        assert.ok(
            order.every((n, i) => n >= 0 && (i === 0 || n >= order[i - 1])),
            blocks.map((b) => `${b.file}:${b.line}`).join("\n"),
        );
        // An independent count: every mark line in every file, read with nothing but a regex.
        const marked = docsOf(ROOT)
            .filter((file) => !(file in OTHER_SUITES_FILES))
            .flatMap((file) => [...readFileSync(path.join(ROOT, file), "utf8").matchAll(/^<!-- e2e: ([a-z0-9-]+) -->$/gm)].map((m) => m[1]));
        assert.deepEqual(blocks.map((b) => b.id).sort(), marked.sort());
        assert.ok(blocks.length > 0 && blocks[0].file === "README.md");
    });

    it("refuses a docs file whose e2e blocks no suite claims, an id in two files, a listed file that is missing, and a bad mark, naming the file and line", () => {
        // Each case changes the files of a tree where everything is fine (null: the file is removed).
        const cases: [Record<string, string | null>, RegExp][] = [
            [{ "docs/extra.md": `# Extra\n\n${e2e("z")}` }, /docs\/extra\.md: e2e blocks that no suite runs: z \(line 4\); add the file to README_SUITE_FILES/],
            [
                { "README.md": e2e("a"), "docs/security.md": `# S\n${e2e("a")}` },
                /docs\/security\.md:3: the e2e mark a is used twice \(first at \S*README\.md:2\)/,
            ],
            [{ "docs/operations.md": `# O\n${e2e("a")}${e2e("a")}` }, /docs\/operations\.md:7: the e2e mark a is used twice \(first at line 3\)/],
            [{ "docs/security.md": "# S\n<!-- e2e: c -->\n\n```sh\nx\n```\n" }, /docs\/security\.md:2: the e2e mark c must be followed by a ```sh fence/],
            [{ "docs/engine.md": "# E\n<!-- e2e: c -->\n```sh\nx\n" }, /docs\/engine\.md:3: unclosed block c/],
            [{ "docs/routing.md": null }, /docs\/routing\.md: listed in README_SUITE_FILES \(test\/support\/readme\.ts\) but missing/],
        ];
        for (const [files, message] of cases) {
            const all = Object.entries({ ...suiteFiles(), ...files }).filter((e): e is [string, string] => e[1] !== null);
            assert.throws(() => storyBlocks(tree(Object.fromEntries(all))), message);
        }
    });
});

/** `file:line` of each shell fence in README.md and docs/*.md without a run mark or a `not run:` reason on the line before it. */
function unexplainedShellBlocks(root: string): string[] {
    const found: string[] = [];
    for (const file of docsOf(root)) {
        // A `ci` mark counts only in the README: scripts/readme-block.sh reads no other file.
        const RUN = file === "README.md" ? /^<!-- (e2e|ci): [a-z0-9-]+ -->$/ : /^<!-- e2e: [a-z0-9-]+ -->$/;
        const lines = readFileSync(path.join(root, file), "utf8").split("\n");
        let open: string | undefined; // the fence that opened the code block we are in
        lines.forEach((line, i) => {
            const fence = /^(\s*)(`{3,}|~{3,})\s*(\S*)/.exec(line);
            if (fence === null) return;
            if (open !== undefined) {
                if (fence[2].startsWith(open) && fence[3] === "") open = undefined;
                return;
            }
            open = fence[2];
            if (!/^(sh|bash|shell|zsh|console)$/.test(fence[3])) return;
            const before = (lines[i - 1] ?? "").trim();
            if (!RUN.test(before) && !/^<!-- not run: \S.* -->$/.test(before)) found.push(`${file}:${i + 1}`);
        });
    }
    return found;
}

describe("every shell block of the README and the docs", () => {
    it("is run by a test or CI, or says beside it why not", () => {
        assert.deepEqual(
            unexplainedShellBlocks(ROOT),
            [],
            "add <!-- e2e: id --> (and its checks) or <!-- not run: why --> on the line before each of these fences",
        );
    });

    it("is found unexplained without a mark, with an empty reason, with a ci mark outside the README, or as a bash block", () => {
        const root = tree({
            "README.md": [
                "<!-- ci: set-up -->",
                "```sh",
                "npm ci",
                "```", // 1: run by CI
                "<!-- e2e: deploy -->",
                "```sh",
                "pulumi up",
                "```", // 5: run by a suite
                "<!-- not run: needs a real cluster -->",
                "```sh",
                "kubectl get pods",
                "```", // 9: says why
                "```sh",
                "pulumi destroy",
                "```", // 13: unexplained
                "<!-- not run: -->",
                "```sh",
                "x",
                "```", // 17: no reason
                "- a list item:",
                "",
                "  ```bash",
                "  y",
                "  ```", // 22: indented, bash, unexplained
                "````markdown",
                "```sh",
                "inside another block: not a block of its own",
                "```",
                "````",
                "```",
                "plain output, not shell",
                "```",
                "",
            ].join("\n"),
            "docs/a.md": ["# A", "<!-- ci: set-up -->", "```sh", "npm ci", "```", "<!-- e2e: x -->", "```sh", "y", "```", ""].join("\n"),
        });
        assert.deepEqual(unexplainedShellBlocks(root), ["README.md:13", "README.md:17", "README.md:22", "docs/a.md:3"]);
    });
});

describe("links in the README and the docs", () => {
    const REMARK = path.join(ROOT, "node_modules", ".bin", "remark");
    // remark-validate-links (remark's own link checker) resolves every relative link, and every #anchor
    // against the headings of its file, slugged as GitHub does (github-slugger); it reads no network.
    // The plugin is named by path so that fixtures outside the repository find it too.
    const checkLinks = (root: string, skip: string[] = []) =>
        spawnSync(
            REMARK,
            [
                "--frail",
                "--quiet",
                "--no-stdout",
                "--no-color",
                "--no-config",
                "--no-ignore",
                "--use",
                `${path.join(ROOT, "node_modules", "remark-validate-links", "index.js")}=repository:false,skipPathPatterns:${JSON.stringify(skip)}`,
                ...docsOf(root),
            ],
            { cwd: root, encoding: "utf8" },
        );

    it("resolve: every relative link to a file, and every #anchor, in README.md and docs/*.md", () => {
        // docs/fleet.md is written on the fleet branch; until it is merged here, the README's link to it
        // is the one link allowed to name a missing file (and only while that file is missing).
        const pending = existsSync(path.join(ROOT, "docs", "fleet.md")) ? [] : ["/docs/fleet\\.md(#|$)"];
        const result = checkLinks(ROOT, pending);
        assert.equal(result.status, 0, result.stderr);
    });

    it("fail on a missing file, a missing heading here or in another file, with GitHub's slugs", () => {
        const root = tree({
            "README.md": [
                "# T",
                "",
                "## Changing `routingApi` on a running stack",
                "",
                "[ok](#changing-routingapi-on-a-running-stack) [ok](docs/a.md#the-gate-and-the-rollback) [ok](docs/a.md)",
                "[bad](#changing-routingapi) [bad](docs/a.md#gate) [bad](docs/none.md) [bad](docs/none.md#x)",
                "",
            ].join("\n"),
            "docs/a.md": "# A\n\n### The gate, and the rollback!\n\n[ok](../README.md#t) [bad](../README.md#a)\n",
        });
        const result = checkLinks(root);
        assert.equal(result.status, 1, result.stderr);
        // One warning per broken link, at its line and column: the start of the link, then what is missing.
        const warnings = result.stderr
            .split("\n")
            .map((l) => /^\s*(\d+:\d+)-\S+ +warning (.*)$/.exec(l))
            .filter((m) => m !== null)
            .map((m) => [m[1], ...(m[2].match(/`[^`]+`/g) ?? [])].join(" "));
        assert.deepEqual(
            warnings.sort(),
            [
                "5:22 `#a` `../README.md`", // in docs/a.md; the others in README.md
                "6:1 `#changing-routingapi`",
                "6:29 `#gate` `docs/a.md`",
                "6:51 `docs/none.md`",
                "6:71 `#x` `docs/none.md`",
                "6:71 `docs/none.md`",
            ].sort(),
        );
    });
});

describe("the README's map of the code", () => {
    it("names every top-level folder the repository holds", () => {
        const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
        const start = readme.indexOf("## Map of the code");
        const map = readme.slice(start, readme.indexOf("\n## ", start + 1));
        const named = new Set([...map.matchAll(/^([\w.-]+)\/\S*\s/gm)].map((m) => m[1]));
        // What git holds, not what a build left here (bin/, node_modules/).
        const tracked = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" }).split("\n");
        const folders = [...new Set(tracked.filter((f) => f.includes("/")).map((f) => f.split("/")[0]))].sort();
        assert.ok(folders.length > 5, `git ls-files found ${folders.length} folders`);
        assert.deepEqual(
            folders.filter((f) => !named.has(f)),
            [],
        );
    });

    it("names every file in scripts/, the entry points a reader runs or meets in the logs", () => {
        const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
        const start = readme.indexOf("## Map of the code");
        const map = readme.slice(start, readme.indexOf("\n## ", start + 1));
        const named = new Set([...map.matchAll(/^(scripts\/[\w.-]+)\s/gm)].map((m) => m[1]));
        const tracked = execFileSync("git", ["ls-files", "scripts"], { cwd: ROOT, encoding: "utf8" })
            .split("\n")
            .filter((f) => f !== "");
        assert.ok(tracked.length > 5, `git ls-files found ${tracked.length} files in scripts/`);
        assert.deepEqual(
            tracked.filter((f) => !named.has(f)),
            [],
        );
    });
});
