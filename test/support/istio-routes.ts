// For the end-to-end suites against a cluster with istiod: the ingress gateway's view of istiod (the
// program's gatewaySelector labels in its ingress namespace), the stand-in gateway's router built on
// it, a sidecar's view from another namespace, and the assertions each step makes: the route table
// istiod pushes for the host on 443 (a bounded wait, no sleeps), plain HTTP on 80 redirected to TLS
// both in the pushed table and through the stand-in, and the in-mesh route a client sidecar gets.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

import { tlsSecretName } from "../../components/tls";
import { GATEWAY_NAME } from "../../config";
import { selfSignedCertificate } from "./certificate";
import type { LocalCluster } from "./cluster";
import { HEADER, HOST } from "./constants";
import { StandInGateway } from "./gateway";
import { lastRouteIs, routeTable, XdsProxy } from "./xds";
import { xdsRoutes } from "./xds-routes";

// Never execFileSync a client of the stand-in: it runs in this process and could not answer.
const run = promisify(execFile);

/** The namespace the in-mesh client sidecar is taken to run in (nothing of the app is there). */
export const CLIENT_NAMESPACE = "cowsay-client";

/** The test routes' lines of a pushed table, one per version, in the order the program declares them. */
export const testRouteLines = (targets: readonly string[]): string[] => targets.map((t, i) => `/ ${HEADER}=v${i + 1} -> ${t}`);

export class IstioRoutes {
    readonly ingress: XdsProxy;
    readonly client: XdsProxy;
    /** The gateway host the stack serves (its `hostname`). */
    readonly host: string;

    /**
     * `selector`: the program's gatewaySelector; `ingressNamespace`: where the gateway's pods run.
     */
    constructor(
        private readonly cluster: LocalCluster,
        options: { readonly ingressNamespace: string; readonly selector: Readonly<Record<string, string>>; readonly host?: string },
    ) {
        this.host = options.host ?? HOST;
        this.ingress = new XdsProxy(cluster.env, { role: "gateway", namespace: options.ingressNamespace, labels: options.selector });
        this.client = new XdsProxy(cluster.env, { role: "sidecar", namespace: CLIENT_NAMESPACE, labels: { app: "client" } });
    }

    /**
     * A stand-in gateway that routes each request with istiod's push to the ingress gateway, read at
     * every request, or at most every `routeCacheMs` (for a suite that sends live load).
     */
    startGateway(options: { routeCacheMs?: number } = {}): Promise<StandInGateway> {
        // Its metrics go to this cluster's Prometheus (none when it runs none), never to another
        // cluster's that the environment may name.
        return StandInGateway.start(
            xdsRoutes(
                () => this.ingress.dump(),
                (ns) => this.cluster.get("services,destinationrules.networking.istio.io,pods", ns),
                options.routeCacheMs,
            ),
            undefined,
            { prometheusTargets: this.cluster.prometheus?.targets ?? "" },
        );
    }

    /** Waits (bounded) until the gateway's HTTPS route for the host is `table` (routeTable's lines). */
    async expectGateway(table: readonly string[], timeoutSeconds = 15): Promise<void> {
        await this.ingress.waitForTable(this.host, 443, table, timeoutSeconds);
    }

    /** Waits (bounded) until the gateway's HTTPS catch-all route for the host is `live` (whatever comes before it). */
    async expectGatewayLive(live: string, timeoutSeconds = 15): Promise<void> {
        await this.ingress.waitForTable(this.host, 443, lastRouteIs(`/ -> ${live}`), timeoutSeconds);
    }

    /**
     * Clocks for one switch, started before the `pulumi up` that makes it: `pushed` resolves with the
     * moment (performance.now()) istiod's push sends the gateway's catch-all route for the host to
     * `live` (routeTable's words, e.g. "v1" or "cowsay-nginx-v1"), `written` with the moment a watch on
     * the API server first sees a new generation of the live route object `route` (e.g.
     * "virtualservices.networking.istio.io/cowsay-nginx" in `namespace`): the write istiod reacts to.
     * Both are bounded by `timeoutSeconds`; `stop` ends the watch if the switch never came.
     */
    switchClock(live: string, route: string, namespace: string, timeoutSeconds = 60): { pushed: Promise<number>; written: Promise<number>; stop: () => void } {
        const watch = spawn(
            "kubectl",
            ["-n", namespace, "get", route, "--watch-only", "-o", 'jsonpath={.metadata.generation}{"\\n"}', `--request-timeout=${timeoutSeconds}s`],
            {
                env: this.cluster.env,
                stdio: ["ignore", "pipe", "pipe"],
            },
        );
        let stderr = "";
        watch.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const written = new Promise<number>((resolve, reject) => {
            watch.stdout.once("data", () => resolve(performance.now()));
            watch.on("close", () => reject(new Error(`the watch on ${namespace}/${route} saw no write: ${stderr.trim()}`)));
        });
        const pushed = this.ingress.waitForTable(this.host, 443, lastRouteIs(`/ -> ${live}`), timeoutSeconds).then(() => performance.now());
        const stop = () => watch.kill("SIGTERM");
        // Handled here too, so that a caller that fails before awaiting them leaves no unhandled rejection.
        void written.then(stop, () => undefined);
        pushed.catch(() => undefined);
        return { pushed, written, stop };
    }

