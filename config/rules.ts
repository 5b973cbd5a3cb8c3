// The rules between keys, applied once every key is valid on its own (config/keys.ts): a live version
// is never dropped, activeVersion and trafficSplit name declared versions, the gate and the issuer
// have what they need, the analysis parses. They resolve the parsed keys into Settings, the typed
// object the program and the fleet receive.
import type * as z from "zod";

import { AnalysisError, parseAnalysis, type AnalysisSettings } from "../lib/analysis/checks";
import type { configSchema } from "./keys";
import { ConfigError, show, suggestion } from "./messages";
import type { GatewayApiCrdsSource } from "./values";

/** Every key, parsed on its own. */
type ConfigValues = z.output<typeof configSchema>;

/** What the stack ran after its last successful update (from its own stack outputs). */
export interface LastRun {
    /** Versions that took live traffic (the trafficSplit output, which follows the live route). */
    readonly live: readonly string[];
    /** Every version it declared, name -> image and expect (the versions output). */
    readonly versions: Readonly<Record<string, { readonly image: string; readonly expect?: string }>>;
    /**
     * The prefix of its objects' names in the shared ingress namespace and the cluster scope (the
     * sharedNamePrefix output); undefined for a stack deployed before the output existed.
     */
    readonly sharedNamePrefix?: string;
}

/**
 * Refuses a config that drops a version which takes live traffic now: the same `pulumi up` would
 * delete the pods that serve every request, and the rollback target with them. A version is removed
 * once it is idle. `last` is undefined on a stack never deployed.
 */
function refuseRemovingLive(declared: readonly string[], last: LastRun | undefined): void {
    const dropped = (last?.live ?? []).filter((name) => !declared.includes(name));
    if (dropped.length === 0) return;
    const restore = dropped.flatMap((name) => {
        const before = last?.versions[name];
        if (before === undefined) return [`pulumi config set --path 'versions.${name}.image' <image>`];
        return [
            `pulumi config set --path 'versions.${name}.image' '${before.image}'`,
            ...(before.expect === undefined ? [] : [`pulumi config set --path 'versions.${name}.expect' '${before.expect}'`]),
        ];
    });
    const one = dropped.length === 1;
    throw new ConfigError(
        "versions",
        `${dropped.join(", ")} ${one ? "takes" : "take"} live traffic now, but versions declares only ${declared.join(", ")}; ` +
            `this update would delete ${one ? "it" : "them"}. Declare ${one ? "it" : "them"} again (${restore.join(" && ")}), ` +
            `move the traffic away first, and remove a version once it is idle.`,
    );
}

/**
 * The rules between keys, once every key is valid on its own, in the order a user fixes them: a live
 * version first (a new map that leaves it out is what the user must hear about, not the activeVersion
 * it no longer declares), then the route, then what the gate and the issuer need.
 */
