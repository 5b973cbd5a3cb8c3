// Keys whose value is JSON text (Pulumi hands objects and arrays to the program as JSON): the text is
// parsed, then checked by the key's schema; and the scan that finds a key written twice in it.
//
// Why the duplicate-key scan is our own: JSON.parse keeps the last of two equal keys silently (a
// reviver, even with the source text Node passes it, sees only the merged object), and zod checks the
// parsed value, so neither can tell that a version was written twice. The one parser in package.json
// that reports duplicates, `yaml` (a devDependency), reports them at every depth, where this program
// refuses only a version name written twice, and would read users' JSON through YAML's larger grammar
// at every run of the program. The scan runs only on text JSON.parse has already accepted, so it only
// has to skip strings and count brackets.
import * as z from "zod";

import { addIssue, show } from "./messages";

/** JSON text (Pulumi hands objects and arrays to the program as JSON), then `schema`. */
export function json<T extends z.ZodType>(what: string, schema: T, check?: (text: string) => string | undefined) {
    return z
        .string()
        .transform((text, ctx): unknown => {
            let value: unknown;
            try {
                value = JSON.parse(text);
            } catch {
                return addIssue(ctx, text, `${show(text)} is not valid JSON; expected ${what}.`);
            }
            const problem = check?.(text);
            return problem === undefined ? value : addIssue(ctx, text, problem);
        })
        .pipe(schema);
}

/**
 * The first key that appears twice at the top level of a JSON object text. JSON.parse keeps the
 * last of duplicates silently, which would drop a version the user wrote.
 */
export function duplicateTopLevelKey(text: string): string | undefined {
    const seen = new Set<string>();
    let depth = 0;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c === "{" || c === "[") depth++;
        else if (c === "}" || c === "]") depth--;
        else if (c === '"') {
            let end = i + 1;
            while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
            const isKey = depth === 1 && /^\s*:/.test(text.slice(end + 1));
            if (isKey) {
                const name = JSON.parse(text.slice(i, end + 1)) as string;
                if (seen.has(name)) return name;
                seen.add(name);
            }
            i = end;
        }
    }
    return undefined;
}