    /** The gateway's HTTPS route table for the host, as istiod pushes it now. */
    async gatewayTable(): Promise<string[]> {
        return routeTable(await this.ingress.dump(), this.host, 443);
    }

    /**
     * Plain HTTP requires TLS: istiod's table for port 80 is one redirect (Istio's require_tls, or the
     * Gateway API's redirect route), and a request on the stand-in's HTTP side gets a 301 to https.
     */
    async expectRedirect(gateway: StandInGateway, api: "istio" | "gateway-api", timeoutSeconds = 15): Promise<void> {
        // Istio's httpsRedirect is the virtual host's require_tls; the Gateway API's a redirect route.
        const pushed = api === "istio" ? [`require TLS -> redirect 301 https://${this.host}/`] : [`/ -> redirect 301 https://${this.host}/`];
        await this.ingress.waitForTable(this.host, 80, pushed, timeoutSeconds);
        const { stdout } = await run("curl", [
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-w",
            "%{http_code} %{redirect_url}",
            "-H",
            `Host: ${this.host}`,
            `http://${gateway.httpAddress}/moo`,
        ]);
        assert.equal(stdout, `301 https://${this.host}/moo`, "plain HTTP through the gateway is redirected to HTTPS");
    }

    /** Waits (bounded) until a sidecar in CLIENT_NAMESPACE calling `service` on `port` gets `table`. */
    async expectClient(service: string, port: number, table: readonly string[], timeoutSeconds = 15): Promise<void> {
        await this.client.waitForTable(service, port, table, timeoutSeconds);
    }
}

/**
 * Makes `namespace` and in it the Service the gateway chart would create (the Helm install is off
 * here): the Gateway API's Gateway names it as its address, and istiod finds the gateway's pods (the
 * xDS client) by its selector.
 */
export async function createGatewayService(cluster: LocalCluster, namespace: string, selector: Readonly<Record<string, string>>): Promise<void> {
    await cluster.createNamespace(namespace);
    const service = await cluster.kubectl("-n", namespace, "create", "service", "clusterip", GATEWAY_NAME, "--tcp=80:8080,443:8443");
    const selected = await cluster.kubectl(
        "-n",
        namespace,
        "set",
        "selector",
        "service",
        GATEWAY_NAME,
        Object.entries(selector)
            .map(([k, v]) => `${k}=${v}`)
            .join(","),
    );
    if (service.code !== 0 || selected.code !== 0) throw new Error(`the gateway Service in ${namespace}: ${service.stderr}${selected.stderr}`);
}

/**
 * The TLS Secret cert-manager would issue for `host` in the gateway's namespace (cert-manager does not
 * run here). istiod programs a Gateway API HTTPS listener only once its certificateRef resolves, so it
 * must exist before the first gate. Named by components/tls.ts's own rule (tlsSecretName);
 * expectCertificateFor checks that the program's Certificate asks for this very Secret.
 */
export async function createTlsSecret(cluster: LocalCluster, namespace: string, host: string): Promise<string> {
    const name = tlsSecretName(host);
    const dir = mkdtempSync(path.join(tmpdir(), "cowsay-tls-"));
    try {
        const { key, cert } = selfSignedCertificate(dir, host);
        await cluster.createNamespace(namespace);
        const created = await cluster.kubectl("-n", namespace, "create", "secret", "tls", name, `--cert=${cert}`, `--key=${key}`);
        if (created.code !== 0 && !created.stderr.includes("AlreadyExists")) throw new Error(`the TLS Secret ${namespace}/${name}: ${created.stderr}`);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
    return name;
}

/** The program's Certificates in `namespace` ask for `secret` (the one createTlsSecret made). */
export async function expectCertificateFor(cluster: LocalCluster, namespace: string, secret: string): Promise<void> {
    const names = (await cluster.get("certificates.cert-manager.io", namespace)).map((c) => String(c.spec?.secretName));
    assert.deepEqual(names, [secret], "the Certificate names the Secret the suite issued in cert-manager's place");
}

/** The Istio API's table on 443: the test routes (VirtualService created first), then the live route. */
export const istioTable = (live: string, versions: readonly string[] = ["v1", "v2"]): string[] => [...testRouteLines(versions), `/ -> ${live}`];
