// The program runs as JavaScript pre-built by `npm run build` (the fastest start-up measured, see
// bench/engine.ts). This guard keeps that correct: if a TypeScript source is newer than its
// compiled file, or was never compiled, `pulumi up` stops before deploying stale code.
import { existsSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";

/** Sources of the program, relative to the project root. */
function programSources(root: string): string[] {
    const components = readdirSync(path.join(root, "components")).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
    return ["index.ts", ...components.map((f) => path.join("components", f))];
}

/**
 * Throws when `compiledRoot` (the build output, e.g. <root>/bin) holds a file older than its source
 * in `sourceRoot`, or lacks one. Does nothing when the sources are not there (a JavaScript-only copy).
 */
export function assertBuildIsCurrent(compiledRoot: string, sourceRoot: string): void {
    if (!existsSync(path.join(sourceRoot, "index.ts"))) return;
    for (const source of programSources(sourceRoot)) {
        const compiled = path.join(compiledRoot, source.replace(/\.ts$/, ".js"));
        const built = existsSync(compiled) ? statSync(compiled).mtimeMs : -1;
        if (built < statSync(path.join(sourceRoot, source)).mtimeMs) {
            throw new Error(
                `${path.relative(sourceRoot, compiled)} is ${built < 0 ? "missing" : `older than ${source}`}: run \`npm run build\` before pulumi preview or pulumi up.`,
            );
        }
    }
}
