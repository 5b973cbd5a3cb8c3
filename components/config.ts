// Stack configuration: one schema declares every key once (its default, its description, what is
// allowed, whether it may be a secret) and parses the raw strings Pulumi hands the program into one
// typed, validated Settings object, whose type is inferred from it. Pulumi.yaml's `config:` block and
// the table in docs/configuration.md are generated from the same declarations (`npm run gen:config`;
// test/config-docs.test.ts fails, with the diff, when either drifts). Pure (no Pulumi calls), so
// every rule is testable on its own and a bad value fails the program before a single resource is
// registered, as one line that names the key, the value and what is allowed.
//
// The schema library is zod. Where a refusal must show the value as the user typed it (the text
// "3000000000", not the number zod would have converted it to), a key uses a small conversion of its
// own (`transform`) instead of zod's built-in checks; the structure (unknown keys, maps, fields,
// defaults, paths in messages) is zod's.
import * as z from "zod";

import { AnalysisError, parseAnalysis, type AnalysisSettings } from "./analysis/checks";
import { IMAGE_EXAMPLE, imageProblem } from "./image";

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

/** Raised for any bad config value; the message names the key, the value and what is allowed. */
export class ConfigError extends Error {
    constructor(
        readonly key: string,
        message: string,
    ) {
        super(`Invalid config ${key}: ${message}`);
        this.name = "ConfigError";
    }
}

/** Upper bound of every replica count: a typo such as 3000000000 must not reach the API server. */
export const MAX_REPLICAS = 1000;
/** Where Istio publishes its charts (the default of istioCharts). */
export const ISTIO_CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts";
/** How traffic reaches the versions: Istio's own APIs, or the Kubernetes Gateway API. */
export const ROUTING_APIS = ["istio", "gateway-api"] as const;
export type RoutingApi = (typeof ROUTING_APIS)[number];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_NAME = "a DNS label (lower-case letters, digits, '-')";
// Leaves room for the longest name derived from a version (`<app>-<version>` Deployments).
const MAX_VERSION_NAME = 40;
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
const PRINCIPAL = /^[^\s/]+(\/[^\s/]+)*$/;
const VERSION_FIELDS = ["image", "replicas", "expect"];

function show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

/** The refusal of most keys: `<value> is not allowed; expected <what>.` */
const notAllowed =
    (what: string) =>
    (issue: { readonly input?: unknown }): string =>
        `${show(issue.input)} is not allowed; expected ${what}.`;

/** Records a refusal of `input` inside a conversion, which then returns nothing. */
function refuse(ctx: z.RefinementCtx<unknown>, input: unknown, message: string): never {
    ctx.issues.push({ code: "custom", input, message });
    return z.NEVER;
}

/** JSON text (Pulumi hands objects and arrays to the program as JSON), then `schema`. */
function json<T extends z.ZodType>(what: string, schema: T, check?: (text: string) => string | undefined) {
    return z
        .string()
        .transform((text, ctx): unknown => {
            let value: unknown;
            try {
                value = JSON.parse(text);
            } catch {
                return refuse(ctx, text, `${show(text)} is not valid JSON; expected ${what}.`);
            }
            const problem = check?.(text);
            return problem === undefined ? value : refuse(ctx, text, problem);
        })
        .pipe(schema);
}

/** An integer from `min` to `max`, written as a number or as digits (config values are text). */
function integer(min: number, max: number) {
    return (value: unknown, ctx: z.RefinementCtx<unknown>): number => {
        const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
        if (typeof n === "number" && Number.isInteger(n) && n >= min && n <= max) return n;
        return refuse(ctx, value, `${show(value)} is not allowed; expected an integer from ${min} to ${max}.`);
    };
}

/** `true` or `false`, exactly. */
const bool = z.stringbool({ truthy: ["true"], falsy: ["false"], case: "sensitive", error: (issue) => `${show(issue.input)} is not a boolean; allowed: true or false.` });

/** Text, or "" for none. */
function orNone<T>(convert: (text: string, ctx: z.RefinementCtx<unknown>) => T) {
    return (text: string, ctx: z.RefinementCtx<unknown>): T | undefined => (text.trim() === "" ? undefined : convert(text, ctx));
}

