// The kinds of value the config keys take, each written once and shared by the keys that take it:
// integers in a range, booleans, URLs, DNS names, the routing APIs, where the Gateway API CRDs and the
// Istio charts come from. A conversion that must show the value as the user typed it (the text
// "3000000000", not the number zod would have converted it to) is a `transform` of our own here
// rather than zod's built-in checks.
import * as z from "zod";

import { addIssue, show } from "./messages";

/** Upper bound of every replica count: a typo such as 3000000000 must not reach the API server. */
export const MAX_REPLICAS = 1000;
/** Where Istio publishes its charts (the default of istioCharts). */
export const ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts";
/**
 * The ingress gateway's Helm release (components/mesh.ts). The gateway chart names its Deployment,
 * Service and ServiceAccount after it and labels its pods `istio: <name without "istio-">`, so the
 * Gateway API's address, the principal the mesh admits and gatewaySelector's default all follow it.
 */
export const GATEWAY_NAME = "istio-ingressgateway";
/** How traffic reaches the versions: Istio's own APIs, or the Kubernetes Gateway API. */
export const ROUTING_APIS = ["istio", "gateway-api"] as const;
export type RoutingApi = (typeof ROUTING_APIS)[number];

// The names Kubernetes (a namespace, a label) and HTTP (a header) accept; DNS_NAME is how a refusal
// describes a DNS label.
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_NAME = "a DNS label (lower-case letters, digits, '-')";
export const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
export const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
export const PRINCIPAL = /^[^\s/]+(\/[^\s/]+)*$/;

/** An integer from `min` to `max`, written as a number or as digits (config values are text). */
export function integer(min: number, max: number) {
    return (value: unknown, ctx: z.RefinementCtx<unknown>): number => {
        const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
        if (typeof n === "number" && Number.isInteger(n) && n >= min && n <= max) return n;
        return addIssue(ctx, value, `${show(value)} is not allowed; expected an integer from ${min} to ${max}.`);
    };
}

/** `true` or `false`, exactly. */
export const bool = z.stringbool({
    truthy: ["true"],
    falsy: ["false"],
    case: "sensitive",
    error: (issue) => `${show(issue.input)} is not a boolean; allowed: true or false.`,
});

/** Text, or "" for none. */
export function orNone<T>(convert: (text: string, ctx: z.RefinementCtx<unknown>) => T) {
    return (text: string, ctx: z.RefinementCtx<unknown>): T | undefined => (text.trim() === "" ? undefined : convert(text, ctx));
}

/** An http:// or https:// URL, without trailing slashes. */
export function url(text: string, ctx: z.RefinementCtx<unknown>): string {
    let parsed: URL;
    try {
        parsed = new URL(text);
    } catch {
        return addIssue(ctx, text, `${show(text)} is not a URL; expected for example http://203.0.113.10 or http://localhost:8080.`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        return addIssue(ctx, text, `${show(text)} is not allowed; expected an http:// or https:// URL.`);
    }
    return text.replace(/\/+$/, "");
}

/** Where the Gateway API CRDs come from, as the key says it (resolved against routingApi below). */
export type GatewayApiCrdsSource = { readonly kind: "release" } | { readonly kind: "url" | "file"; readonly location: string };

export function gatewayApiCrds(value: string, ctx: z.RefinementCtx<unknown>): GatewayApiCrdsSource | "auto" | "none" {
    if (value === "auto" || value === "none") return value;
    if (value === "release") return { kind: "release" };
    if (/^https?:\/\/\S+$/.test(value)) return { kind: "url", location: value };
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && /\S\.ya?ml$/.test(value)) return { kind: "file", location: value };
    return addIssue(
        ctx,
        value,
        `${show(value)} is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.`,
    );
}

/** Where the Istio charts come from: a chart repository (HTTP or OCI), or a local directory of charts. */
export type ChartSource = { readonly kind: "repository"; readonly url: string } | { readonly kind: "directory"; readonly path: string };

export function chartSource(value: string, ctx: z.RefinementCtx<unknown>): ChartSource {
    if (/^(https?|oci):\/\/[^\s/]+\S*$/.test(value)) return { kind: "repository", url: value.replace(/\/+$/, "") };
    if (value !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !/\s/.test(value)) return { kind: "directory", path: value.replace(/\/+$/, "") };
    return addIssue(
        ctx,
        value,
        `${show(value)} is not allowed; expected a chart repository URL (https://, http:// or oci://) or the path of a directory holding the base, istiod and gateway charts.`,
    );
}
