// Istio's standard request metrics, as the stand-in gateway (test/support/gateway.ts) exports them for a real
// Prometheus: `istio_requests_total` and `istio_request_duration_milliseconds`, with the label set and
// the values Istio's stats filter fills (istio/proxy, source/extensions/filters/http/istio_stats),
// for the two proxies a request crosses: the ingress gateway (reporter "source", as every gateway
// reports) and, when a version's pod answered, that pod's sidecar (reporter "destination"). The mesh
// runs STRICT mTLS (components/security.ts), so the proxies know each other's identity.
//
// prom-client keeps the registry and writes the text exposition: the ecosystem's client, so the
// format (escaping, histogram buckets, `_sum`/`_count`) is not ours to get wrong. A series appears
// with its first request, as Envoy's do; none is created ahead with a zero.
import { Counter, Histogram, Registry } from "prom-client";

import { GATEWAY_NAME } from "../../config";
import { APP, APP_NAMESPACE, INGRESS_NAMESPACE } from "./constants";

/** Istio's labels on its HTTP metrics, in the order its stats filter writes them. */
export const ISTIO_LABELS = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
] as const;

export type IstioLabel = (typeof ISTIO_LABELS)[number];
export type IstioLabels = Readonly<Record<IstioLabel, string>>;

/** Envoy's default histogram buckets, which Istio's request duration keeps (milliseconds). */
export const DURATION_BUCKETS_MS: readonly number[] = [
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

/** The names the program gives the workloads a request crosses. */
export interface MeshNames {
    /** The app's Service and the prefix of its Deployments (`<app>-<version>`). Default: APP ("cowsay-nginx"). */
    readonly appName?: string;
    /** Namespace of the app's pods. Default: the schema's appNamespace. */
    readonly appNamespace?: string;
    /** Namespace of the ingress gateway. Default: the schema's ingressNamespace. */
    readonly ingressNamespace?: string;
}

/** Istio's defaults: the trust domain of every SPIFFE identity, and the cluster ID of a single-cluster mesh. */
const TRUST_DOMAIN = "cluster.local";
const CLUSTER_ID = "Kubernetes";

/** How one request through the gateway ended, as the metrics need it. */
export type Outcome =
    | {
          /** A version's pod answered (its own page, a broken one, or a fault's 503). */
          readonly kind: "pod";
          readonly version: string;
          /** The Service host the route's cluster names (`<service>.<namespace>.svc.cluster.local`). */
          readonly service: string;
          readonly status: number;
          /** Envoy's response flags: "-" when the pod answered; "DC" when the client left first. */
          readonly flags: string;
          readonly durationMs: number;
      }
    | {
          /** The gateway answered itself: no route (404), a redirect, no healthy upstream (503). */
          readonly kind: "gateway";
          readonly status: number;
          /** Envoy's response flags: "NR", "UH", "NC", or "-" (a redirect, a direct response). */
          readonly flags: string;
          /** The Service host of the cluster the route chose, if it chose one; else Envoy falls back to the Host header. */
          readonly service?: string;
          /** The request's Host header, as the client sent it. */
          readonly hostHeader: string;
          readonly durationMs: number;
      };

const spiffe = (namespace: string, serviceAccount: string) => `spiffe://${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`;

/**
 * The label sets Istio's proxies report one request with: the gateway's (reporter "source"), then,
 * when a pod answered, its sidecar's (reporter "destination"). Pure, so it can be read against
 * istio_stats.cc line by line:
 * - the gateway reports its own workload from its node metadata: the chart's pods carry `app` but no
 *   `version` label, so source_version is empty there (the sidecar, reading the gateway as a peer,
 *   says "unknown"), and the injector's canonical revision without a version label is "latest";
 * - a peer it learnt nothing about (no pod answered) is "unknown", its canonical revision "latest";
 *   destination_service is the chosen cluster's Service, else the Host header;
 * - connection_security_policy is known only to the destination: "mutual_tls" under STRICT mTLS;
 * - the app's pods run as the namespace's `default` ServiceAccount (components/app.ts names none),
 *   their canonical service is their `app` label and their canonical revision their `version` label.
 */
export function istioLabels(outcome: Outcome, names: MeshNames = {}): IstioLabels[] {
    const appName = names.appName ?? APP;
    const appNamespace = names.appNamespace ?? APP_NAMESPACE;
    const ingressNamespace = names.ingressNamespace ?? INGRESS_NAMESPACE;
    // The gateway chart names the Deployment, its app label and the ServiceAccount after the release.
    const gateway = {
        source_workload: GATEWAY_NAME,
        source_canonical_service: GATEWAY_NAME,
        source_canonical_revision: "latest",
        source_workload_namespace: ingressNamespace,
        source_principal: spiffe(ingressNamespace, GATEWAY_NAME),
        source_app: GATEWAY_NAME,
        source_cluster: CLUSTER_ID,
    };
    const response = { request_protocol: "http", response_code: String(outcome.status), grpc_response_status: "", response_flags: outcome.flags };
    if (outcome.kind === "gateway") {
        const service = outcome.service ?? (outcome.hostHeader === "" ? "unknown" : outcome.hostHeader);
        return [
            {
                reporter: "source",
                ...gateway,
                source_version: "",
                destination_workload: "unknown",
                destination_workload_namespace: "unknown",
                destination_principal: "unknown",
                destination_app: "unknown",
                destination_version: "unknown",
                destination_service: service,
                destination_canonical_service: "unknown",
                destination_canonical_revision: "latest",
                destination_service_name: outcome.service === undefined ? service : outcome.service.split(".")[0],
                destination_service_namespace: "unknown",
                destination_cluster: "unknown",
                ...response,
                connection_security_policy: "unknown",
            },
        ];
    }
    const pod = {
        destination_workload: `${appName}-${outcome.version}`,
        destination_workload_namespace: appNamespace,
        destination_principal: spiffe(appNamespace, "default"),
        destination_app: appName,
        destination_version: outcome.version,
        destination_service: outcome.service,
        destination_canonical_service: appName,
        destination_canonical_revision: outcome.version,
        destination_service_name: outcome.service.split(".")[0],
        destination_service_namespace: appNamespace,
        destination_cluster: CLUSTER_ID,
    };
    return [
        { reporter: "source", ...gateway, source_version: "", ...pod, ...response, connection_security_policy: "unknown" },
        { reporter: "destination", ...gateway, source_version: "unknown", ...pod, ...response, connection_security_policy: "mutual_tls" },
    ];
}

/** One registry with Istio's two request metrics, fed one outcome per request. */
export class IstioMetrics {
    private readonly registry = new Registry();
    private readonly requests: Counter<IstioLabel>;
    private readonly duration: Histogram<IstioLabel>;

    constructor(private readonly names: MeshNames = {}) {
        this.requests = new Counter({
            name: "istio_requests_total",
            help: "Requests handled by an Istio proxy",
            labelNames: ISTIO_LABELS,
            registers: [this.registry],
        });
        this.duration = new Histogram({
            name: "istio_request_duration_milliseconds",
            help: "Duration of requests, in milliseconds",
            labelNames: ISTIO_LABELS,
            buckets: [...DURATION_BUCKETS_MS],
            registers: [this.registry],
        });
    }

    /** Counts one request on behalf of every proxy that reports it. */
    record(outcome: Outcome): void {
        // Envoy records whole milliseconds (an integer division of the request's duration).
        const ms = Math.max(0, Math.floor(outcome.durationMs));
        for (const labels of istioLabels(outcome, this.names)) {
            this.requests.inc(labels);
            this.duration.observe(labels, ms);
        }
    }

    /** The text exposition, as Envoy serves it at /stats/prometheus. */
    text(): Promise<string> {
        return this.registry.metrics();
    }

    get contentType(): string {
        return this.registry.contentType;
    }
}
