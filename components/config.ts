// Stack configuration: the raw strings Pulumi hands the program, parsed once into one typed,
// validated Settings object. Pure (no Pulumi calls), so every rule is testable on its own and a
// bad value fails the program before a single resource is registered.

/** One deployable version of the app, as the user declares it under `versions`. */
export interface VersionSpec {
    /** Container image, pinned by tag or digest. */
    readonly image: string;
    /** Pods this version runs while it takes traffic. */
    readonly replicas: number;
    /** Text the version's page must contain for the smoke check to pass. */
    readonly expect?: string;
}

/** How traffic reaches the versions: Istio's own APIs, or the Kubernetes Gateway API. */
export const ROUTING_APIS = ["istio", "gateway-api"] as const;
export type RoutingApi = (typeof ROUTING_APIS)[number];

/**
 * Where the program installs the Gateway API CRDs (standard channel) from: the release pinned in
 * versions.json, or a manifest at a URL or in a local file (a mirror, an air-gapped copy).
 */
export type GatewayApiCrdsSource = { readonly kind: "release" } | { readonly kind: "url" | "file"; readonly location: string };

/** Where the Istio charts come from: a chart repository (HTTP or OCI), or a local directory of charts. */
export type ChartSource = { readonly kind: "repository"; readonly url: string } | { readonly kind: "directory"; readonly path: string };

/** Where the TLS certificate for the gateway host comes from. */
export type IssuerSettings =
    | { readonly kind: "selfsigned" }
    | { readonly kind: "acme"; readonly email: string; readonly server: string };

export interface Settings {
    /** Which API routes the traffic (the ingress and routing objects). */
    readonly routingApi: RoutingApi;
    /** Where the Gateway API CRDs are installed from; undefined: the program does not install them. */
    readonly gatewayApiCrds: GatewayApiCrdsSource | undefined;
    /** Versions in declaration order; the first is listed first everywhere. */
    readonly versions: ReadonlyMap<string, VersionSpec>;
    /** The version that owns the live route. */
    readonly activeVersion: string;
    /** Share of live traffic per version, in percent; sums to 100, only versions with a share > 0. */
    readonly weights: ReadonlyMap<string, number>;
    /** Replicas an idle version keeps; undefined keeps each version's own `replicas`. */
    readonly idleReplicas: number | undefined;
    /** Request header that reaches a named version whatever the live route says; undefined turns it off. */
    readonly testRouteHeader: string | undefined;
    /** Run the smoke check before the live route sends traffic to a version. */
    readonly smokeCheck: boolean;
    /** The most time, in seconds, the smoke check spends on one `pulumi up` before it gives up. */
    readonly smokeCheckTimeout: number;
    /** Base URL of the ingress gateway as seen from where `pulumi up` runs; undefined until known. */
    readonly gatewayUrl: string | undefined;
    /** Config keys whose values are stored as secrets (only those in SECRET_CAPABLE_KEYS may be). */
    readonly secretKeys: ReadonlySet<string>;
    /** Host name the gateway serves and the certificate names. */
    readonly hostname: string;
    readonly appNamespace: string;
    readonly installIstio: boolean;
    /** Where installIstio takes the base, istiod and gateway charts from. */
    readonly istioCharts: ChartSource;
    readonly installCertManager: boolean;
    readonly issuer: IssuerSettings;
    /** Redirect plain HTTP to HTTPS at the gateway. */
    readonly httpsRedirect: boolean;
    /** Mount the app containers' root filesystem read-only. */
    readonly readOnlyRootFilesystem: boolean;
    /** Namespace of the ingress gateway (its pods, Service and the TLS secret). */
    readonly ingressNamespace: string;
    /** Label selector of the ingress gateway pods. */
    readonly gatewaySelector: Readonly<Record<string, string>>;
    /** SPIFFE principals, besides the ingress gateway, allowed to call the app. */
    readonly meshClients: readonly string[];
}

/** The raw config values, as strings, keyed without the project namespace. */
export type RawConfig = Readonly<Record<string, string | undefined>>;