/** An http:// or https:// URL, without trailing slashes. */
function url(text: string, ctx: z.RefinementCtx<unknown>): string {
    let parsed: URL;
    try {
        parsed = new URL(text);
    } catch {
        return refuse(ctx, text, `${show(text)} is not a URL; expected for example http://203.0.113.10 or http://localhost:8080.`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        return refuse(ctx, text, `${show(text)} is not allowed; expected an http:// or https:// URL.`);
    }
    return text.replace(/\/+$/, "");
}

function suggestion(value: string, allowed: readonly string[]): string {
    const near = allowed.find((name) => name.toLowerCase() === value.trim().toLowerCase());
    return near === undefined ? "" : ` (did you mean ${show(near)}?)`;
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

/** One version as the user declares it under `versions`. */
const versionSpec = z.strictObject(
    {
        image: z.string({ error: notAllowed(`an image reference such as ${IMAGE_EXAMPLE}`) }).superRefine((image, ctx) => {
            const problem = imageProblem(image);
            if (problem !== undefined) refuse(ctx, image, `${show(image)} is not allowed; expected ${problem}.`);
        }),
        /** Pods this version runs while it takes traffic; default: the replicas key. */
        replicas: z.unknown().transform(integer(1, MAX_REPLICAS)).optional(),
        /** Text only this version's page contains: the gate requires it. */
        expect: z
            .string({ error: notAllowed("non-empty text that only this version's page contains") })
            .refine((text) => text.trim() !== "", { error: notAllowed("non-empty text that only this version's page contains") })
            .optional(),
    },
    {
        error: (issue) =>
            issue.code === "unrecognized_keys"
                ? `unknown field ${show(issue.keys[0])}; allowed fields: ${VERSION_FIELDS.join(", ")}.`
                : notAllowed("{ image, replicas?, expect? }")(issue),
    },
);

const badVersionName = (issue: { readonly input?: unknown }) =>
    `version name ${show(issue.input)} is not allowed; names are lower-case letters, digits and '-', start and end alphanumeric, at most ${MAX_VERSION_NAME} characters.`;
const versionName = z.string().regex(DNS_LABEL, { error: badVersionName }).max(MAX_VERSION_NAME, { error: badVersionName });

const versionMap = z
    .record(versionName, versionSpec, {
        // A bad name is reported by the name's own check; the map reports only what is not a map.
        error: (issue) => (issue.code === "invalid_key" ? issue.issues[0]?.message : notAllowed("an object from version name to { image, replicas?, expect? }")(issue)),
    })
    .superRefine((versions, ctx) => {
        const names = Object.keys(versions);
        if (names.length === 0) {
            refuse(ctx, versions, '{} is not allowed; declare at least one version, for example { "v1": { "image": "dougbtv/nginx-cowsay:v1" } }.');
        }
        const byImage = new Map<string, string>();
        for (const name of names) {
            const image = versions[name].image;
            const twin = byImage.get(image);
            if (twin !== undefined) {
                ctx.issues.push({ code: "custom", input: image, path: [name, "image"], message: `${show(image)} is already version ${show(twin)}; each version needs its own image.` });
            }
            byImage.set(image, name);
        }
    });

/** Where the Gateway API CRDs come from, as the key says it (resolved against routingApi below). */
export type GatewayApiCrdsSource = { readonly kind: "release" } | { readonly kind: "url" | "file"; readonly location: string };

function gatewayApiCrds(value: string, ctx: z.RefinementCtx<unknown>): GatewayApiCrdsSource | "auto" | "none" {
    if (value === "auto" || value === "none") return value;
    if (value === "release") return { kind: "release" };
    if (/^https?:\/\/\S+$/.test(value)) return { kind: "url", location: value };
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && /\S\.ya?ml$/.test(value)) return { kind: "file", location: value };
    return refuse(
        ctx,
        value,
        `${show(value)} is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.`,
    );
}

/** Where the Istio charts come from: a chart repository (HTTP or OCI), or a local directory of charts. */
export type ChartSource = { readonly kind: "repository"; readonly url: string } | { readonly kind: "directory"; readonly path: string };

function chartSource(value: string, ctx: z.RefinementCtx<unknown>): ChartSource {
    if (/^(https?|oci):\/\/[^\s/]+\S*$/.test(value)) return { kind: "repository", url: value.replace(/\/+$/, "") };
    if (value !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !/\s/.test(value)) return { kind: "directory", path: value.replace(/\/+$/, "") };
    return refuse(
        ctx,
        value,
        `${show(value)} is not allowed; expected a chart repository URL (https://, http:// or oci://) or the path of a directory holding the base, istiod and gateway charts.`,
    );
}

/** The text Pulumi would hand the program for a value declared in Pulumi.yaml. */
function asText(value: ConfigValue): string {
    return typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
}

/**
 * One config key: `schema` parses its text; a stack that does not set it gets `doc.default`, which
 * goes through the same checks.
 */
function key<T extends z.ZodType<unknown, string>>(doc: KeyDoc, schema: T): z.ZodPipe<z.ZodType<string, string | undefined>, T> {
    const text: z.ZodType<string, string | undefined> = z
        .string()
        .optional()
        .transform((value) => value ?? asText(doc.default));
    const parsed = z.pipe(text, schema);
    KEY_DOCS.set(parsed, doc);
    return parsed;
}

/** Every key of the stack config, in the order the reference lists them. */
export const configSchema = z.strictObject(
    {
        routingApi: key(
            {
                default: "istio",
                allowed: "`istio` or `gateway-api`",
                description:
                    "How traffic reaches the versions: istio (Istio's Gateway, DestinationRule and VirtualService) or gateway-api " +
                    "(the Kubernetes Gateway API: Gateway, HTTPRoute, a Service per version).",
            },
            z.enum(ROUTING_APIS, {
                error: (issue) => `${show(issue.input)} is not allowed${suggestion(String(issue.input), ROUTING_APIS)}; allowed: ${ROUTING_APIS.join(", ")}.`,
            }),
        ),
        gatewayApiCrds: key(
            {
                default: "auto",
                allowed: "`auto`, `release`, `none`, an `http(s)://` URL of the manifest, or the path of a local `.yaml` file",
                description:
                    "With routingApi gateway-api, where the Gateway API CRDs (standard channel) are installed from: auto is the release " +
                    "pinned in versions.json when installIstio is true and none otherwise; none: the cluster has them; a URL or a file: a " +
                    "mirror or an air-gapped copy. Turning the install off leaves the CRDs in the cluster.",
            },
            z.string().transform(gatewayApiCrds),
        ),
        activeVersion: key(
            {
                default: "v1",
                allowed: "a name declared in `versions`",
                description: "The version that takes the live traffic.",
            },
            z.string(),
        ),
        versions: key(
            {
                default: {
                    v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
                    v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
                },
                allowed:
                    "name → `{ image, replicas?, expect? }`; names are DNS labels of at most 40 characters; each image is pinned by a " +
                    "tag other than `latest` or by a digest, and belongs to one version; `replicas` 1 to 1000",
                description:
                    "Every version to run, idle or not. replicas defaults to the replicas key; expect is text only this version's page " +
                    "contains, which the gate requires. A version that takes live traffic cannot be removed: remove it once it is idle.",
            },
            json("an object", versionMap, (text) => {
                const twice = duplicateTopLevelKey(text);
                return twice === undefined ? undefined : `version name ${show(twice)} is declared twice; each version name must be unique.`;
            }),
        ),
        replicas: key(
            {
                default: 2,
                allowed: `1 to ${MAX_REPLICAS}`,
                description: "Pods per version, unless the version sets its own replicas.",
            },
            z.string().transform(integer(1, MAX_REPLICAS)),
        ),
        trafficSplit: key(
            {
                default: {},
                allowed: "name → integer percent; the percents sum to 100 and give activeVersion a share",
                description: "Optional weighted split of the live traffic; {} sends 100% to activeVersion.",
            },
            z
                .string()
                .transform((text) => (text.trim() === "" ? "{}" : text))
                .pipe(
                    json(
                        "an object",
                        z.record(
                            z.string(),
                            z
                                .int({ error: notAllowed("an integer percent from 0 to 100") })
                                .min(0, { error: notAllowed("an integer percent from 0 to 100") })
                                .max(100, { error: notAllowed("an integer percent from 0 to 100") }),
                            { error: notAllowed('an object from version name to percent, for example { "v1": 90, "v2": 10 }') },
                        ),
                    ),
                ),
        ),
        idleReplicas: key(
            {
                default: "",
                allowed: `\`""\` or 0 to ${MAX_REPLICAS}`,
                description:
                    "Pods a version keeps while it takes no traffic. Empty keeps its own replicas, so a rollback needs no scale-up; 0 " +
                    "stops idle versions (the preview warns that a rollback is then not instant).",
            },
            z.string().transform(orNone(integer(0, MAX_REPLICAS))),
        ),
        testRouteHeader: key(
            {
                default: "x-cowsay-version",
                allowed: '`""` (off) or a lower-case header name',
                description: "Request header that reaches the named version through the gateway, whatever the live route says.",
            },
            z
                .string()
                .refine((text) => text === "" || HEADER_NAME.test(text), {
                    error: (issue) =>
                        `${show(issue.input)} is not allowed; expected a lower-case HTTP header name (letters, digits, '-'), or "" to turn test routes off.`,
                })
                .transform((text) => (text === "" ? undefined : text)),
        ),
        smokeCheck: key(
            {
                default: true,
                allowed: "`true` or `false`",
                description:
                    "The gate: before the live route sends traffic to a version, fetch its page through its test route and require its " +
                    "expect text. It needs testRouteHeader, and runs once gatewayUrl is set.",
            },
            bool,
        ),
        smokeCheckTimeout: key(
            {
                default: 60,
                allowed: "5 to 600",
                description: "The most seconds one pulumi up spends in the gate; then it fails and the route stays.",
            },
            z.string().transform(integer(5, 600)),
        ),
        routeStatusTimeout: key(
            {
                default: 60,
                allowed: "0 to 600",
                description:
                    "With routingApi gateway-api, the most seconds one pulumi up waits for Istio to accept the HTTPRoutes it wrote and " +
                    "resolve their backends (the routes' status); then it fails and idle versions keep their pods. 0: do not wait " +
                    "(for a mesh that writes no route status).",
            },
            z.string().transform(integer(0, 600)),
        ),
        gatewayUrl: key(
            {
                default: "",
                allowed: '`""` or an `http://` or `https://` URL',
                secret: true,
                description:
                    "Address of the ingress gateway as seen from where pulumi runs (for example https://203.0.113.10); the gate fetches " +
                    "through it. It may carry credentials (https://user:token@host, ?token=).",
            },
            z.string().transform(orNone(url)),
        ),
        prometheusUrl: key(
            {
                default: "",
                allowed: '`""` or an `http://` or `https://` URL',
                secret: true,
                description:
                    "Prometheus's HTTP API as seen from where pulumi runs (for example http://prometheus.example:9090); once set, the " +
                    "metric analysis runs (docs/analysis.md). It may carry basic-auth credentials (https://user:password@host).",
            },
            z.string().transform(orNone(url)),
        ),
        prometheusToken: key(
            {
                default: "",
                allowed: "a bearer token, or `\"\"` for none",
                secret: true,
                description: "Sent to prometheusUrl as Authorization: Bearer; set it with --secret.",
            },
            z.string().transform((text) => (text.trim() === "" ? undefined : text.trim())),
        ),
        analysis: key(
            {
                default: {},
                allowed: "an object: `preSwitch`, `trafficPerSecond`, `checks` (docs/analysis.md)",
                description:
                    "With prometheusUrl set: the checks a version must pass on Istio's metrics, before the switch (in the gate, on " +
                    "synthetic traffic) and at each step of npm run fleet -- rollout. {} runs the built-in success-rate (min 99) and " +
                    "request-duration (p99, max 500 ms) checks.",
            },
            json("an object", z.unknown()),
        ),
        hostname: key(
            {
                default: "cowsay.example.com",
                allowed: "a lower-case DNS host name",
                description: "Host name the gateway serves and the certificate names.",
            },
            z.string().regex(HOSTNAME, { error: notAllowed("a lower-case DNS host name such as cowsay.example.com") }),
        ),
        appNamespace: key(
            {
                default: "cowsay",
                allowed: "a DNS label",
                description: "Namespace created for the app (sidecar injection on, mTLS STRICT).",
            },
            z.string().regex(DNS_LABEL, { error: notAllowed(DNS_NAME) }),
        ),
        installIstio: key(
            {
                default: true,
                allowed: "`true` or `false`",
                description: "Install Istio (the base, istiod and gateway charts); false for clusters that already run a mesh.",
            },
            bool,
        ),
        istioCharts: key(
            {
                default: ISTIO_CHART_REPOSITORY,
                allowed: "a chart repository URL (`https://`, `http://`, `oci://`) or a local directory with `base/`, `istiod/` and `gateway/`",
                description:
                    "Where installIstio takes the charts from: Istio's repository, a mirror, or a directory of charts from helm pull " +
                    "--untar (clusters without internet).",
            },
            z.string().transform(chartSource),
        ),
        gatewayServiceType: key(
            {
                default: "LoadBalancer",
                allowed: "`LoadBalancer`, `NodePort` or `ClusterIP`",
                description:
                    "Type of the ingress gateway's Service: as installed with installIstio (pulumi up waits for the gateway's pods, never " +
                    "for a load-balancer address), or the existing gateway's without it. gatewayAddressCommand says how to reach each type.",
            },
            z.enum(["LoadBalancer", "NodePort", "ClusterIP"], {
                error: (issue) => `${show(issue.input)} is not allowed; allowed: LoadBalancer, NodePort, ClusterIP.`,
            }),
        ),
        installCertManager: key(
            {
                default: true,
                allowed: "`true` or `false`",
                description: "Install cert-manager with its CRDs; false for clusters that already have it (the Issuer and Certificate stay).",
            },
            bool,
        ),
        issuer: key(
            {
                default: "selfsigned",
                allowed: "`selfsigned` or `acme`",
                description: "Where the gateway certificate comes from: a self-signed Issuer, or ACME (HTTP-01 through the gateway).",
            },
            z.enum(["selfsigned", "acme"], { error: (issue) => `${show(issue.input)} is not allowed; allowed: selfsigned, acme.` }),
        ),
        acmeEmail: key(
            {
                default: "",
                allowed: "an e-mail address; required with issuer `acme`",
                secret: true,
                description: "E-mail of the ACME account (personal data).",
            },
            z.string(),
        ),
        acmeServer: key(
            {
                default: "https://acme-v02.api.letsencrypt.org/directory",
                allowed: "an `https://` URL",
                description: "ACME directory URL (with issuer acme).",
            },
            z.string().refine((text) => /^https:\/\/[^\s/]+\S*$/.test(text) && URL.canParse(text), {
                error: notAllowed("the https:// directory URL of the ACME server"),
            }),
        ),
        httpsRedirect: key(
            {
                default: true,
                allowed: "`true` or `false`",
                description: "Redirect plain HTTP to HTTPS at the gateway; false keeps plain HTTP (local clusters).",
            },
            bool,
        ),
        readOnlyRootFilesystem: key(
            {
                default: true,
                allowed: "`true` or `false`",
                description: "Mount the app containers' root filesystem read-only (nginx writes only to emptyDirs).",
            },
            bool,
        ),
        ingressNamespace: key(
            {
                default: "istio-ingress",
                allowed: "a DNS label",
                description: "Namespace of the ingress gateway; the TLS Secret is written there.",
            },
            z.string().regex(DNS_LABEL, { error: notAllowed(DNS_NAME) }),
        ),
        gatewaySelector: key(
            {
                default: { istio: "ingressgateway" },
                allowed: "a non-empty object of label names to values",
                description: "Labels of the ingress gateway pods the Istio Gateway binds to.",
            },
            json(
                "an object of strings",
                z
                    .record(z.string(), z.string({ error: notAllowed("a label value (text)") }), {
                        error: notAllowed("a non-empty object of label names to string values"),
                    })
                    .refine((labels) => Object.keys(labels).length > 0, { error: notAllowed("a non-empty object of label names to string values") }),
            ),
        ),
        meshClients: key(
            {
                default: [],
                allowed: "an array of SPIFFE principals (`cluster.local/ns/<ns>/sa/<sa>`)",
                description: "Principals, besides the ingress gateway, allowed to call the app.",
            },
            json(
                "an array",
                z.array(z.string().regex(PRINCIPAL, { error: notAllowed('a SPIFFE principal such as "cluster.local/ns/shop/sa/frontend"') }), {
                    error: notAllowed('an array of SPIFFE principals such as "cluster.local/ns/shop/sa/frontend"'),
                }),
            ),
        ),
    },
);

export type ConfigKey = keyof typeof configSchema.shape;
export const CONFIG_KEYS = Object.keys(configSchema.shape) as readonly ConfigKey[];

/** The documentation of `key`, as declared in the schema. */
export function keyDoc(key: ConfigKey): KeyDoc {
    const doc = KEY_DOCS.get(configSchema.shape[key] as z.ZodType);
    if (doc === undefined) throw new Error(`config key ${key} has no documentation`);
    return doc;
}

/** The default of every key, as Pulumi.yaml declares it. */
export const DEFAULTS = Object.fromEntries(CONFIG_KEYS.map((k) => [k, keyDoc(k).default])) as Readonly<Record<ConfigKey, ConfigValue>>;

/** Keys that may hold credentials or personal data, and so may be set with `pulumi config set --secret`. */
export const SECRET_CAPABLE_KEYS: readonly ConfigKey[] = CONFIG_KEYS.filter((k) => keyDoc(k).secret === true);

/** The raw config values, as strings, keyed without the project namespace. */
export type RawConfig = Readonly<Record<string, string | undefined>>;

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
function settle(values: ConfigValues, secretKeys: ReadonlySet<string>, last: LastRun | undefined) {
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

/** A key at the top level that the schema does not declare. */
function isUnknownKey(issue: z.core.$ZodIssue): issue is z.core.$ZodIssueUnrecognizedKeys {
    return issue.code === "unrecognized_keys" && issue.path.length === 0;
}

/** The key a zod issue is about, written as `pulumi config set --path` takes it. */
function keyOf(issue: z.core.$ZodIssue): string {
    if (isUnknownKey(issue)) return issue.keys[0];
    // A bad version name is the map's problem, not a field of it.
    const path = issue.code === "invalid_key" ? issue.path.slice(0, -1) : issue.path;
    return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}

/**
 * Parses and validates the whole stack config. Throws a ConfigError on the first bad value.
 * `raw` holds config values as Pulumi stores them: strings, with objects and arrays as JSON.
 * `secretKeys` names the keys the stack stores as secrets; `last` is what the stack ran after its
 * last update (undefined if never deployed), so that a config which would delete the live version is
 * refused as such.
 */
export function parseSettings(raw: RawConfig, secretKeys: ReadonlySet<string> = new Set(), last?: LastRun): Settings {
    for (const key of secretKeys) {
        if ((CONFIG_KEYS as readonly string[]).includes(key) && !(SECRET_CAPABLE_KEYS as readonly string[]).includes(key)) {
            throw new ConfigError(
                key,
                `is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only ${SECRET_CAPABLE_KEYS.slice(0, -1).join(", ")} and ${SECRET_CAPABLE_KEYS[SECRET_CAPABLE_KEYS.length - 1]} can be kept secret. Set it again without --secret.`,
            );
        }
    }
    const parsed = configSchema.safeParse(raw);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const message = isUnknownKey(issue) ? `unknown key; allowed keys: ${CONFIG_KEYS.join(", ")}.` : issue.message;
        throw new ConfigError(keyOf(issue), message);
    }
    return settle(parsed.data, secretKeys, last);
}
