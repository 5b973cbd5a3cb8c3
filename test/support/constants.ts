// The names and values the tests, the benchmark and the demo share, in one place: the project, where
// the app lives and which host and header reach it, the two versions of the blog post and what their
// pages show, and the config every end-to-end stack starts from. Values the program defines are taken
// from the program (config/, Pulumi.yaml), not restated.
import { readFileSync } from "node:fs";
import * as path from "node:path";

import { parse } from "yaml";

import { DEFAULTS } from "../../config";
import { APP_NAME } from "../../lib/app-names";
import { namespacedKey } from "../../lib/stack-config";

/**
 * The repository's root, and only that: the compiled program is COMPILED (test/support/helpers.ts).
 * This file runs from bin/test/support, three levels below.
 */
export const ROOT = path.resolve(__dirname, "..", "..", "..");

/** The project name, which prefixes every config key (`<project>:activeVersion`). */
export const PROJECT: string = (parse(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { name: string }).name;

/** `<project>:<key>`, as `pulumi config set` takes a key of this project. */
export const configKey = (key: string): string => namespacedKey(PROJECT, key);

/** A default the schema declares as a string. */
function stringDefault(key: "appNamespace" | "ingressNamespace" | "hostname" | "testRouteHeader"): string {
    const value = DEFAULTS[key];
    if (typeof value !== "string") throw new Error(`the default of ${key} is not a string: ${JSON.stringify(value)}`);
    return value;
}

export const APP_NAMESPACE = stringDefault("appNamespace");
export const INGRESS_NAMESPACE = stringDefault("ingressNamespace");
/** The host the Gateway serves. */
export const HOST = stringDefault("hostname");
/** The test-route header that reaches a named version. */
export const HEADER = stringDefault("testRouteHeader");

/** The blog post's versions (the default of `versions`): v1 serves the cow, v2 the hotdog. */
export const VERSIONS = DEFAULTS.versions as Readonly<Record<string, { readonly image: string; readonly expect: string }>>;
/** Text only v1's page (the cow) contains. */
export const COW: string = VERSIONS.v1.expect;
/** Text only v2's page (the hotdog) contains. */
export const HOTDOG: string = VERSIONS.v2.expect;

/** The app's objects are named after it: the live route, the DestinationRule, `<app>-<version>` Deployments. */
export const APP: string = APP_NAME;

/**
 * Config every end-to-end stack starts from: Istio and cert-manager are not installed (Helm releases
 * cannot render to YAML, and cert-manager's component plugin is not served here). The one suite that
 * installs Istio, from the module's charts, is test/e2e/charts.e2e.ts.
 */
export const NO_INSTALLS: Readonly<Record<string, string>> = { installIstio: "false", installCertManager: "false" };

/**
 * Config for a Gateway API stack on a control plane where nothing writes the HTTPRoutes' status (no
 * istiod): the program's wait for Istio's verdict (dynamic/route-status.ts) is off.
 */
export const NO_ROUTE_STATUS: Readonly<Record<string, string>> = { routeStatusTimeout: "0" };

/** The gate's shortest bound (s): a gate that must fail fails this fast. */
export const SHORT_GATE = "5";

/** URNs the suites look for in a plan, by the resource's Pulumi name. */
export const URN = {
    /** The gate (a dynamic resource). */
    gate: /[:$]pulumi-nodejs:dynamic\/[^:]+:Gate::cowsay-gate$/,
    /** The live route with the Istio APIs. */
    istioRoute: /[:$]kubernetes:networking\.istio\.io\/v1:VirtualService::cowsay-route$/,
    /** The live route with the Gateway API. */
    httpRoute: /[:$]kubernetes:gateway\.networking\.k8s\.io\/v1:HTTPRoute::cowsay-route$/,
    /** The in-mesh route with the Gateway API. */
    meshRoute: /[:$]kubernetes:gateway\.networking\.k8s\.io\/v1:HTTPRoute::cowsay-mesh-route$/,
} as const;

/** The labels of the ingress gateway's pods, which the program's Gateway selects (gatewaySelector's default). */
export const GATEWAY_SELECTOR = DEFAULTS.gatewaySelector as Readonly<Record<string, string>>;
