// The minimal router of the render-mode suites (lifecycle, failures, readme, upgrade's
// rendered side): they render YAML and run no istiod, so nothing pushes a route; this reads the
// rendered VirtualServices or HTTPRoutes and routes HTTPS requests the way Istio and the Gateway API
// say they should. It is the project's own reading of its objects, NOT Istio's: it is laxer (it puts
// catch-alls last instead of following the VirtualServices' creation order) and it models no plain
// HTTP. Suites against the API server route with what istiod pushes instead (test/support/xds-routes.ts).
import type { GatewayRequest, KubeObject, ObjectSource, Routed, Router } from "./gateway";
import { pickWeighted } from "./xds";

/** Routes HTTPS requests with the objects `source` reads at each request; plain HTTP gets 501. */
export function renderedRoutes(source: ObjectSource): Router {
    return async (request: GatewayRequest): Promise<Routed> => {
        if (request.port !== 443) return { status: 501, reason: "the render-mode stand-in models only HTTPS (port 443)" };
        const objects = await source();
        const viaHttpRoutes = routeWithHttpRoutes(objects, request);
        if (viaHttpRoutes !== undefined) {
            if ("status" in viaHttpRoutes) return viaHttpRoutes;
            return serve(viaHttpRoutes.deployment, viaHttpRoutes.version);
        }
        const services = objects.filter((o) => o.kind === "VirtualService");
        const bound = services.filter(
            (vs) => ((vs.spec?.hosts ?? []) as string[]).includes(request.host) && ((vs.spec?.gateways ?? []) as string[]).some((g) => g !== "mesh"),
        );
        if (bound.length === 0) return { status: 404, reason: `no route for host ${request.host}` };
        // Istio merges the routes of one host; catch-alls (no match) go last.
        const rules = bound.flatMap(
            (vs) =>
                (vs.spec?.http ?? []) as {
                    match?: { headers?: Record<string, { exact?: string }> }[];
                    route: { destination: { subset: string }; weight?: number }[];
                }[],
        );
        const matches = (rule: (typeof rules)[number]) =>
            rule.match === undefined || rule.match.some((m) => Object.entries(m.headers ?? {}).every(([name, value]) => request.headers[name] === value.exact));
        const rule = [...rules.filter((r) => r.match !== undefined), ...rules.filter((r) => r.match === undefined)].find(matches);
        if (rule === undefined) return { status: 404, reason: "no matching route" };
        const subset = pickWeighted(rule.route.map((r) => ({ value: r.destination.subset, weight: r.weight ?? 100 })));
        const deployment = objects.find((o) => o.kind === "Deployment" && o.spec?.template?.metadata?.labels?.version === subset);
        return serve(deployment, subset);
    };
}

/** What the chosen version's pods answer (503 when it runs none, as Envoy says). */
function serve(deployment: KubeObject | undefined, version: string | undefined): Routed {
    if (deployment === undefined || Number(deployment.spec?.replicas ?? 1) === 0) return { status: 503, reason: "no healthy upstream", version };
    return { version: version ?? "", image: String(deployment.spec?.template?.spec?.containers?.[0]?.image) };
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
