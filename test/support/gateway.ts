// A local stand-in for the Istio ingress gateway, for the end-to-end tests, the demo and the README's
// own commands: an HTTPS server (the gateway Service's port 443) and a plain HTTP one (its port 80)
// that send each request where a Router says, and answer with the page of the image the chosen
// version runs: the cow for dougbtv/nginx-cowsay:v1, the hotdog for :v2. A version with no ready pods
// answers 503, as Envoy does. Against a cluster with istiod the router is xdsRoutes (test/support/xds-routes.ts):
// the route istiod pushed to the gateway decides. Suites that only render YAML have no istiod and use
// the minimal renderedRoutes (test/support/rendered-routes.ts). Tests can break a version's page, make the
// gateway hang (accept and never answer), take it down and bring it back at the same addresses, and
// reset it to serving before a test that needs it so.
//
// It also exports Istio's standard request metrics (test/support/istio-metrics.ts) on a loopback port of its
// own at /stats/prometheus, as Envoy does, for the gateway and for the sidecar of the version that
// answered; with COWSAY_PROMETHEUS_TARGETS set it registers that port with the Prometheus of
// scripts/cluster.sh (a file_sd target file). And tests can break a version the way a bad release
// does (test/support/faults.ts): a share of 503s, or late answers, which the metrics then show.
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from "node:http";
import { createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Duplex } from "node:stream";

import { selfSignedCertificate } from "./certificate";
import { APP, APP_NAMESPACE, HEADER, HOST, VERSIONS } from "./constants";
import { Faults } from "./faults";
import { IstioMetrics, type MeshNames } from "./istio-metrics";

/** A Kubernetes object as the routing needs it. */
export interface KubeObject {
    readonly kind: string;
    readonly metadata: {
        readonly name: string;
        readonly namespace?: string;
        readonly labels?: Record<string, string>;
        readonly creationTimestamp?: string;
        readonly deletionTimestamp?: string;
    };
    readonly spec?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    readonly status?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Where a router reads the objects the program created. */
export type ObjectSource = () => Promise<readonly KubeObject[]>;

/** A request as the gateway's Service receives it. */
export interface GatewayRequest {
    /** The Host header without its port. */
    readonly host: string;
    /** The gateway Service's port it came in on: 443 (HTTPS) or 80 (plain HTTP). */
    readonly port: 80 | 443;
    readonly headers: Record<string, string | string[] | undefined>;
    readonly method: string;
    /** Path and query, as in the request line. */
    readonly url: string;
}

/**
 * Where a request goes: a version whose pod answers with its image's page, or an answer of the
 * gateway's own. `service` is the Service host (`<name>.<namespace>.svc.cluster.local`) of the
 * cluster the route chose, for the metrics; default: the app's Service for a pod's answer and for
 * "UH", none otherwise. `flags` are Envoy's response flags for an answer of the gateway's own;
 * default: "NR" for a 404, "UH" for a 503, "-" otherwise.
 */
export type Routed =
    | { readonly version: string; readonly image: string; readonly service?: string }
    | {
          readonly status: number;
          readonly reason: string;
          readonly location?: string;
          readonly version?: string;
          readonly service?: string;
          readonly flags?: string;
      };

/** Decides where each request goes. */
export type Router = (request: GatewayRequest) => Promise<Routed>;

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

/** The directory of Prometheus's file_sd target files (scripts/cluster.sh), when a suite runs one. */
export const PROMETHEUS_TARGETS_ENV = "COWSAY_PROMETHEUS_TARGETS";

/** Where the workloads behind the gateway live, and where its metrics are announced. */
export interface GatewayOptions extends MeshNames {
    /** Directory to register the metrics port in (a file_sd target file). Default: $COWSAY_PROMETHEUS_TARGETS; none when unset. */
    readonly prometheusTargets?: string;
}

/** The page a version's pod answers with when a fault makes it fail: the app's own 503. */
const FAULT_PAGE = "503 Service Temporarily Unavailable (a fault the test set)\n";

export class StandInGateway {
    /**
     * Requests seen, newest last: the Service port, the test-route header, the version each was routed
     * to (or the status it got; 0 when the client left before a late answer), and the client's
     * User-Agent (curl sends one; the gate sends none).
     */
    readonly requests: { port: 80 | 443; header?: string; routedTo?: string; status: number; userAgent?: string }[] = [];
    /** Pages to serve instead of an image's own (image -> page): a broken release. */
    readonly overrides = new Map<string, string>();
    /** Versions that fail a share of their requests or answer late (version -> fault): a bad release. */
    readonly faults = new Faults();
    mode: GatewayMode = "serving";
    /** Requests a silent gateway took and never answered: a client (the gate) is waiting on it. */
    unanswered = 0;
    private readonly sockets = new Set<Duplex>();
    /** The ports it took at start (HTTPS, HTTP), kept across down() and up(). */
    private readonly ports = { https: 0, http: 0 };