export const DEFAULT_VERSIONS: Readonly<Record<string, { image: string; expect: string }>> = {
    v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
    v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
};

/** Defaults of every key; Pulumi.yaml declares the same (a test holds them together). */
export const DEFAULTS = {
    routingApi: "istio",
    gatewayApiCrds: "auto",
    activeVersion: "v1",
    versions: DEFAULT_VERSIONS,
    replicas: 2,
    trafficSplit: {},
    idleReplicas: "",
    testRouteHeader: "x-cowsay-version",
    smokeCheck: true,
    smokeCheckTimeout: 60,
    gatewayUrl: "",
    hostname: "cowsay.example.com",
    appNamespace: "cowsay",
    installIstio: true,
    istioCharts: "https://istio-release.storage.googleapis.com/charts",
    installCertManager: true,
    issuer: "selfsigned",
    acmeEmail: "",
    acmeServer: "https://acme-v02.api.letsencrypt.org/directory",
    httpsRedirect: true,
    readOnlyRootFilesystem: true,
    ingressNamespace: "istio-ingress",
    gatewaySelector: { istio: "ingressgateway" },
    meshClients: [],
} as const;

export const CONFIG_KEYS = Object.keys(DEFAULTS) as readonly (keyof typeof DEFAULTS)[];

/**
 * Keys that may hold credentials or personal data, and so may be set with `pulumi config set
 * --secret`: the program keeps them secret in its outputs and state. Every other key is written in
 * plain text into Kubernetes objects, so a secret there would be a promise the program cannot keep.
 */
export const SECRET_CAPABLE_KEYS: readonly string[] = ["gatewayUrl", "acmeEmail"];

/** Upper bound of every replica count: a typo such as 3000000000 must not reach the API server. */
export const MAX_REPLICAS = 1000;
/** Bounds of smokeCheckTimeout, in seconds. */
export const SMOKE_CHECK_TIMEOUT_RANGE = [5, 600] as const;
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

const VERSION_FIELDS = ["image", "replicas", "expect"];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Leaves room for the longest name derived from a version (`<app>-<version>` Deployments).
const MAX_VERSION_NAME = 40;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;

function show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJson(key: string, text: string, what: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        throw new ConfigError(key, `${show(text)} is not valid JSON; expected ${what}.`);
    }
}

function parseBoolean(key: string, text: string | undefined, fallback: boolean): boolean {
    if (text === undefined) return fallback;
    if (text === "true") return true;
    if (text === "false") return false;
    throw new ConfigError(key, `${show(text)} is not a boolean; allowed: true or false.`);
}

function parseCount(key: string, value: unknown, min: number, max: number): number {
    const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        throw new ConfigError(key, `${show(value)} is not allowed; expected an integer from ${min} to ${max}.`);
    }
    return n;
}

/**
 * Image references must be pinned: `name:tag` (not `latest`) or `name@sha256:<digest>`. A colon in
 * the registry part (`registry:5000/app`) is not a tag.
 */
