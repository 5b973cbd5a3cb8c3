// What istiod pushes to a proxy, read through `cowsay-xds` (tools/xds, built by scripts/cluster.sh;
// its JSON is the contract in tools/xds), and the route Envoy would take with it: the virtual host by
// the request's Host and the gateway Service's port, the first route (in the order pushed) whose path
// and header matches hold, then its redirect, its direct answer or one of its weighted clusters. The
// stand-in gateway routes with chooseRoute, so that where a request goes is decided by istiod's
// tables, not by the project's own reading of its objects. There is no Envoy here (no Docker, no
// binary release reachable); this is the part of Envoy's route matching the program's routes use
// (prefix/path/regex paths, exact/prefix/regex/present headers, weights, redirects), written out.
import { spawn } from "node:child_process";
import { isDeepStrictEqual } from "node:util";

import { runCommand } from "./processes";

/** A route's request match, as the contract prints it (absent fields are unset). */
export interface XdsMatch {
    readonly prefix?: string;
    readonly path?: string;
    readonly regex?: string;
    /** The path itself or below it at a "/" (what Istio makes of a Gateway API PathPrefix). */
    readonly pathSeparatedPrefix?: string;
    /** Paths compare without case. */
    readonly caseInsensitive?: boolean;
    readonly headers?: readonly XdsHeaderMatch[];
}

export interface XdsHeaderMatch {
    readonly name: string;
    readonly exact?: string;
    readonly prefix?: string;
    readonly regex?: string;
    readonly present?: boolean;
    readonly invert?: boolean;
}

export interface XdsRoute {
    readonly name?: string;
    readonly match: XdsMatch;
    readonly clusters?: readonly { readonly name: string; readonly weight?: number }[];
    readonly redirect?: { readonly scheme?: string; readonly host?: string; readonly port?: number; readonly path?: string; readonly code?: number };
    readonly directResponse?: { readonly status: number; readonly body?: string };
}

export interface XdsVirtualHost {
    readonly name: string;
    readonly domains: readonly string[];
    readonly routes: readonly XdsRoute[];
    /**
     * Envoy's require_tls ("ALL", "EXTERNAL_ONLY"; absent or "NONE" when unset): Istio's Gateway
     * `tls.httpsRedirect` is programmed this way, not as a route redirect. Every request on plain HTTP
     * gets a 301 to https, before any route is looked at.
     */
    readonly requireTls?: string;
}

export interface XdsDump {
    readonly node?: string;
    readonly listeners: readonly {
        readonly name: string;
        readonly address?: string;
        readonly port: number;
        readonly servicePort?: number;
        readonly routeConfigs?: readonly string[];
        readonly tls?: boolean;
    }[];
    readonly routeConfigs: readonly { readonly name: string; readonly virtualHosts: readonly XdsVirtualHost[] }[];
}

