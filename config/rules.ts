// The rules between keys, applied once every key is valid on its own (config/keys.ts): a live version
// is never dropped, activeVersion and trafficSplit name declared versions, the gate and the issuer
// have what they need, the analysis parses. They resolve the parsed keys into Settings, the typed
// object the program and the fleet receive.
import type * as z from "zod";

import { parseAnalysis, type AnalysisSettings } from "../lib/analysis/checks";
import type { MetricsProvider } from "../lib/analysis/judge";
import { invalidConfig } from "../lib/refusal";
import type { configSchema } from "./keys";
import { show, suggestion } from "./messages";
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
    throw invalidConfig(
        "versions",
        `${dropped.join(", ")} ${one ? "takes" : "take"} live traffic now, but versions declares only ${declared.join(", ")}; ` +
            `this update would delete ${one ? "it" : "them"}. Declare ${one ? "it" : "them"} again (${restore.join(" && ")}), ` +
            `move the traffic away first, and remove a version once it is idle.`,
    );
}

/** One deployable version of the app, as declared (its replicas filled in from the replicas key). */
export interface VersionSpec {
    readonly image: string;
    /** Pods this version runs while it takes traffic. */
    readonly replicas: number;
    /** Text the version's page must contain for the gate to pass. */
    readonly expect: string | undefined;
}

/** Where the gateway's certificate comes from, with what issuer acme needs. */
export type IssuerSettings = { readonly kind: "selfsigned" } | { readonly kind: "acme"; readonly email: string; readonly server: string };

/** The metric analysis: where Prometheus is and what to check. */
export interface Analysis extends AnalysisSettings {
    /** Prometheus's HTTP API (prometheusUrl) and its bearer token (prometheusToken). */
    readonly provider: MetricsProvider;
}

/**
 * The stack config, parsed and checked: what the program and the fleet receive. The keys that pass
 * through as parsed keep the schema's type (config/keys.ts, which documents each at length); the
 * others are what the rules between keys resolve. settle is declared to return it, so the compiler
 * checks that every field is filled, with its type.
 */
export interface Settings {
    /** routingApi: how traffic reaches the versions (Istio's APIs or the Gateway API). */
    readonly routingApi: ConfigValues["routingApi"];
    /** Where the Gateway API CRDs come from; undefined: not installed (routingApi istio, none, or auto without installIstio). */
    readonly gatewayApiCrds: GatewayApiCrdsSource | undefined;
    /** activeVersion: the version that owns the live route; always a declared one. */
    readonly activeVersion: ConfigValues["activeVersion"];
    /** Every declared version, in declaration order, with its replicas filled in from the replicas key. */
    readonly versions: ReadonlyMap<string, VersionSpec>;
    /** The live shares in percent, > 0 only, summing to 100 (activeVersion 100 when trafficSplit is {}). */
    readonly trafficSplit: ReadonlyMap<string, number>;
    /** idleReplicas: pods a version keeps while idle; undefined keeps its own replicas. */
    readonly idleReplicas: ConfigValues["idleReplicas"];
    /** testRouteHeader: the header that reaches a named version whatever the live route; undefined: no test routes. */
    readonly testRouteHeader: ConfigValues["testRouteHeader"];
    /** smokeCheck: the gate is on (then every version has its expect text, and test routes exist). */
    readonly smokeCheck: ConfigValues["smokeCheck"];
    /** smokeCheckTimeout: the most seconds one pulumi up spends in the gate. */
    readonly smokeCheckTimeout: ConfigValues["smokeCheckTimeout"];
    /** routeStatusTimeout: the most seconds one pulumi up waits for Istio's verdict on the HTTPRoutes; 0: no wait. */
    readonly routeStatusTimeout: ConfigValues["routeStatusTimeout"];
    /** gatewayUrl: the gateway as seen from where pulumi runs; undefined until it has an address. */
    readonly gatewayUrl: ConfigValues["gatewayUrl"];
    /** The metric analysis; undefined without prometheusUrl. */
    readonly analysis: Analysis | undefined;
    /** hostname: the host the gateway serves and the certificate names. */
    readonly hostname: ConfigValues["hostname"];
    /** appNamespace: the namespace created for the app. */
    readonly appNamespace: ConfigValues["appNamespace"];
    /** installIstio: install Istio's base, istiod and gateway charts. */
    readonly installIstio: ConfigValues["installIstio"];
    /** istioCharts: where Istio's charts come from (a Helm repository or a local directory). */
    readonly istioCharts: ConfigValues["istioCharts"];
    /** gatewayServiceType: the type of the ingress gateway's Service. */
    readonly gatewayServiceType: ConfigValues["gatewayServiceType"];
    /** installCertManager: install cert-manager with its CRDs. */
    readonly installCertManager: ConfigValues["installCertManager"];
    /** The certificate's issuer: self-signed, or ACME with its account e-mail and directory URL (no trailing slash). */
    readonly issuer: IssuerSettings;
    /** httpsRedirect: plain HTTP is redirected to HTTPS at the gateway. */
    readonly httpsRedirect: ConfigValues["httpsRedirect"];
    /** readOnlyRootFilesystem: the app containers' root filesystem is mounted read-only. */
    readonly readOnlyRootFilesystem: ConfigValues["readOnlyRootFilesystem"];
    /** ingressNamespace: the ingress gateway's namespace, where the TLS Secret is written. */
    readonly ingressNamespace: ConfigValues["ingressNamespace"];
    /** gatewaySelector: the labels of the ingress gateway pods the Gateway binds to. */
    readonly gatewaySelector: ConfigValues["gatewaySelector"];
    /** meshClients: principals, besides the ingress gateway, allowed to call the app. */
    readonly meshClients: ConfigValues["meshClients"];
    /** The keys the stack stores as secrets (the URLs and the token stay secret in the outputs). */
    readonly secretKeys: ReadonlySet<string>;
}

