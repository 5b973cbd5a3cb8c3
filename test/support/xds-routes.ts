// The stand-in gateway's router against a cluster that runs istiod: each request goes where the route
// istiod pushed to the ingress gateway sends it (chooseRoute in test/support/xds.ts), and the chosen cluster
// is answered by a ready pod behind it, found the way istiod finds its endpoints: the Service the
// cluster names, its selector, and the DestinationRule subset's labels when the cluster names one.
import type { GatewayRequest, KubeObject, Routed, Router } from "./gateway";
import { chooseRoute, parseCluster, type XdsDump } from "./xds";

/** Services, DestinationRules and Pods of a namespace, as the API server has them now. */
export type Workloads = (namespace: string) => Promise<readonly KubeObject[]>;

const selects = (selector: Record<string, string>, labels: Record<string, string> = {}): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

const ready = (pod: KubeObject): boolean =>
    pod.metadata.deletionTimestamp === undefined &&
    ((pod.status?.conditions ?? []) as { type: string; status: string }[]).some((c) => c.type === "Ready" && c.status === "True");

/**
 * The pod that answers for an outbound cluster: a ready one behind its Service (and subset), picked
 * at random as Envoy's load balancer would; a 503 naming what is missing when none is. For the
 * metrics, each answer names the cluster's Service host and Envoy's flag: istiod pushes no cluster
 * for a Service or subset that does not exist ("NC", cluster not found), and a cluster without
 * ready endpoints is "UH" (no healthy upstream).
 */
export function podFor(cluster: string, objects: readonly KubeObject[], point: number = Math.random()): Routed {
    const parsed = parseCluster(cluster);
    if (parsed === undefined) return { status: 503, reason: `${cluster} is not a Kubernetes Service's cluster`, flags: "NC" };
    const host = cluster.split("|")[3];
    const inNamespace = objects.filter((o) => (o.metadata.namespace ?? parsed.namespace) === parsed.namespace);
    const service = inNamespace.find((o) => o.kind === "Service" && o.metadata.name === parsed.service);
    if (service === undefined) return { status: 503, reason: `no Service ${parsed.namespace}/${parsed.service} behind ${cluster}`, flags: "NC" };
    let labels: Record<string, string> = { ...((service.spec?.selector ?? {}) as Record<string, string>) };
    if (parsed.subset !== "") {
        const fqdn = `${parsed.service}.${parsed.namespace}.svc.cluster.local`;
        const rule = inNamespace.find((o) => o.kind === "DestinationRule" && [parsed.service, fqdn].includes(String(o.spec?.host)));
        const subset = ((rule?.spec?.subsets ?? []) as { name: string; labels?: Record<string, string> }[]).find((s) => s.name === parsed.subset);
        if (subset === undefined) return { status: 503, reason: `no subset ${parsed.subset} for ${fqdn}`, flags: "NC" };
        labels = { ...labels, ...subset.labels };
    }
    const pods = inNamespace.filter((o) => o.kind === "Pod" && Object.keys(labels).length > 0 && selects(labels, o.metadata.labels));
    const live = pods.filter(ready);
    const version = pods[0]?.metadata.labels?.version ?? (parsed.subset === "" ? undefined : parsed.subset);
    if (live.length === 0) return { status: 503, reason: `no healthy upstream: no ready pod behind ${cluster}`, version, service: host, flags: "UH" };
    const pod = live[Math.min(live.length - 1, Math.floor(point * live.length))];
    return { version: pod.metadata.labels?.version ?? "", image: String(pod.spec?.containers?.[0]?.image), service: host };
}

/** Where a request goes with what istiod pushed (`dump`) and the workloads behind the chosen cluster. */
export async function routeWithXds(dump: XdsDump, request: GatewayRequest, workloads: Workloads): Promise<Routed> {
    const choice = chooseRoute(dump, { host: request.host, port: request.port, path: request.url, headers: request.headers });
    switch (choice.kind) {
        case "none":
            return { status: choice.status, reason: choice.reason };
        case "direct":
            // A direct response or a redirect is Envoy's own answer, with no flag.
            return { status: choice.status, reason: choice.body, flags: "-" };
        case "redirect":
            return { status: choice.status, reason: `redirect to ${choice.location}`, location: choice.location, flags: "-" };
        case "cluster": {
            const namespace = parseCluster(choice.cluster)?.namespace;
            return podFor(choice.cluster, namespace === undefined ? [] : await workloads(namespace));
        }
    }
}

/**
 * `read`, shared: at most one read starts per `ms`, and once one has answered every call gets the
 * newest answer at once while the next read runs, as Envoy routes by its last push until the next
 * one reaches it; only calls before the first answer wait for it (and see its error). A failed read
 * keeps the last answer and lets the next call read again. Under live load (tens of requests a
 * second) each request cannot read istiod's push and the API server anew: each read is a process,
 * and on a loaded machine one can take seconds; a request that waited for it would time out, and
 * the version it was meant for would show no traffic in Prometheus.
 */
export function sharedFor<T>(ms: number, read: () => Promise<T>, now: () => number = Date.now): () => Promise<T> {
    let started = -Infinity;
    let pending: Promise<T> | undefined;
    let sequence = 0;
    let newest: { value: T; sequence: number } | undefined;
    return () => {
        if (now() - started >= ms) {
            const mine = ++sequence;
            started = now();
            const value = read();
            pending = value;
            value.then(
                (answer) => {
                    // A slow read that ends after a later one must not bring an older push back.
                    if (newest === undefined || mine > newest.sequence) newest = { value: answer, sequence: mine };
                },
                () => {
                    if (mine === sequence) started = -Infinity;
                },
            );
        }
        return newest === undefined ? (pending as Promise<T>) : Promise.resolve(newest.value);
    };
}

/**
 * The stand-in's router: istiod's push to the gateway (`dump`) decides, read at every request, or
 * at most every `cacheMs` with the workloads (see sharedFor).
 */
export function xdsRoutes(dump: () => Promise<XdsDump>, workloads: Workloads, cacheMs = 0): Router {
    if (cacheMs <= 0) return async (request) => routeWithXds(await dump(), request, workloads);
    const sharedDump = sharedFor(cacheMs, dump);
    const byNamespace = new Map<string, () => Promise<readonly KubeObject[]>>();
    const sharedWorkloads: Workloads = (namespace) => {
        let read = byNamespace.get(namespace);
        if (read === undefined) {
            read = sharedFor(cacheMs, () => workloads(namespace));
            byNamespace.set(namespace, read);
        }
        return read();
    };
    return async (request) => routeWithXds(await sharedDump(), request, sharedWorkloads);
}