export function settle(values: ConfigValues, secretKeys: ReadonlySet<string>, last: LastRun | undefined) {
    const { acmeEmail, acmeServer, replicas, trafficSplit, prometheusUrl, prometheusToken, analysis: analysisValue, ...rest } = values;
    const names = Object.keys(values.versions);
    refuseRemovingLive(names, last);

    const active = values.activeVersion;
    if (!names.includes(active)) {
        throw new ConfigError("activeVersion", `${show(active)} is not a deployed version${suggestion(active, names)}; allowed: ${names.join(", ")}.`);
    }
    const versions = new Map(Object.entries(values.versions).map(([name, v]) => [name, { image: v.image, replicas: v.replicas ?? replicas, expect: v.expect }]));

    const weights = new Map<string, number>();
    let total = 0;
    for (const [name, percent] of Object.entries(trafficSplit)) {
        if (!versions.has(name)) {
            throw new ConfigError("trafficSplit", `${show(name)} is not a deployed version${suggestion(name, names)}; allowed: ${names.join(", ")}.`);
        }
        total += percent;
        if (percent > 0) weights.set(name, percent);
    }
    if (Object.keys(trafficSplit).length === 0) {
        weights.set(active, 100);
    } else if (total !== 100) {
        throw new ConfigError("trafficSplit", `${show(trafficSplit)} sums to ${total}; the weights must sum to 100.`);
    } else if (!weights.has(active)) {
        throw new ConfigError(
            "trafficSplit",
            `${show(trafficSplit)} gives activeVersion ${show(active)} no traffic; the active version must keep a share > 0 (set activeVersion to the version you are moving to once it takes all traffic).`,
        );
    }

    if (values.smokeCheck) {
        if (values.testRouteHeader === undefined) {
            throw new ConfigError("smokeCheck", 'true needs the test routes (testRouteHeader is ""); set a header name or set smokeCheck to false.');
        }
        for (const [name, spec] of versions) {
            if (spec.expect === undefined) {
                throw new ConfigError(`versions.${name}.expect`, "is missing; the gate needs text that only this version's page contains, or set smokeCheck to false.");
            }
        }
    }

    // Only routingApi gateway-api needs the CRDs; `auto` installs the pinned release along with Istio
    // (a cluster that brings its own mesh is assumed to bring them too).
    const crds = values.gatewayApiCrds;
    const gatewayApiCrds: GatewayApiCrdsSource | undefined =
        values.routingApi !== "gateway-api" || crds === "none" ? undefined : crds === "auto" ? (values.installIstio ? { kind: "release" } : undefined) : crds;

    let issuer: { readonly kind: "selfsigned" } | { readonly kind: "acme"; readonly email: string; readonly server: string } = { kind: "selfsigned" };
    if (values.issuer === "acme") {
        if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(acmeEmail)) {
            throw new ConfigError("acmeEmail", `${show(acmeEmail)} is not allowed; issuer acme needs the e-mail address of the account.`);
        }
        issuer = { kind: "acme", email: acmeEmail, server: acmeServer.replace(/\/+$/, "") };
    }

    // Parsed also without prometheusUrl, so that a stack's bad analysis is refused before it is turned on.
    let checks: AnalysisSettings;
    try {
        checks = parseAnalysis(analysisValue);
    } catch (err) {
        if (err instanceof AnalysisError) throw new ConfigError(`analysis${err.path === "" ? "" : err.path.startsWith("[") ? err.path : `.${err.path}`}`, err.message);
        throw err;
    }
    if (prometheusToken !== undefined && prometheusUrl === undefined) {
        throw new ConfigError("prometheusToken", 'is set but prometheusUrl is ""; set prometheusUrl to the Prometheus the token is for, or remove the token.');
    }
    const analysis = prometheusUrl === undefined ? undefined : { provider: { url: prometheusUrl, token: prometheusToken }, ...checks };
    // The pre-switch analysis sends its traffic through the gate's test route: without the gate it could not run.
    if (analysis?.preSwitch === true && (!values.smokeCheck || values.gatewayUrl === undefined)) {
        throw new ConfigError(
            "analysis.preSwitch",
            `is true, but the gate that runs it is off (${values.smokeCheck ? "gatewayUrl is unset" : "smokeCheck is false"}); set ${values.smokeCheck ? "gatewayUrl" : "smokeCheck to true and gatewayUrl"}, or set analysis.preSwitch to false to analyse only during npm run fleet -- rollout.`,
        );
    }

    return { ...rest, versions: versions as ReadonlyMap<string, VersionSpec>, trafficSplit: weights as ReadonlyMap<string, number>, gatewayApiCrds, issuer, analysis, secretKeys };
}

/** One deployable version of the app, as declared (its replicas filled in from the replicas key). */
export interface VersionSpec {
    readonly image: string;
    /** Pods this version runs while it takes traffic. */
    readonly replicas: number;
    /** Text the version's page must contain for the gate to pass. */
    readonly expect: string | undefined;
}

/**
 * The stack config, parsed and checked: every key of the schema, typed, plus what the rules
 * between keys resolve (the versions with their replicas, trafficSplit as the live shares (> 0 only,
 * activeVersion 100 when empty), the CRD source, the issuer) and which keys are secrets.
 */
export type Settings = ReturnType<typeof settle>;
export type IssuerSettings = Settings["issuer"];
export type GatewayServiceType = Settings["gatewayServiceType"];
/** The metric analysis: where Prometheus is and what to check; undefined without prometheusUrl. */
export type Analysis = NonNullable<Settings["analysis"]>;