export type GatewayServiceType = Settings["gatewayServiceType"];

/**
 * The rules between keys, once every key is valid on its own, in the order a user fixes them: a live
 * version first (a new map that leaves it out is what the user must hear about, not the activeVersion
 * it no longer declares), then the route, then what the gate and the issuer need.
 */
export function settle(values: ConfigValues, secretKeys: ReadonlySet<string>, last: LastRun | undefined): Settings {
    const { acmeEmail, acmeServer, replicas, trafficSplit, prometheusUrl, prometheusToken, analysis: analysisValue, ...rest } = values;
    const names = Object.keys(values.versions);
    refuseRemovingLive(names, last);

    const active = values.activeVersion;
    if (!names.includes(active)) {
        throw invalidConfig("activeVersion", `${show(active)} is not a deployed version${suggestion(active, names)}; allowed: ${names.join(", ")}.`);
    }
    const versions = new Map(
        Object.entries(values.versions).map(([name, v]) => [name, { image: v.image, replicas: v.replicas ?? replicas, expect: v.expect }]),
    );

    const weights = new Map<string, number>();
    let total = 0;
    for (const [name, percent] of Object.entries(trafficSplit)) {
        if (!versions.has(name)) {
            throw invalidConfig("trafficSplit", `${show(name)} is not a deployed version${suggestion(name, names)}; allowed: ${names.join(", ")}.`);
        }
        total += percent;
        if (percent > 0) weights.set(name, percent);
    }
    if (Object.keys(trafficSplit).length === 0) {
        weights.set(active, 100);
    } else if (total !== 100) {
        throw invalidConfig("trafficSplit", `${show(trafficSplit)} sums to ${total}; the weights must sum to 100.`);
    } else if (!weights.has(active)) {
        throw invalidConfig(
            "trafficSplit",
            `${show(trafficSplit)} gives activeVersion ${show(active)} no traffic; the active version must keep a share > 0 (set activeVersion to the version you are moving to once it takes all traffic).`,
        );
    }

    if (values.smokeCheck) {
        if (values.testRouteHeader === undefined) {
            throw invalidConfig("smokeCheck", 'true needs the test routes (testRouteHeader is ""); set a header name or set smokeCheck to false.');
        }
        for (const [name, spec] of versions) {
            if (spec.expect === undefined) {
                throw invalidConfig(
                    `versions.${name}.expect`,
                    "is missing; the gate needs text that only this version's page contains, or set smokeCheck to false.",
                );
            }
        }
    }

    // Only routingApi gateway-api needs the CRDs; `auto` installs the pinned release along with Istio
    // (a cluster that brings its own mesh is assumed to bring them too).
    const crds = values.gatewayApiCrds;
    const gatewayApiCrds: GatewayApiCrdsSource | undefined =
        values.routingApi !== "gateway-api" || crds === "none" ? undefined : crds === "auto" ? (values.installIstio ? { kind: "release" } : undefined) : crds;

    let issuer: IssuerSettings = { kind: "selfsigned" };
    if (values.issuer === "acme") {
        if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(acmeEmail)) {
            throw invalidConfig("acmeEmail", `${show(acmeEmail)} is not allowed; issuer acme needs the e-mail address of the account.`);
        }
        issuer = { kind: "acme", email: acmeEmail, server: acmeServer.replace(/\/+$/, "") };
    }

    // Parsed also without prometheusUrl, so that a stack's bad analysis is refused before it is turned on.
    const checks = parseAnalysis(analysisValue);
    if (prometheusToken !== undefined && prometheusUrl === undefined) {
        throw invalidConfig("prometheusToken", 'is set but prometheusUrl is ""; set prometheusUrl to the Prometheus the token is for, or remove the token.');
    }
    const analysis: Analysis | undefined = prometheusUrl === undefined ? undefined : { provider: { url: prometheusUrl, token: prometheusToken }, ...checks };
    // The pre-switch analysis sends its traffic through the gate's test route: without the gate it could not run.
    if (analysis?.preSwitch === true && (!values.smokeCheck || values.gatewayUrl === undefined)) {
        throw invalidConfig(
            "analysis.preSwitch",
            `is true, but the gate that runs it is off (${values.smokeCheck ? "gatewayUrl is unset" : "smokeCheck is false"}); set ${values.smokeCheck ? "gatewayUrl" : "smokeCheck to true and gatewayUrl"}, or set analysis.preSwitch to false to analyse only during npm run fleet -- rollout.`,
        );
    }

    // The keys that pass through as parsed. Picked from Settings by their own names, so a key added to
    // the schema fails tsc here until Settings declares it (a spread alone would carry it untyped).
    const passed: Pick<Settings, Exclude<keyof typeof rest, "versions" | "gatewayApiCrds" | "issuer">> = rest;
    return { ...passed, versions, trafficSplit: weights, gatewayApiCrds, issuer, analysis, secretKeys };
}
