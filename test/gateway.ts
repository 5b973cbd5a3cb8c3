// A local stand-in for the Istio ingress gateway, for the end-to-end tests and the README's own
// commands: an HTTPS server that routes each request the way Istio would route it with the objects
// the program wrote (read back at every request from rendered YAML or the API server): Istio's
// VirtualServices, or the Gateway API's HTTPRoutes when some are bound to a Gateway. It answers
// with the page of the image the chosen version runs: the cow for dougbtv/nginx-cowsay:v1, the hotdog
// for :v2. A version with no pods answers 503, as Envoy does. Tests can break a version's page, make
// the gateway hang (accept and never answer), take it down and bring it back at the same address, and
// reset it to serving before a test that needs it so.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Duplex } from "node:stream";

import { HEADER, VERSIONS } from "./constants";

/** A Kubernetes object as the routing needs it. */
export interface KubeObject {
    readonly kind: string;
    readonly metadata: {
        readonly name: string;
        readonly namespace?: string;
        readonly labels?: Record<string, string>;
        readonly creationTimestamp?: string;
    };
    readonly spec?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Where the stand-in reads the objects the program created. */
export type ObjectSource = () => Promise<readonly KubeObject[]>;

/** What the blog post's two images serve (the start of their pages). */
export const PAGES: Readonly<Record<string, string>> = {
    [VERSIONS.v1.image]: "<pre>\n ______________\n< Hello OPNFV >\n --------------\n        \\   ^__^\n         \\  (oo)\\_______\n</pre>\n",
    [VERSIONS.v2.image]: "<pre>\n ______________\n< Hello OPNFV >\n --------------\n   \\   _______\n    \\ |O___O  |\n</pre>\n",
};

/** The page an image serves: the two cowsay pages, or one that names the image. */
export function pageOf(image: string): string {
    return PAGES[image] ?? `<pre>hello from ${image}</pre>\n`;
}

export type GatewayMode = "serving" | "silent";

export class StandInGateway {
    /**
     * Requests seen, newest last: the test-route header, the version each was routed to (or the status
     * it got), and the client's User-Agent (curl sends one; the gate sends none).
     */
    readonly requests: { header?: string; routedTo?: string; status: number; userAgent?: string }[] = [];
    /** Pages to serve instead of an image's own (image -> page): a broken release. */
    readonly overrides = new Map<string, string>();
    mode: GatewayMode = "serving";
    private readonly sockets = new Set<Duplex>();
    /** The port it took at start, kept across down() and up(). */
    private port = 0;

    private constructor(
        private readonly server: Server,
        private readonly certDir: string,
        private readonly source: ObjectSource,
        private readonly header: () => string,
    ) {}

