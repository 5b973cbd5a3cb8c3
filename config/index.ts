// The stack configuration, as the program, the fleet, the tests and scripts/gen-config.ts import it:
// parseSettings turns the raw strings Pulumi hands the program into one typed, validated Settings
// object. Pure (no Pulumi calls), so every rule is testable on its own and a bad value fails the
// program before a single resource is registered, as one line that names the key, the value and
// what is allowed. The parts, each in its own file:
//   keys.ts      the key table: each key once, its schema and its documentation (docs.ts)
//   values.ts    the kinds of value keys take; versions.ts the versions map
//   json.ts      keys written as JSON text, and the scan for a version name written twice
//   rules.ts     the rules between keys, which resolve the parsed keys into Settings
//   messages.ts  how a refusal reads
// Pulumi.yaml's `config:` block and the table in docs/configuration.md are generated from the key
// table (`npm run gen:config`; test/config-docs.test.ts fails, with the diff, when either drifts).
import { invalidConfig } from "../lib/refusal";
import { CONFIG_KEYS, SECRET_CAPABLE_KEYS, configSchema } from "./keys";
import { isUnknownKey, keyOf } from "./messages";
import { settle, type LastRun, type Settings } from "./rules";

export type { ConfigValue, KeyDoc } from "./docs";
export { duplicateTopLevelKey } from "./json";
export { CONFIG_KEYS, DEFAULTS, SECRET_CAPABLE_KEYS, configSchema, keyDoc, type ConfigKey } from "./keys";
export type { Analysis, GatewayServiceType, IssuerSettings, LastRun, Settings, VersionSpec } from "./rules";
export { GATEWAY_NAME, ISTIO_CHART_REPOSITORY, MAX_REPLICAS, ROUTING_APIS, type ChartSource, type GatewayApiCrdsSource, type RoutingApi } from "./values";

/** The raw config values, as strings, keyed without the project namespace. */
export type RawConfig = Readonly<Record<string, string | undefined>>;

/**
 * Parses and validates the whole stack config. Throws a Refused (lib/refusal.ts) on the first bad value.
 * `raw` holds config values as Pulumi stores them: strings, with objects and arrays as JSON.
 * `secretKeys` names the keys the stack stores as secrets; `last` is what the stack ran after its
 * last update (undefined if never deployed), so that a config which would delete the live version is
 * refused as such.
 */
export function parseSettings(raw: RawConfig, secretKeys: ReadonlySet<string> = new Set(), last?: LastRun): Settings {
    for (const key of secretKeys) {
        if ((CONFIG_KEYS as readonly string[]).includes(key) && !(SECRET_CAPABLE_KEYS as readonly string[]).includes(key)) {
            throw invalidConfig(
                key,
                `is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only ${SECRET_CAPABLE_KEYS.slice(0, -1).join(", ")} and ${SECRET_CAPABLE_KEYS[SECRET_CAPABLE_KEYS.length - 1]} can be kept secret. Set it again without --secret.`,
            );
        }
    }
    const parsed = configSchema.safeParse(raw);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const message = isUnknownKey(issue) ? `unknown key; allowed keys: ${CONFIG_KEYS.join(", ")}.` : issue.message;
        throw invalidConfig(keyOf(issue), message);
    }
    return settle(parsed.data, secretKeys, last);
}
