// A local stand-in for the Istio ingress gateway, for the end-to-end tests and the README's own
// commands: an HTTPS server that routes each request the way Istio would route it with the objects
// the program wrote (read back at every request from rendered YAML or the API server), and answers
// with the page of the image the chosen version runs: the cow for dougbtv/nginx-cowsay:v1, the hotdog
// for :v2. A version with no pods answers 503, as Envoy does. Tests can break a version's page, make
// the gateway hang (accept and never answer) or take it down.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Duplex } from "node:stream";

/** A Kubernetes object as the routing needs it. */
export interface KubeObject {
    readonly kind: string;
    readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
    readonly spec?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Where the stand-in reads the objects the program created. */
export type ObjectSource = () => Promise<readonly KubeObject[]>;

export const PAGES: Readonly<Record<string, string>> = {
    "dougbtv/nginx-cowsay:v1": "<pre>\n ______________\n< Hello OPNFV >\n --------------\n        \\   ^__^\n         \\  (oo)\\_______\n</pre>\n",
    "dougbtv/nginx-cowsay:v2": "<pre>\n ______________\n< Hello OPNFV >\n --------------\n   \\   _______\n    \\ |O___O  |\n</pre>\n",
};

/** The page an image serves: the two cowsay pages, or one that names the image. */
export function pageOf(image: string): string {
    return PAGES[image] ?? `<pre>hello from ${image}</pre>\n`;
}

export type GatewayMode = "serving" | "silent";

export class StandInGateway {
    /** Requests seen, newest last: the version each was routed to (or the status it got). */
    readonly requests: { header?: string; routedTo?: string; status: number }[] = [];
    /** Pages to serve instead of an image's own (image -> page): a broken release. */
    readonly overrides = new Map<string, string>();
    mode: GatewayMode = "serving";
    private readonly sockets = new Set<Duplex>();

    private constructor(
        private readonly server: Server,
        private readonly certDir: string,
        private readonly source: ObjectSource,
        private readonly header: () => string,
    ) {}

    /** Starts on a free loopback port. `header` is the test-route header in force. */
    static async start(source: ObjectSource, header: () => string = () => "x-cowsay-version"): Promise<StandInGateway> {
        const certDir = mkdtempSync(path.join(tmpdir(), "cowsay-gw-"));
        // A throwaway self-signed certificate, as the default issuer would give the real gateway.
        execFileSync("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=cowsay.example.com", "-keyout", path.join(certDir, "key.pem"), "-out", path.join(certDir, "cert.pem"),
        ], { stdio: "ignore" });
        let gateway: StandInGateway | undefined;
        const server = createServer(
            { key: readFileSync(path.join(certDir, "key.pem")), cert: readFileSync(path.join(certDir, "cert.pem")) },
            (req, res) => {
                if (gateway === undefined || gateway.mode === "silent") return; // never answers
                void gateway.route(String(req.headers.host ?? "").replace(/:\d+$/, ""), req.headers).then(({ status, body, routedTo }) => {
                    gateway?.requests.push({ header: req.headers[gateway.header()] as string | undefined, routedTo, status });
                    res.writeHead(status, { "content-type": "text/html" }).end(body);
                });
            },
        );
        server.on("connection", (socket) => {
            gateway?.sockets.add(socket);
            socket.on("close", () => gateway?.sockets.delete(socket));
        });
        gateway = new StandInGateway(server, certDir, source, header);
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        return gateway;
    }

    /** host:port, as the README's GATEWAY_ADDRESS. */
    get address(): string {
        return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    /** Requests routed to `version` since index `from`. */
    routedTo(version: string, from = 0): number {
        return this.requests.slice(from).filter((r) => r.routedTo === version).length;
    }

    private async route(host: string, headers: Record<string, string | string[] | undefined>): Promise<{ status: number; body: string; routedTo?: string }> {
        const objects = await this.source();
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
        if (deployment === undefined || Number(deployment.spec?.replicas ?? 1) === 0) {
            return { status: 503, body: "no healthy upstream", routedTo: subset };
        }
        const image = String(deployment.spec?.template?.spec?.containers?.[0]?.image);
        return { status: 200, body: this.overrides.get(image) ?? pageOf(image), routedTo: subset };
    }

    /** Stops accepting and drops every connection: the gateway is unreachable from here on. */
    async stop(): Promise<void> {
        for (const socket of this.sockets) socket.destroy();
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
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
