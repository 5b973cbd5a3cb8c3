// What the configuration reference says about each key (its default, description, what is allowed,
// whether it may be a secret), attached to the key's schema where the key is declared (config/keys.ts).
// scripts/gen-config.ts writes Pulumi.yaml's `config:` block and docs/configuration.md's table from it.
import * as z from "zod";

/** A value as Pulumi.yaml declares it. */
export type ConfigValue = string | number | boolean | readonly ConfigValue[] | { readonly [key: string]: ConfigValue };

/** What the configuration reference says about a key, besides how it is parsed. */
export interface KeyDoc {
    /** The default, as Pulumi.yaml declares it; a stack that does not set the key gets it. */
    readonly default: ConfigValue;
    /** What the key does (one or two sentences). */
    readonly description: string;
    /** What values are allowed, in a few words (Markdown). */
    readonly allowed: string;
    /**
     * The key may be set with `pulumi config set --secret`, and the program then keeps it secret
     * end to end. Every other key is written in plain text into Kubernetes objects.
     */
    readonly secret?: boolean;
}

/**
 * The documentation of every key, by its schema. (Not a zod registry: its metadata typing recurses
 * through ConfigValue until TypeScript gives up.)
 */
const KEY_DOCS = new Map<z.ZodType, KeyDoc>();

/** The text Pulumi would hand the program for a value declared in Pulumi.yaml. */
function asText(value: ConfigValue): string {
    return typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
}

/**
 * One config key: `schema` parses its text; a stack that does not set it gets `doc.default`, which
 * goes through the same checks.
 */
export function key<T extends z.ZodType<unknown, string>>(doc: KeyDoc, schema: T): z.ZodPipe<z.ZodType<string, string | undefined>, T> {
    const text: z.ZodType<string, string | undefined> = z
        .string()
        .optional()
        .transform((value) => value ?? asText(doc.default));
    const parsed = z.pipe(text, schema);
    KEY_DOCS.set(parsed, doc);
    return parsed;
}

/** The documentation `key` recorded for `schema`; undefined for a schema that is not a key. */
export function docOf(schema: z.ZodType): KeyDoc | undefined {
    return KEY_DOCS.get(schema);
}