/** A request as the gateway's Service receives it: Host (without port), the Service port, path, headers. */
export interface XdsRequest {
    readonly host: string;
    /** The port of the gateway's Service (80, 443), or of the called Service for a sidecar. */
    readonly port: number;
    /** Path with the query string, as in the request line. */
    readonly path?: string;
    readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

/** What the proxy does with a request. */
export type RouteChoice =
    | { readonly kind: "cluster"; readonly cluster: string; readonly route?: string }
    | { readonly kind: "redirect"; readonly status: number; readonly location: string }
    | { readonly kind: "direct"; readonly status: number; readonly body: string }
    | { readonly kind: "none"; readonly status: 404; readonly reason: string };

/**
 * The Service port a listener serves: what istiod says, else Istio's gateway convention (the chart's
 * Service maps 80 -> 8080 and 443 -> 8443 for an unprivileged Envoy), else the listener's own port.
 */
function servicePortOf(listener: XdsDump["listeners"][number]): number {
    if (listener.servicePort !== undefined) return listener.servicePort;
    const unprivileged: Record<number, number> = { 8080: 80, 8443: 443 };
    return unprivileged[listener.port] ?? listener.port;
}

/** Envoy's virtual host selection: exact domain, then the longest suffix wildcard, then prefix wildcard, then "*". */
function virtualHostFor(hosts: readonly XdsVirtualHost[], host: string, port: number): XdsVirtualHost | undefined {
    const withPort = `${host}:${port}`;
    const exact = hosts.find((vh) => vh.domains.some((d) => d === host || d === withPort));
    if (exact !== undefined) return exact;
    let best: { vh: XdsVirtualHost; length: number } | undefined;
    for (const vh of hosts) {
        for (const d of vh.domains) {
            // "name:*" (Istio adds it next to each name) matches the name with any port.
            if (d.endsWith(":*") && d.slice(0, -2) === host) return vh;
            if (d.startsWith("*") && d !== "*" && host.endsWith(d.slice(1)) && (best === undefined || d.length > best.length)) best = { vh, length: d.length };
        }
    }
    if (best !== undefined) return best.vh;
    return (
        hosts.find((vh) => vh.domains.some((d) => d.endsWith("*") && d !== "*" && host.startsWith(d.slice(0, -1)))) ??
        hosts.find((vh) => vh.domains.includes("*"))
    );
}

/** Envoy's regexes are RE2 and must match the whole value. */
const fullMatch = (regex: string, value: string): boolean => new RegExp(`^(?:${regex})$`).test(value);

function headerHolds(match: XdsHeaderMatch, headers: XdsRequest["headers"]): boolean {
    const raw = headers?.[match.name.toLowerCase()];
    const value = Array.isArray(raw) ? raw.join(",") : raw;
    let holds: boolean;
    if (match.exact !== undefined) holds = value === match.exact;
    else if (match.prefix !== undefined) holds = value !== undefined && value.startsWith(match.prefix);
    else if (match.regex !== undefined) holds = value !== undefined && fullMatch(match.regex, value);
    else if (match.present !== undefined) holds = (value !== undefined) === match.present;
    else holds = value !== undefined;
    return match.invert === true ? !holds : holds;
}

function routeHolds(match: XdsMatch, path: string, headers: XdsRequest["headers"]): boolean {
    // Envoy matches paths without the query string.
    const fold = (text: string) => (match.caseInsensitive === true ? text.toLowerCase() : text);
    const bare = fold(path.split("?")[0]);
    const separated = match.pathSeparatedPrefix === undefined ? undefined : fold(match.pathSeparatedPrefix);
    const pathHolds =
        match.path !== undefined
            ? bare === fold(match.path)
            : match.regex !== undefined
              ? fullMatch(match.regex, bare)
              : match.prefix !== undefined
                ? bare.startsWith(fold(match.prefix))
                : separated !== undefined
                  ? bare === separated || bare.startsWith(`${separated}/`)
                  : true;
    return pathHolds && (match.headers ?? []).every((h) => headerHolds(h, headers));
}

/** One of `choices` in proportion to its weight (`point` in [0, 1)): the same rule Envoy's weighted clusters follow. */
export function pickWeighted<T>(choices: readonly { value: T; weight: number }[], point: number = Math.random()): T {
    const total = choices.reduce((sum, c) => sum + c.weight, 0);
    let left = point * total;
    for (const choice of choices) {
        left -= choice.weight;
        if (left < 0) return choice.value;
    }
    return choices[choices.length - 1].value;
}

/** The route configs a proxy uses for a Service port: those its listeners on that port name. */
function routeConfigsFor(dump: XdsDump, port: number): XdsDump["routeConfigs"] {
    const names = new Set(dump.listeners.filter((l) => servicePortOf(l) === port).flatMap((l) => l.routeConfigs ?? []));
    // A sidecar's outbound routes are named after the port ("9080"), behind its catch-all listener.
    names.add(String(port));
    return dump.routeConfigs.filter((rc) => names.has(rc.name));
}

/** Where the proxy that received `dump` sends `request`; `point` in [0, 1) picks among weighted clusters. */
export function chooseRoute(dump: XdsDump, request: XdsRequest, point: number = Math.random()): RouteChoice {
    const path = request.path ?? "/";
    const hosts = routeConfigsFor(dump, request.port).flatMap((rc) => rc.virtualHosts);
    const vh = virtualHostFor(hosts, request.host, request.port);
    if (vh === undefined) return { kind: "none", status: 404, reason: `no virtual host for ${request.host} on port ${request.port}` };
    // The request reached a plain-HTTP listener (the stand-in's port 80 side); the loopback client
    // counts as external, so EXTERNAL_ONLY redirects too.
    if (vh.requireTls !== undefined && vh.requireTls !== "NONE" && request.port !== 443)
        return { kind: "redirect", status: 301, location: `https://${request.host}${path}` };
    const route = vh.routes.find((r) => routeHolds(r.match, path, request.headers));
    if (route === undefined) return { kind: "none", status: 404, reason: `no route of ${vh.name} matches ${path}` };
    if (route.redirect !== undefined) {
        const r = route.redirect;
        const scheme = r.scheme ?? "http";
        const port = r.port === undefined || (scheme === "https" && r.port === 443) || (scheme === "http" && r.port === 80) ? "" : `:${r.port}`;
        return { kind: "redirect", status: r.code ?? 301, location: `${scheme}://${r.host ?? request.host}${port}${r.path ?? path}` };
    }
    if (route.directResponse !== undefined) return { kind: "direct", status: route.directResponse.status, body: route.directResponse.body ?? "" };
    const clusters = (route.clusters ?? []).filter((c) => (c.weight ?? 1) > 0);
    if (clusters.length === 0) return { kind: "direct", status: 503, body: `the route ${route.name ?? ""} of ${vh.name} has no cluster` };
    const cluster = pickWeighted(
        clusters.map((c) => ({ value: c.name, weight: c.weight ?? 1 })),
        point,
    );
    return { kind: "cluster", cluster, route: route.name };
}

/** An Istio outbound cluster name, `outbound|<port>|<subset>|<service>.<namespace>.svc.<domain>`, read back. */
export interface OutboundCluster {
    readonly port: number;
    /** The DestinationRule subset ("" with none: the Gateway API names a version's own Service). */
    readonly subset: string;
    readonly service: string;
    readonly namespace: string;
}

export function parseCluster(name: string): OutboundCluster | undefined {
    const m = /^outbound\|(\d+)\|([^|]*)\|([^.|]+)\.([^.|]+)\.svc\.[^|]+$/.exec(name);
    return m === null ? undefined : { port: Number(m[1]), subset: m[2], service: m[3], namespace: m[4] };
}

/**
 * The pushed route table for one host and Service port, one line per route in Envoy's order, for
 * assertions a person can read: `x-cowsay-version=v2 -> outbound|9080|v2|...`, `/ -> ...v1...:90 ...v2...:10`,
 * `/ -> redirect 301 https://...`. Clusters are shortened to their subset, or to their Service when
 * they have none (the Gateway API's version Services).
 */
export function routeTable(dump: XdsDump, host: string, port: number): string[] {
    const vh = virtualHostFor(
        routeConfigsFor(dump, port).flatMap((rc) => rc.virtualHosts),
        host,
        port,
    );
    if (vh === undefined) return [];
    if (vh.requireTls !== undefined && vh.requireTls !== "NONE" && port !== 443) return [`require TLS -> redirect 301 https://${host}/`];
    const short = (cluster: string) => {
        const parsed = parseCluster(cluster);
        return parsed === undefined ? cluster : parsed.subset !== "" ? parsed.subset : parsed.service;
    };
    return vh.routes.map((r) => {
        const path =
            r.match.path ??
            (r.match.regex !== undefined
                ? `~${r.match.regex}`
                : (r.match.prefix ?? (r.match.pathSeparatedPrefix === undefined ? "/" : `${r.match.pathSeparatedPrefix}/*`)));
        const headers = (r.match.headers ?? []).map(
            (h) => `${h.name}${h.exact !== undefined ? `=${h.exact}` : h.prefix !== undefined ? `^=${h.prefix}` : h.regex !== undefined ? `~${h.regex}` : "?"}`,
        );
        const what = [path, ...headers].join(" ");
        if (r.redirect !== undefined) {
            const choice = chooseRoute(
                { listeners: [], routeConfigs: [{ name: String(port), virtualHosts: [{ ...vh, routes: [r] }] }] },
                { host, port, path: "/" },
            );
            return `${what} -> redirect ${choice.kind === "redirect" ? `${choice.status} ${choice.location}` : "?"}`;
        }
        if (r.directResponse !== undefined) return `${what} -> ${r.directResponse.status}`;
        const clusters = r.clusters ?? [];
        return `${what} -> ${clusters.length === 1 ? short(clusters[0].name) : clusters.map((c) => `${short(c.name)}:${c.weight ?? 1}`).join(" ")}`;
    });
}

/** The shape of a push, for a failure message: listeners, their Service ports and route configs, the virtual hosts. */
export function describeDump(dump: XdsDump | undefined): string {
    if (dump === undefined) return "nothing pushed";
    const listeners = dump.listeners.map((l) => `${l.name} (Service port ${servicePortOf(l)}) -> ${(l.routeConfigs ?? []).join(", ")}`);
    const configs = dump.routeConfigs.map((rc) => `${rc.name}: ${rc.virtualHosts.map((vh) => vh.name).join(", ")}`);
    return `listeners: ${listeners.join("; ") || "none"}\nroute configs: ${configs.join("; ") || "none"}`;
}

/** A condition on a pushed route table, with the words a failure prints for it. */
export type TablePredicate = ((table: readonly string[]) => boolean) & { readonly description: string };

/** A table whose last route (the catch-all) is `line`. */
export function lastRouteIs(line: string): TablePredicate {
    return Object.assign((table: readonly string[]) => table.at(-1) === line, { description: `a table ending with ${JSON.stringify(line)}` });
}

/** Whom istiod should take a client for: the ingress gateway (a `router` node) or a sidecar. */
export interface ProxyIdentity {
    readonly role: "gateway" | "sidecar";
    readonly namespace: string;
    readonly labels: Readonly<Record<string, string>>;
}

/**
 * A proxy's view of istiod through `cowsay-xds`: needs COWSAY_XDS_ADDRESS and the cluster's bin on
 * PATH in `env` (LocalCluster's env when it runs istiod).
 */
export class XdsProxy {
    constructor(
        private readonly env: NodeJS.ProcessEnv,
        readonly identity: ProxyIdentity,
    ) {}