    private readonly metrics: IstioMetrics;
    private readonly metricsServer: HttpServer;
    private readonly appService: string;
    private readonly unregisterOnExit = () => this.unregister();
    private registered: string | undefined;

    private constructor(
        private readonly servers: { readonly https: Server; readonly http: HttpServer },
        private readonly certDir: string,
        private readonly router: Router,
        private readonly header: () => string,
        options: GatewayOptions,
    ) {
        this.metrics = new IstioMetrics(options);
        this.appService = `${options.appName ?? APP}.${options.appNamespace ?? APP_NAMESPACE}.svc.cluster.local`;
        this.metricsServer = createHttpServer((req, res) => {
            if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/stats/prometheus") {
                res.writeHead(404, { "content-type": "text/plain" }).end("only GET /stats/prometheus here\n");
                return;
            }
            this.metrics.text().then(
                (text) => res.writeHead(200, { "content-type": this.metrics.contentType }).end(text),
                (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(err)}\n`),
            );
        });
    }

    /**
     * Starts on two free loopback ports, and its metrics on a third. `header` is the test-route
     * header in force; `options` name the workloads (defaults: the program's) and the target directory.
     */
    static async start(router: Router, header: () => string = () => HEADER, options: GatewayOptions = {}): Promise<StandInGateway> {
        const targets = options.prometheusTargets ?? process.env[PROMETHEUS_TARGETS_ENV] ?? "";
        if (targets !== "" && !isDirectory(targets)) {
            const key = options.prometheusTargets === undefined ? PROMETHEUS_TARGETS_ENV : "prometheusTargets";
            throw new Error(`${key} is ${JSON.stringify(targets)}; allowed: an existing directory, where Prometheus reads its file_sd target files`);
        }
        const certDir = mkdtempSync(path.join(tmpdir(), "cowsay-gw-"));
        // A throwaway self-signed certificate, as the default issuer would give the real gateway.
        const pem = selfSignedCertificate(certDir, "cowsay.example.com");
        const https = createServer({ key: readFileSync(pem.key), cert: readFileSync(pem.cert) });
        const http = createHttpServer();
        const gateway = new StandInGateway({ https, http }, certDir, router, header, options);
        for (const [server, port] of [
            [https, 443],
            [http, 80],
        ] as const) {
            server.on("request", (req: IncomingMessage, res: ServerResponse) => gateway.answer(port, req, res));
            server.on("connection", (socket: Duplex) => {
                gateway.sockets.add(socket);
                socket.on("close", () => gateway.sockets.delete(socket));
            });
            await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        }
        gateway.ports.https = (https.address() as AddressInfo).port;
        gateway.ports.http = (http.address() as AddressInfo).port;
        await new Promise<void>((resolve) => gateway.metricsServer.listen(0, "127.0.0.1", resolve));
        if (targets !== "") gateway.register(targets);
        return gateway;
    }

    /**
     * Writes the target file Prometheus's file_sd reads (`[{targets, labels}]`), by rename so that
     * Prometheus never reads half a file; the name is unique to this process and port.
     */
    private register(directory: string): void {
        const file = path.join(directory, `stand-in-gateway-${process.pid}-${(this.metricsServer.address() as AddressInfo).port}.json`);
        const target = [{ targets: [this.metricsAddress], labels: { job: "istio-mesh", __metrics_path__: "/stats/prometheus" } }];
        // The temporary name does not end in .json, so a file_sd glob never matches it.
        writeFileSync(`${file}.tmp`, `${JSON.stringify(target, null, 2)}\n`);
        renameSync(`${file}.tmp`, file);
        this.registered = file;
        // A test process that ends without stop() must not leave Prometheus a target that never answers.
        process.once("exit", this.unregisterOnExit);
    }

    private unregister(): void {
        if (this.registered !== undefined) rmSync(this.registered, { force: true });
        this.registered = undefined;
        process.off("exit", this.unregisterOnExit);
    }

    /** The file that registers the metrics port with Prometheus, while one does. */
    get targetsFile(): string | undefined {
        return this.registered;
    }

    private answer(port: 80 | 443, req: IncomingMessage, res: ServerResponse): void {
        if (this.mode === "silent") {
            this.unanswered++;
            return; // never answers
        }
        const hostHeader = String(req.headers.host ?? "");
        const host = hostHeader.replace(/:\d+$/, "");
        const request: GatewayRequest = { host, port, headers: req.headers, method: req.method ?? "GET", url: req.url ?? "/" };
        const record = (status: number, routedTo?: string) =>
            this.requests.push({ port, header: req.headers[this.header()] as string | undefined, routedTo, status, userAgent: req.headers["user-agent"] });
        this.router(request).then(
            (routed) => this.respond(routed, hostHeader, res, record),
            (err: unknown) =>
                // The router could not tell (istiod or the API server unreachable): what Envoy answers
                // without an upstream, and counted as such.
                this.respond(
                    { status: 503, reason: `the stand-in could not route: ${err instanceof Error ? err.message : String(err)}` },
                    hostHeader,
                    res,
                    record,
                ),
        );
    }

    /**
     * Answers as the route decided, and counts the request in the metrics once it ends. The duration
     * starts here, not at arrival: the router reads the API server and istiod at every request, work
     * Envoy has done before the request comes; what is measured is the answer itself.
     */
    private respond(routed: Routed, hostHeader: string, res: ServerResponse, record: (status: number, routedTo?: string) => void): void {
        const started = performance.now();
        const elapsed = () => performance.now() - started;
        if (!("image" in routed)) {
            const flags = routed.flags ?? (routed.status === 404 ? "NR" : routed.status === 503 ? "UH" : "-");
            const service = routed.service ?? (flags === "UH" ? this.appService : undefined);
            res.once("finish", () => this.metrics.record({ kind: "gateway", status: routed.status, flags, service, hostHeader, durationMs: elapsed() }));
            record(routed.status, routed.version);
            res.writeHead(routed.status, { "content-type": "text/plain", ...(routed.location === undefined ? {} : { location: routed.location }) }).end(
                `${routed.reason}\n`,
            );
            return;
        }
        const { version } = routed;
        const service = routed.service ?? this.appService;
        const { fail, delayMs } = this.faults.next(version);
        const status = fail ? 503 : 200;
        const answer = () => {
            record(status, version);
            if (fail) res.writeHead(503, { "content-type": "text/plain" }).end(FAULT_PAGE);
            else res.writeHead(200, { "content-type": "text/html" }).end(this.overrides.get(routed.image) ?? pageOf(routed.image));
        };
        const timer = delayMs > 0 ? setTimeout(answer, delayMs) : undefined;
        res.once("close", () => {
            if (res.writableFinished) {
                this.metrics.record({ kind: "pod", version, service, status, flags: "-", durationMs: elapsed() });
                return;
            }
            // The client left before the answer (it gave up on a slow version): Envoy counts code 0,
            // flag DC (downstream connection termination), on both proxies.
            clearTimeout(timer);
            record(0, version);
            this.metrics.record({ kind: "pod", version, service, status: 0, flags: "DC", durationMs: elapsed() });
        });
        if (timer === undefined) answer();
    }

    /** host:port of the HTTPS side (the Service's 443), as the README's GATEWAY_ADDRESS (the same after down() and up()). */
    get address(): string {
        return `127.0.0.1:${this.ports.https}`;
    }

    /** host:port of the plain HTTP side (the Service's 80). */
    get httpAddress(): string {
        return `127.0.0.1:${this.ports.http}`;
    }

    /** host:port of the metrics (GET /stats/prometheus), as Envoy's 15090. */
    get metricsAddress(): string {
        return `127.0.0.1:${(this.metricsServer.address() as AddressInfo).port}`;
    }

    /** Stops accepting and drops every connection: nothing answers at the addresses until up(). */
    async down(): Promise<void> {
        const closing = [this.servers.https, this.servers.http].filter((s) => s.listening).map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        for (const socket of this.sockets) socket.destroy();
        await Promise.all(closing);
    }

    /** Listens again at the same addresses after down(). */
    async up(): Promise<void> {
        for (const [server, port] of [
            [this.servers.https, this.ports.https],
            [this.servers.http, this.ports.http],
        ] as const) {
            if (server.listening) continue;
            await new Promise<void>((resolve, reject) => {
                server.once("error", reject);
                server.listen(port, "127.0.0.1", () => {
                    server.off("error", reject);
                    resolve();
                });
            });
        }
    }

    /** Makes `image` answer with a page that is not its own (the cow, by default): a broken release. */
    serveWrongPage(image: string, page = pageOf(VERSIONS.v1.image)): void {
        this.overrides.set(image, page);
    }

    /** Back to a gateway that is up and answers every version with its own page, promptly (no faults). */
    async reset(): Promise<void> {
        this.mode = "serving";
        this.unanswered = 0;
        this.overrides.clear();
        this.faults.clear();
        await this.up();
    }

    /** Requests routed to `version` since index `from`. */
    routedTo(version: string, from = 0): number {
        return this.requests.slice(from).filter((r) => r.routedTo === version).length;
    }

    /** Stops for good: down, its metrics port closed and unregistered, its certificate removed. */
    async stop(): Promise<void> {
        this.unregister();
        await this.down();
        if (this.metricsServer.listening) {
            const closed = new Promise<void>((resolve) => this.metricsServer.close(() => resolve()));
            // Prometheus keeps its scrape connection open: close it, or close() waits for it.
            this.metricsServer.closeAllConnections();
            await closed;
        }
        rmSync(this.certDir, { recursive: true, force: true });
    }
}

function isDirectory(dir: string): boolean {
    try {
        return statSync(dir).isDirectory();
    } catch {
        return false;
    }
}

/** GET / through the stand-in's HTTPS side with the gateway host, optionally pinned to a version by the test header. */
export function fetchPage(gateway: StandInGateway, version?: string, host: string = HOST): Promise<{ status: number; body: string }> {
    const [address, port] = gateway.address.split(":");
    return new Promise((resolve, reject) => {
        const req = request(
            {
                host: address,
                port: Number(port),
                path: "/",
                servername: host,
                rejectUnauthorized: false,
                headers: { host, ...(version === undefined ? {} : { [HEADER]: version }) },
            },
            (res) => {
                let body = "";
                res.on("data", (chunk: Buffer) => (body += chunk.toString()));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            },
        );
        req.on("error", reject);
        req.end();
    });
}
