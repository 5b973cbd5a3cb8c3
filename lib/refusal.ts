// The one error that means "refused": bad input or state, found before anything changed. Every
// refusal of the program's config, the analysis value, the fleet's file, arguments, record and stacks
// throws a Refused, so the two places that end a run tell a refusal from a failure with one check:
// the program turns it into Pulumi's one-line RunError (index.ts), the fleet into its line on stderr
// and exit 4 (fleet/cli.ts). A failure of a stack's own command is not one (fleet/engine-events.ts
// StackError: the engine ran, and may have changed something). Pulumi-free, so that config/, lib/,
// fleet/ and the policy pack may all throw it.
// Names: a `refuse…` function throws a Refused; a `…Refusal` function returns its line (or
// undefined) for the caller to throw, with the others it checks.

/** Refused before anything changed. The message is the whole line a user sees: the key, the value and what is allowed. */
export class Refused extends Error {
    constructor(
        message: string,
        /** The config key the refusal is about, written as `pulumi config set --path` takes it; undefined when it is about no key. */
        readonly key?: string,
    ) {
        super(message);
        this.name = "Refused";
    }
}

/**
 * How a bad stack config value reads: `Invalid config <key>: <reason>`. Here rather than in config/
 * because lib/analysis/ words the refusals of the `analysis` value, inside the config, alike.
 */
export function invalidConfig(key: string, reason: string): Refused {
    return new Refused(`Invalid config ${key}: ${reason}`, key);
}