export function imageProblem(image: string): string | undefined {
    if (image.trim() !== image || image === "" || /\s/.test(image)) {
        return "an image reference without spaces";
    }
    if (/@sha256:[a-f0-9]{64}$/.test(image)) return undefined;
    const lastSlash = image.lastIndexOf("/");
    const colon = image.indexOf(":", lastSlash + 1);
    if (colon < 0) return "a pinned tag or digest (for example dougbtv/nginx-cowsay:v1)";
    const tag = image.slice(colon + 1);
    if (tag === "latest") return "a pinned tag other than latest, or a digest";
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return "a valid tag ([A-Za-z0-9_.-], up to 128)";
    return undefined;
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

function parseVersions(text: string | undefined, defaultReplicas: number): Map<string, VersionSpec> {
    const key = "versions";
    const raw: unknown = text === undefined ? DEFAULT_VERSIONS : parseJson(key, text, "an object");
    const duplicate = text === undefined ? undefined : duplicateTopLevelKey(text);
    if (duplicate !== undefined) {
        throw new ConfigError(key, `version name ${show(duplicate)} is declared twice; each version name must be unique.`);
    }
    if (!isRecord(raw)) {
        throw new ConfigError(key, `${show(raw)} is not allowed; expected an object from version name to { image, replicas?, expect? }.`);
    }
    const names = Object.keys(raw);
    if (names.length === 0) {
        throw new ConfigError(key, "{} is not allowed; declare at least one version, for example { \"v1\": { \"image\": \"dougbtv/nginx-cowsay:v1\" } }.");
    }
    const versions = new Map<string, VersionSpec>();
    const seen = new Map<string, string>();
    for (const name of names) {
        if (!DNS_LABEL.test(name) || name.length > MAX_VERSION_NAME) {
            throw new ConfigError(
                key,
                `version name ${show(name)} is not allowed; names are lower-case letters, digits and '-', start and end alphanumeric, at most ${MAX_VERSION_NAME} characters.`,
            );
        }
        const entry = raw[name];
        if (!isRecord(entry)) {
            throw new ConfigError(`${key}.${name}`, `${show(entry)} is not allowed; expected { image, replicas?, expect? }.`);
        }
        const unknown = Object.keys(entry).filter((field) => !VERSION_FIELDS.includes(field));
        if (unknown.length > 0) {
            throw new ConfigError(`${key}.${name}`, `unknown field ${show(unknown[0])}; allowed fields: ${VERSION_FIELDS.join(", ")}.`);
        }
        const image = entry.image;
        if (typeof image !== "string") {
            throw new ConfigError(`${key}.${name}.image`, `${show(image)} is not allowed; expected an image reference such as dougbtv/nginx-cowsay:v1.`);
        }
        const problem = imageProblem(image);
        if (problem !== undefined) {
            throw new ConfigError(`${key}.${name}.image`, `${show(image)} is not allowed; expected ${problem}.`);
        }
        const twin = seen.get(image);
        if (twin !== undefined) {
            throw new ConfigError(`${key}.${name}.image`, `${show(image)} is already version ${show(twin)}; each version needs its own image.`);
        }
        seen.set(image, name);
        const replicas = entry.replicas === undefined ? defaultReplicas : parseCount(`${key}.${name}.replicas`, entry.replicas, 1, MAX_REPLICAS);
        const expect = entry.expect;
        if (expect !== undefined && (typeof expect !== "string" || expect.trim() === "")) {
            throw new ConfigError(`${key}.${name}.expect`, `${show(expect)} is not allowed; expected non-empty text that only this version's page contains.`);
        }
        versions.set(name, { image, replicas, expect });
    }
    return versions;
}

function suggestion(value: string, allowed: readonly string[]): string {
    const near = allowed.find((name) => name.toLowerCase() === value.trim().toLowerCase());
    return near === undefined ? "" : ` (did you mean ${show(near)}?)`;
}

function parseActiveVersion(text: string | undefined, versions: ReadonlyMap<string, VersionSpec>): string {
    const value = text ?? DEFAULTS.activeVersion;
    const allowed = [...versions.keys()];
    if (!versions.has(value)) {
        throw new ConfigError(
            "activeVersion",
            `${show(value)} is not a deployed version${suggestion(value, allowed)}; allowed: ${allowed.join(", ")}.`,
        );
    }
    return value;
}

function parseWeights(text: string | undefined, versions: ReadonlyMap<string, VersionSpec>, active: string): Map<string, number> {
    const key = "trafficSplit";
    const raw: unknown = text === undefined || text.trim() === "" ? {} : parseJson(key, text, "an object");
    if (!isRecord(raw)) {
        throw new ConfigError(key, `${show(raw)} is not allowed; expected an object from version name to percent, for example { "v1": 90, "v2": 10 }.`);
    }
    if (Object.keys(raw).length === 0) return new Map([[active, 100]]);
    const allowed = [...versions.keys()];
    const weights = new Map<string, number>();
    let total = 0;
    for (const [name, value] of Object.entries(raw)) {
        if (!versions.has(name)) {
            throw new ConfigError(key, `${show(name)} is not a deployed version${suggestion(name, allowed)}; allowed: ${allowed.join(", ")}.`);
        }
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 100) {
            throw new ConfigError(`${key}.${name}`, `${show(value)} is not allowed; expected an integer percent from 0 to 100.`);
        }
        total += value;
        if (value > 0) weights.set(name, value);
    }
    if (total !== 100) {
        throw new ConfigError(key, `${show(raw)} sums to ${total}; the weights must sum to 100.`);
    }
    if (!weights.has(active)) {
        throw new ConfigError(
            key,
            `${show(raw)} gives activeVersion ${show(active)} no traffic; the active version must keep a share > 0 (set activeVersion to the version you are moving to once it takes all traffic).`,
        );
    }
    return weights;
}