    private args(verb: "dump" | "wait" | "watch"): string[] {
        const address = this.env.COWSAY_XDS_ADDRESS;
        if (address === undefined || address === "")
            throw new Error("COWSAY_XDS_ADDRESS is not set: the cluster runs no istiod (LocalCluster.up({ istiod: true }))");
        const labels = Object.entries(this.identity.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(",");
        return [verb, "--address", address, "--role", this.identity.role, "--namespace", this.identity.namespace, "--labels", labels];
    }

    /** What istiod pushes to this proxy now. */
    async dump(): Promise<XdsDump> {
        const result = await runCommand("cowsay-xds", this.args("dump"), { env: this.env });
        if (result.code !== 0)
            throw new Error(
                `cowsay-xds dump (${this.identity.role} in ${this.identity.namespace}) exited ${result.code}: ${result.stderr}${result.stdout.slice(0, 500)}`,
            );
        return JSON.parse(result.stdout) as XdsDump;
    }

    /** Where this proxy sends `request` now (one weighted pick). */
    async route(request: XdsRequest): Promise<RouteChoice> {
        return chooseRoute(await this.dump(), request);
    }

    /**
     * Waits until this proxy's route for `request` goes to a cluster whose name contains
     * `clusterContains`, at most `timeoutSeconds`; fails with istiod's last push otherwise. Resolves
     * with the time it took (ms).
     */
    async waitFor(request: XdsRequest, clusterContains: string, timeoutSeconds = 10): Promise<number> {
        const headers = Object.entries(request.headers ?? {}).flatMap(([k, v]) => (v === undefined ? [] : ["--header", `${k}=${String(v)}`]));
        const args = [
            ...this.args("wait"),
            "--host",
            request.host,
            "--port",
            String(request.port),
            ...(request.path === undefined ? [] : ["--path", request.path]),
            ...headers,
            "--cluster-contains",
            clusterContains,
            "--timeout",
            `${timeoutSeconds}s`,
        ];
        const start = performance.now();
        const result = await runCommand("cowsay-xds", args, { env: this.env });
        if (result.code !== 0) {
            throw new Error(
                `istiod did not route ${request.host}:${request.port}${request.path ?? "/"} ${headers.join(" ")} to a cluster with "${clusterContains}" within ${timeoutSeconds} s (${this.identity.role} in ${this.identity.namespace}):\n${result.stderr}`,
            );
        }
        return performance.now() - start;
    }

    /**
     * Waits until the route table this proxy has for `host` and `port` (routeTable's lines) is
     * `expected` (or satisfies it, given a predicate named by its `description`), reading each push of
     * `cowsay-xds watch`, at most `timeoutSeconds`; fails with the expected and the last table pushed
     * otherwise. Resolves with the time it took (ms).
     */
    waitForTable(host: string, port: number, expected: readonly string[] | TablePredicate, timeoutSeconds = 10): Promise<number> {
        const holds = typeof expected === "function" ? expected : (table: readonly string[]) => isDeepStrictEqual(table, expected);
        const wanted = typeof expected === "function" ? expected.description : JSON.stringify(expected, null, 1);
        const start = performance.now();
        // The watch's own bound outlasts ours a little: killed by us as a rule, it cannot outlive a lost test.
        const child = spawn("cowsay-xds", [...this.args("watch"), "--timeout", `${timeoutSeconds + 5}s`], { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
        let last: string[] | undefined;
        let lastDump: XdsDump | undefined;
        let stderr = "";
        let buffered = "";
        return new Promise<number>((resolve, reject) => {
            const finish = (outcome: () => void) => {
                clearTimeout(timer);
                child.removeAllListeners("close");
                child.kill("SIGTERM");
                outcome();
            };
            const failure = (why: string) =>
                new Error(
                    `${why} (${this.identity.role} in ${this.identity.namespace}, ${host}:${port}):\nexpected ${wanted}\nlast pushed ${JSON.stringify(last, null, 1)}\n${describeDump(lastDump)}${stderr === "" ? "" : `\n${stderr}`}`,
                );
            const timer = setTimeout(
                () => finish(() => reject(failure(`istiod did not push the expected route within ${timeoutSeconds} s`))),
                timeoutSeconds * 1000,
            );
            child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
            child.stdout.on("data", (chunk: Buffer) => {
                buffered += chunk.toString();
                let newline: number;
                while ((newline = buffered.indexOf("\n")) >= 0) {
                    const line = buffered.slice(0, newline).trim();
                    buffered = buffered.slice(newline + 1);
                    if (line === "") continue;
                    lastDump = JSON.parse(line) as XdsDump;
                    last = routeTable(lastDump, host, port);
                    if (holds(last)) return finish(() => resolve(performance.now() - start));
                }
            });
            child.on("error", (err) => finish(() => reject(err)));
            child.on("close", (code) => finish(() => reject(failure(`cowsay-xds watch exited ${code ?? "on a signal"}`))));
        });
    }
}