    /** Starts on a free loopback port. `header` is the test-route header in force. */
    static async start(source: ObjectSource, header: () => string = () => HEADER): Promise<StandInGateway> {
        const certDir = mkdtempSync(path.join(tmpdir(), "cowsay-gw-"));
        // A throwaway self-signed certificate, as the default issuer would give the real gateway.
        execFileSync("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=cowsay.example.com", "-keyout", path.join(certDir, "key.pem"), "-out", path.join(certDir, "cert.pem"),
        ], { stdio: "ignore" });
        const server = createServer({ key: readFileSync(path.join(certDir, "key.pem")), cert: readFileSync(path.join(certDir, "cert.pem")) });
        const gateway = new StandInGateway(server, certDir, source, header);
        server.on("request", (req: IncomingMessage, res: ServerResponse) => {
            if (gateway.mode === "silent") return; // never answers
            const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
            void gateway.route(host, req.headers, req.method ?? "GET", req.url ?? "/").then(({ status, body, routedTo }) => {
                gateway.requests.push({ header: req.headers[gateway.header()] as string | undefined, routedTo, status, userAgent: req.headers["user-agent"] });
                res.writeHead(status, { "content-type": "text/html" }).end(body);
            });
        });
        server.on("connection", (socket: Duplex) => {
            gateway.sockets.add(socket);
            socket.on("close", () => gateway.sockets.delete(socket));
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        gateway.port = (server.address() as AddressInfo).port;
        return gateway;
    }

    /** host:port, as the README's GATEWAY_ADDRESS (the same after down() and up()). */
    get address(): string {
        return `127.0.0.1:${this.port}`;
    }

    /** Stops accepting and drops every connection: nothing answers at the address until up(). */
    async down(): Promise<void> {
        if (!this.server.listening) return;
        const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        for (const socket of this.sockets) socket.destroy();
        await closed;
    }

    /** Listens again at the same address after down(). */
    async up(): Promise<void> {
        if (this.server.listening) return;
        await new Promise<void>((resolve, reject) => {
            this.server.once("error", reject);
            this.server.listen(this.port, "127.0.0.1", () => {
                this.server.off("error", reject);
                resolve();
            });
        });
    }

    /** Makes `image` answer with a page that is not its own (the cow, by default): a broken release. */
    serveWrongPage(image: string, page = pageOf(VERSIONS.v1.image)): void {
        this.overrides.set(image, page);
    }

    /** Back to a gateway that is up and answers every version with its own page. */
    async reset(): Promise<void> {
        this.mode = "serving";
        this.overrides.clear();
        await this.up();
    }

    /** Requests routed to `version` since index `from`. */
    routedTo(version: string, from = 0): number {
        return this.requests.slice(from).filter((r) => r.routedTo === version).length;
    }

    private async route(
        host: string,
        headers: Record<string, string | string[] | undefined>,
        method: string,
        url: string,
    ): Promise<{ status: number; body: string; routedTo?: string }> {
        const objects = await this.source();
        const viaHttpRoutes = routeWithHttpRoutes(objects, { host, headers, method, url });
        if (viaHttpRoutes !== undefined) {
            if ("status" in viaHttpRoutes) return { status: viaHttpRoutes.status, body: `${viaHttpRoutes.reason}\n` };
            return this.serve(viaHttpRoutes.deployment, viaHttpRoutes.version);
        }
        const services = objects.filter((o) => o.kind === "VirtualService");
        const bound = services.filter((vs) => ((vs.spec?.hosts ?? []) as string[]).includes(host) && ((vs.spec?.gateways ?? []) as string[]).some((g) => g !== "mesh"));
        if (bound.length === 0) return { status: 404, body: `no route for host ${host}\n` };
        // Istio merges the routes of one host; catch-alls (no match) go last.
        const rules = bound.flatMap((vs) => (vs.spec?.http ?? []) as { match?: { headers?: Record<string, { exact?: string }> }[]; route: { destination: { subset: string }; weight?: number }[] }[]);
        const matches = (rule: (typeof rules)[number]) =>
            rule.match === undefined ||
            rule.match.some((m) => Object.entries(m.headers ?? {}).every(([name, value]) => headers[name] === value.exact));
        const rule = [...rules.filter((r) => r.match !== undefined), ...rules.filter((r) => r.match === undefined)].find(matches);
        if (rule === undefined) return { status: 404, body: "no matching route\n" };
        const subset = pickWeighted(rule.route.map((r) => ({ value: r.destination.subset, weight: r.weight ?? 100 })));
        const deployment = objects.find((o) => o.kind === "Deployment" && o.spec?.template?.metadata?.labels?.version === subset);
        return this.serve(deployment, subset);
    }

    /** What the chosen version's pods answer (503 when it runs none, as Envoy says). */
    private serve(deployment: KubeObject | undefined, version: string | undefined): { status: number; body: string; routedTo?: string } {
        if (deployment === undefined || Number(deployment.spec?.replicas ?? 1) === 0) {
            return { status: 503, body: "no healthy upstream", routedTo: version };
        }
        const image = String(deployment.spec?.template?.spec?.containers?.[0]?.image);
        return { status: 200, body: this.overrides.get(image) ?? pageOf(image), routedTo: version };
    }

    /** Stops for good (down, and its certificate removed). */
    async stop(): Promise<void> {
        await this.down();
        rmSync(this.certDir, { recursive: true, force: true });
    }
}

function pickWeighted(choices: { value: string; weight: number }[]): string {
    const total = choices.reduce((sum, c) => sum + c.weight, 0);
    let point = Math.random() * total;
    for (const choice of choices) {
        point -= choice.weight;
        if (point < 0) return choice.value;
    }
    return choices[choices.length - 1].value;
}

/** A request as the Gateway API's route matching sees it. */
export interface HttpRequest {
    readonly host: string;
    readonly headers: Record<string, string | string[] | undefined>;
    readonly method: string;
    readonly url: string;
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Routes a request the way a Gateway API implementation does with the HTTPRoutes bound to an HTTPS
 * listener of a Gateway (this stand-in serves HTTPS): the routes for the host merge, and of every
 * matching rule the most precise wins (exact path, longest prefix, method, most headers, most query
 * parameters; then the oldest route, then namespace/name, then rule order). Undefined when no HTTPRoute
 * is bound to a Gateway: the caller routes with VirtualServices then. The answer is the Deployment
 * behind the chosen backend Service (a Service over several versions picks one at random, as a
 * Service's endpoints would), or the status the gateway answers: 404 when nothing matches, 500 when
 * the backend Service does not exist.
 */
export function routeWithHttpRoutes(
    objects: readonly KubeObject[],
    request: HttpRequest,
): { deployment?: KubeObject; version?: string } | { status: number; reason: string } | undefined {
    const namespaceOf = (o: KubeObject) => o.metadata.namespace ?? "default";
    const gateways = objects.filter((o) => o.kind === "Gateway" && o.spec?.gatewayClassName !== undefined);
    const httpsListener = (route: KubeObject, ref: Json): boolean => {
        if ((ref.kind ?? "Gateway") !== "Gateway") return false;
        const gateway = gateways.find((g) => g.metadata.name === ref.name && namespaceOf(g) === (ref.namespace ?? namespaceOf(route)));
        const listeners = ((gateway?.spec?.listeners ?? []) as Json[]).filter((l) => ref.sectionName === undefined || l.name === ref.sectionName);
        return listeners.some((l) => l.protocol === "HTTPS" && (l.hostname === undefined || l.hostname === request.host));
    };
    const routes = objects.filter((o) => o.kind === "HTTPRoute" && ((o.spec?.parentRefs ?? []) as Json[]).some((ref) => (ref.kind ?? "Gateway") === "Gateway"));
    if (routes.length === 0) return undefined;
    const bound = routes.filter((route) => ((route.spec?.parentRefs ?? []) as Json[]).some((ref) => httpsListener(route, ref)));
    const forHost = bound.filter((route) => {
        const hostnames = (route.spec?.hostnames ?? []) as string[];
        return hostnames.length === 0 || hostnames.includes(request.host);
    });

    const [path, query = ""] = request.url.split("?");
    const params = new URLSearchParams(query);
    const header = (name: string) => {
        const value = request.headers[name.toLowerCase()];
        return Array.isArray(value) ? value[0] : value;
    };
    interface Candidate {
        route: KubeObject;
        routeIndex: number;
        ruleIndex: number;
        rule: Json;
        match: Json;
    }
    const candidates: Candidate[] = [];
    forHost.forEach((route, routeIndex) => {
        ((route.spec?.rules ?? []) as Json[]).forEach((rule, ruleIndex) => {
            const matches = (rule.matches ?? [{ path: { type: "PathPrefix", value: "/" } }]) as Json[];
            for (const match of matches) {
                const pathMatch = match.path ?? { type: "PathPrefix", value: "/" };
                const pathOk =
                    pathMatch.type === "Exact"
                        ? path === pathMatch.value
                        : pathMatch.value === "/" || path === pathMatch.value || path.startsWith(`${String(pathMatch.value).replace(/\/$/, "")}/`);
                const headersOk = ((match.headers ?? []) as Json[]).every((h) => (h.type ?? "Exact") === "Exact" && header(h.name) === h.value);
                const queryOk = ((match.queryParams ?? []) as Json[]).every((q) => params.get(q.name) === q.value);
                const methodOk = match.method === undefined || match.method === request.method;
                if (pathOk && headersOk && queryOk && methodOk) candidates.push({ route, routeIndex, ruleIndex, rule, match });
            }
        });
    });
    if (candidates.length === 0) return { status: 404, reason: `no HTTPRoute rule matches ${request.host}${path}` };

    const key = (c: Candidate): (number | string)[] => {
        const p = c.match.path ?? { type: "PathPrefix", value: "/" };
        return [
            p.type === "Exact" ? 0 : 1,
            -String(p.value).length,
            c.match.method === undefined ? 1 : 0,
            -((c.match.headers ?? []) as Json[]).length,
            -((c.match.queryParams ?? []) as Json[]).length,
            c.route.metadata.creationTimestamp ?? "",
            `${namespaceOf(c.route)}/${c.route.metadata.name}`,
            c.ruleIndex,
        ];
    };
    const compare = (a: Candidate, b: Candidate): number => {
        const [ka, kb] = [key(a), key(b)];
        for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? -1 : 1;
        return 0;
    };
    const chosen = [...candidates].sort(compare)[0];
    const backends = ((chosen.rule.backendRefs ?? []) as Json[]).filter((b) => (b.weight ?? 1) > 0);
    if (backends.length === 0) return { status: 500, reason: "the matching rule has no backend" };
    const name = pickWeighted(backends.map((b) => ({ value: String(b.name), weight: Number(b.weight ?? 1) })));
    const ref = backends.find((b) => b.name === name) as Json;
    const namespace = ref.namespace ?? namespaceOf(chosen.route);
    const service = objects.find((o) => o.kind === "Service" && o.metadata.name === name && namespaceOf(o) === namespace);
    if (service === undefined) return { status: 500, reason: `backend Service ${namespace}/${name} does not exist` };
    const selector = (service.spec?.selector ?? {}) as Record<string, string>;
    const pods = objects.filter(
        (o) =>
            o.kind === "Deployment" &&
            namespaceOf(o) === namespace &&
            Object.keys(selector).length > 0 &&
            Object.entries(selector).every(([k, v]) => o.spec?.template?.metadata?.labels?.[k] === v),
    );
    const deployment = pods[Math.floor(Math.random() * pods.length)] as KubeObject | undefined;
    return { deployment, version: deployment?.spec?.template?.metadata?.labels?.version as string | undefined };
}