function parseIdleReplicas(text: string | undefined): number | undefined {
    if (text === undefined || text.trim() === "") return undefined;
    return parseCount("idleReplicas", text, 0, MAX_REPLICAS);
}

function parseHeader(text: string | undefined): string | undefined {
    const value = text ?? DEFAULTS.testRouteHeader;
    if (value === "") return undefined;
    if (!HEADER_NAME.test(value)) {
        throw new ConfigError(
            "testRouteHeader",
            `${show(value)} is not allowed; expected a lower-case HTTP header name (letters, digits, '-'), or "" to turn test routes off.`,
        );
    }
    return value;
}

function parseName(key: string, text: string | undefined, fallback: string, pattern: RegExp, what: string): string {
    const value = text ?? fallback;
    if (!pattern.test(value)) throw new ConfigError(key, `${show(value)} is not allowed; expected ${what}.`);
    return value;
}

const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

function parseUrl(key: string, text: string | undefined): string | undefined {
    if (text === undefined || text === "") return undefined;
    let url: URL;
    try {
        url = new URL(text);
    } catch {
        throw new ConfigError(key, `${show(text)} is not a URL; expected for example http://203.0.113.10 or http://localhost:8080.`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new ConfigError(key, `${show(text)} is not allowed; expected an http:// or https:// URL.`);
    }
    return text.replace(/\/+$/, "");
}

function parseIssuer(raw: RawConfig): IssuerSettings {
    const kind = raw.issuer ?? DEFAULTS.issuer;
    if (kind === "selfsigned") return { kind };
    if (kind !== "acme") {
        throw new ConfigError("issuer", `${show(kind)} is not allowed; allowed: selfsigned, acme.`);
    }
    const email = raw.acmeEmail ?? DEFAULTS.acmeEmail;
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
        throw new ConfigError("acmeEmail", `${show(email)} is not allowed; issuer acme needs the e-mail address of the account.`);
    }
    const server = parseUrl("acmeServer", raw.acmeServer ?? DEFAULTS.acmeServer);
    if (server === undefined || !server.startsWith("https://")) {
        throw new ConfigError("acmeServer", `${show(raw.acmeServer)} is not allowed; expected the https:// directory URL of the ACME server.`);
    }
    return { kind, email, server };
}

function parseStringMap(key: string, text: string | undefined, fallback: Readonly<Record<string, string>>): Record<string, string> {
    const raw: unknown = text === undefined ? fallback : parseJson(key, text, "an object of strings");
    if (!isRecord(raw) || Object.keys(raw).length === 0 || Object.values(raw).some((v) => typeof v !== "string")) {
        throw new ConfigError(key, `${show(raw)} is not allowed; expected a non-empty object of label names to string values.`);
    }
    return raw as Record<string, string>;
}

function parseMeshClients(text: string | undefined): string[] {
    const raw: unknown = text === undefined ? [] : parseJson("meshClients", text, "an array");
    if (!Array.isArray(raw) || raw.some((p) => typeof p !== "string" || !/^[^\s/]+(\/[^\s/]+)*$/.test(p))) {
        throw new ConfigError(
            "meshClients",
            `${show(raw)} is not allowed; expected an array of SPIFFE principals such as "cluster.local/ns/shop/sa/frontend".`,
        );
    }
    return raw as string[];
}

