// A local stand-in for the Istio ingress gateway, for the end-to-end tests, the demo and the README's
// own commands: an HTTPS server (the gateway Service's port 443) and a plain HTTP one (its port 80)
// that send each request where a Router says, and answer with the page of the image the chosen
// version runs: the cow for dougbtv/nginx-cowsay:v1, the hotdog for :v2. A version with no ready pods
// answers 503, as Envoy does. Against a cluster with istiod the router is xdsRoutes (test/xds-routes.ts):
// the route istiod pushed to the gateway decides. Suites that only render YAML have no istiod and use
// the minimal renderedRoutes (test/rendered-routes.ts). Tests can break a version's page, make the
// gateway hang (accept and never answer), take it down and bring it back at the same addresses, and
// reset it to serving before a test that needs it so.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from "node:http";
import { createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Duplex } from "node:stream";

import { HEADER, HOST, VERSIONS } from "./constants";

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

/** Where a request goes: a version whose pod answers with its image's page, or an answer of the gateway's own. */
export type Routed =
    | { readonly version: string; readonly image: string }
    | { readonly status: number; readonly reason: string; readonly location?: string; readonly version?: string };

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

export class StandInGateway {
    /**
     * Requests seen, newest last: the Service port, the test-route header, the version each was routed
     * to (or the status it got), and the client's User-Agent (curl sends one; the gate sends none).
     */
    readonly requests: { port: 80 | 443; header?: string; routedTo?: string; status: number; userAgent?: string }[] = [];
    /** Pages to serve instead of an image's own (image -> page): a broken release. */
    readonly overrides = new Map<string, string>();
    mode: GatewayMode = "serving";
    /** Requests a silent gateway took and never answered: a client (the gate) is waiting on it. */
    unanswered = 0;
    private readonly sockets = new Set<Duplex>();
    /** The ports it took at start (HTTPS, HTTP), kept across down() and up(). */
    private readonly ports = { https: 0, http: 0 };

    private constructor(
        private readonly servers: { readonly https: Server; readonly http: HttpServer },
        private readonly certDir: string,
        private readonly router: Router,
        private readonly header: () => string,
    ) {}

    /** Starts on two free loopback ports. `header` is the test-route header in force. */
    static async start(router: Router, header: () => string = () => HEADER): Promise<StandInGateway> {
        const certDir = mkdtempSync(path.join(tmpdir(), "cowsay-gw-"));
        // A throwaway self-signed certificate, as the default issuer would give the real gateway.
        execFileSync("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=cowsay.example.com", "-keyout", path.join(certDir, "key.pem"), "-out", path.join(certDir, "cert.pem"),
        ], { stdio: "ignore" });
        const https = createServer({ key: readFileSync(path.join(certDir, "key.pem")), cert: readFileSync(path.join(certDir, "cert.pem")) });
        const http = createHttpServer();
        const gateway = new StandInGateway({ https, http }, certDir, router, header);
        for (const [server, port] of [[https, 443], [http, 80]] as const) {
            server.on("request", (req: IncomingMessage, res: ServerResponse) => gateway.answer(port, req, res));
            server.on("connection", (socket: Duplex) => {
                gateway.sockets.add(socket);
                socket.on("close", () => gateway.sockets.delete(socket));
            });
            await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        }
        gateway.ports.https = (https.address() as AddressInfo).port;
        gateway.ports.http = (http.address() as AddressInfo).port;
        return gateway;
    }

    private answer(port: 80 | 443, req: IncomingMessage, res: ServerResponse): void {
        if (this.mode === "silent") {
            this.unanswered++;
            return; // never answers
        }
        const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
        const request: GatewayRequest = { host, port, headers: req.headers, method: req.method ?? "GET", url: req.url ?? "/" };
        const record = (status: number, routedTo?: string) =>
            this.requests.push({ port, header: req.headers[this.header()] as string | undefined, routedTo, status, userAgent: req.headers["user-agent"] });
        this.router(request).then(
            (routed) => {
                if ("image" in routed) {
                    record(200, routed.version);
                    res.writeHead(200, { "content-type": "text/html" }).end(this.overrides.get(routed.image) ?? pageOf(routed.image));
                    return;
                }
                record(routed.status, routed.version);
                res.writeHead(routed.status, { "content-type": "text/plain", ...(routed.location === undefined ? {} : { location: routed.location }) }).end(`${routed.reason}\n`);
            },
            (err: unknown) => {
                // The router could not tell (istiod or the API server unreachable): what Envoy answers without a route.
                record(503);
                res.writeHead(503, { "content-type": "text/plain" }).end(`the stand-in could not route: ${err instanceof Error ? err.message : String(err)}\n`);
            },
        );
    }

    /** host:port of the HTTPS side (the Service's 443), as the README's GATEWAY_ADDRESS (the same after down() and up()). */
    get address(): string {
        return `127.0.0.1:${this.ports.https}`;
    }

    /** host:port of the plain HTTP side (the Service's 80). */
    get httpAddress(): string {
        return `127.0.0.1:${this.ports.http}`;
    }

    /** Stops accepting and drops every connection: nothing answers at the addresses until up(). */
    async down(): Promise<void> {
        const closing = [this.servers.https, this.servers.http]
            .filter((s) => s.listening)
            .map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        for (const socket of this.sockets) socket.destroy();
        await Promise.all(closing);
    }

    /** Listens again at the same addresses after down(). */
    async up(): Promise<void> {
        for (const [server, port] of [[this.servers.https, this.ports.https], [this.servers.http, this.ports.http]] as const) {
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

    /** Back to a gateway that is up and answers every version with its own page. */
    async reset(): Promise<void> {
        this.mode = "serving";
        this.unanswered = 0;
        this.overrides.clear();
        await this.up();
    }

    /** Requests routed to `version` since index `from`. */
    routedTo(version: string, from = 0): number {
        return this.requests.slice(from).filter((r) => r.routedTo === version).length;
    }

    /** Stops for good (down, and its certificate removed). */
    async stop(): Promise<void> {
        await this.down();
        rmSync(this.certDir, { recursive: true, force: true });
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