function parseRoutingApi(text: string | undefined): RoutingApi {
    const value = text ?? DEFAULTS.routingApi;
    const api = ROUTING_APIS.find((a) => a === value);
    if (api === undefined) {
        throw new ConfigError("routingApi", `${show(value)} is not allowed${suggestion(value, ROUTING_APIS)}; allowed: ${ROUTING_APIS.join(", ")}.`);
    }
    return api;
}

/**
 * The CRD install: only routingApi gateway-api needs the CRDs; `auto` installs the pinned release
 * along with Istio (a cluster that brings its own mesh is assumed to bring them too).
 */
function parseGatewayApiCrds(text: string | undefined, routingApi: RoutingApi, installIstio: boolean): GatewayApiCrdsSource | undefined {
    const value = text ?? DEFAULTS.gatewayApiCrds;
    let source: GatewayApiCrdsSource | undefined;
    if (value === "auto") source = installIstio ? { kind: "release" } : undefined;
    else if (value === "release") source = { kind: "release" };
    else if (value === "none") source = undefined;
    else if (/^https?:\/\/\S+$/.test(value)) source = { kind: "url", location: value };
    else if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && /\S\.ya?ml$/.test(value)) source = { kind: "file", location: value };
    else {
        throw new ConfigError(
            "gatewayApiCrds",
            `${show(value)} is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.`,
        );
    }
    return routingApi === "gateway-api" ? source : undefined;
}

function parseChartSource(key: string, text: string | undefined, fallback: string): ChartSource {
    const value = text ?? fallback;
    if (/^(https?|oci):\/\/[^\s/]+\S*$/.test(value)) return { kind: "repository", url: value.replace(/\/+$/, "") };
    if (value !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !/\s/.test(value)) return { kind: "directory", path: value.replace(/\/+$/, "") };
    throw new ConfigError(
        key,
        `${show(value)} is not allowed; expected a chart repository URL (https://, http:// or oci://) or the path of a directory holding the base, istiod and gateway charts.`,
    );
}

function parseSecretKeys(secretKeys: ReadonlySet<string>): ReadonlySet<string> {
    for (const key of secretKeys) {
        if (!SECRET_CAPABLE_KEYS.includes(key)) {
            throw new ConfigError(
                key,
                `is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only ${SECRET_CAPABLE_KEYS.join(" and ")} can be kept secret. Set it again without --secret.`,
            );
        }
    }
    return secretKeys;
}

/**
 * Parses and validates the whole stack config. Throws a ConfigError on the first bad value.
 * `raw` holds config values as Pulumi stores them: strings, with objects and arrays as JSON.
 * `secretKeys` names the keys the stack stores as secrets.
 */
export function parseSettings(raw: RawConfig, secretKeys: ReadonlySet<string> = new Set()): Settings {
    const unknownKey = Object.keys(raw).find((key) => !(CONFIG_KEYS as readonly string[]).includes(key));
    if (unknownKey !== undefined) {
        throw new ConfigError(unknownKey, `unknown key; allowed keys: ${CONFIG_KEYS.join(", ")}.`);
    }
    const secrets = parseSecretKeys(secretKeys);
    const replicas = raw.replicas === undefined ? DEFAULTS.replicas : parseCount("replicas", raw.replicas, 1, MAX_REPLICAS);
    const versions = parseVersions(raw.versions, replicas);
    const activeVersion = parseActiveVersion(raw.activeVersion, versions);
    const weights = parseWeights(raw.trafficSplit, versions, activeVersion);
    const testRouteHeader = parseHeader(raw.testRouteHeader);
    const smokeCheck = parseBoolean("smokeCheck", raw.smokeCheck, DEFAULTS.smokeCheck);
    const installIstio = parseBoolean("installIstio", raw.installIstio, DEFAULTS.installIstio);
    const gatewayUrl = parseUrl("gatewayUrl", raw.gatewayUrl);
    if (smokeCheck) {
        if (testRouteHeader === undefined) {
            throw new ConfigError("smokeCheck", 'true needs the test routes (testRouteHeader is ""); set a header name or set smokeCheck to false.');
        }
        for (const [name, spec] of versions) {
            if (spec.expect === undefined) {
                throw new ConfigError(`versions.${name}.expect`, "is missing; the smoke check needs text that only this version's page contains, or set smokeCheck to false.");
            }
        }
    }
    const dnsName = "a DNS label (lower-case letters, digits, '-')";
    const routingApi = parseRoutingApi(raw.routingApi);
    return {
        routingApi,
        gatewayApiCrds: parseGatewayApiCrds(raw.gatewayApiCrds, routingApi, installIstio),
        versions,
        activeVersion,
        weights,
        idleReplicas: parseIdleReplicas(raw.idleReplicas),
        testRouteHeader,
        smokeCheck,
        smokeCheckTimeout:
            raw.smokeCheckTimeout === undefined
                ? DEFAULTS.smokeCheckTimeout
                : parseCount("smokeCheckTimeout", raw.smokeCheckTimeout, ...SMOKE_CHECK_TIMEOUT_RANGE),
        gatewayUrl,
        secretKeys: secrets,
        hostname: parseName("hostname", raw.hostname, DEFAULTS.hostname, HOSTNAME, "a lower-case DNS host name such as cowsay.example.com"),
        appNamespace: parseName("appNamespace", raw.appNamespace, DEFAULTS.appNamespace, DNS_LABEL, dnsName),
        installIstio,
        istioCharts: parseChartSource("istioCharts", raw.istioCharts, DEFAULTS.istioCharts),
        installCertManager: parseBoolean("installCertManager", raw.installCertManager, DEFAULTS.installCertManager),
        issuer: parseIssuer(raw),
        httpsRedirect: parseBoolean("httpsRedirect", raw.httpsRedirect, DEFAULTS.httpsRedirect),
        readOnlyRootFilesystem: parseBoolean("readOnlyRootFilesystem", raw.readOnlyRootFilesystem, DEFAULTS.readOnlyRootFilesystem),
        ingressNamespace: parseName("ingressNamespace", raw.ingressNamespace, DEFAULTS.ingressNamespace, DNS_LABEL, dnsName),
        gatewaySelector: parseStringMap("gatewaySelector", raw.gatewaySelector, DEFAULTS.gatewaySelector),
        meshClients: parseMeshClients(raw.meshClients),
    };
}

/** Replicas a version runs: its own while it takes traffic, `idleReplicas` (if set) while idle. */
export function replicasOf(settings: Settings, name: string): number {
    const spec = settings.versions.get(name);
    if (spec === undefined) throw new Error(`unknown version ${name}`);
    const serving = settings.weights.has(name);
    return serving || settings.idleReplicas === undefined ? spec.replicas : settings.idleReplicas;
}

/** What the stack ran after its last successful update (from its own stack outputs). */
export interface LastRun {
    /** Versions that took live traffic (the trafficSplit output, which follows the live route). */
    readonly live: readonly string[];
    /** Every version it declared, name -> image and expect (the versions output). */
    readonly versions: Readonly<Record<string, { readonly image: string; readonly expect?: string }>>;
}

/**
 * Refuses a config that drops a version which takes live traffic now: the same `pulumi up` would
 * delete the pods that serve every request, and the rollback target with them. A version is removed
 * once it is idle. `last` is undefined on a stack never deployed.
 */
export function refuseRemovingLive(settings: Settings, last: LastRun | undefined): void {
    const dropped = (last?.live ?? []).filter((name) => !settings.versions.has(name));
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
        `${dropped.join(", ")} ${one ? "takes" : "take"} live traffic now, but versions declares only ${[...settings.versions.keys()].join(", ")}; ` +
            `this update would delete ${one ? "it" : "them"}. Declare ${one ? "it" : "them"} again (${restore.join(" && ")}), ` +
            `move the traffic away first, and remove a version once it is idle.`,
    );
}
