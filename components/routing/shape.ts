// The one shape every way of routing traffic to the versions shares. BlueGreenApp owns the
// Deployments, the shared Service and the gate; a routing API owns the ingress and routing objects.
// A switch, a rollback or a weighted step changes only the live route: the object `live` returns, and
// the objects it waits for that `live` itself created (a second live route for in-mesh callers).
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

export interface RoutingArgs {
    /** Namespace of the app (and of every routing object unless said otherwise). */
    readonly namespace: string;
    /** Name of the shared Service; the routing objects are named from it. */
    readonly appName: string;
    /** The shared Service that selects the pods of every version. */
    readonly service: k8s.core.v1.Service;
    /** Port of the shared Service (and of any Service the routing adds). */
    readonly port: number;
    /** Pod port the Services target. */
    readonly targetPort: number;
    /** Every version, idle or not, in declaration order; pods carry the label `version: <name>`. */
    readonly versions: readonly string[];
    /** Labels every version's pods carry (the shared Service's selector); with `version` they pick one version. */
    readonly podSelector: Readonly<Record<string, string>>;
    /** Live traffic share per version in percent (sums to 100; only versions with a share). */
    readonly weights: ReadonlyMap<string, number>;
    /** Host name the gateway serves. */
    readonly hostname: string;
    /** Header that pins a request to a version; undefined: no test routes. */
    readonly testRouteHeader?: string;
    /** Label selector of the Helm-installed ingress gateway's pods. */
    readonly gatewaySelector: Readonly<Record<string, string>>;
    /** Namespace of the ingress gateway, where the TLS Secret is. */
    readonly ingressNamespace: string;
    /** Secret (in `ingressNamespace`) with the TLS certificate for `hostname`. */
    readonly tlsSecretName: string;
    /** Redirect plain HTTP to HTTPS. */
    readonly httpsRedirect: boolean;
}

export interface Routing {
    /** Objects that must exist before the gate fetches a version through its test route. */
    readonly ready: readonly pulumi.Resource[];
    /**
     * Creates the live route, after `after` (the serving Deployments and the gate). Returns the object
     * created last: it waits for every other live object, so whatever waits for it sees the switch done.
     */
    live(after: readonly pulumi.Resource[]): pulumi.Resource;
}

/** Where the routing objects go: children of `parent`, after `dependsOn` (the namespace and CRDs). */
export interface RoutingOptions {
    readonly parent: pulumi.Resource;
    readonly dependsOn: readonly pulumi.Resource[];
}

/** Creates a routing API's objects, named from `name`. */
export type RoutingFactory = (name: string, args: RoutingArgs, opts: RoutingOptions) => Routing;

/**
 * Annotations of the objects that decide where traffic goes (routes, subsets). They belong to the
 * program: a hand edit (`kubectl patch`, `kubectl edit`) is drift that `pulumi refresh` shows and the
 * next `pulumi up` undoes, instead of a server-side-apply field conflict that blocks every update,
 * the rollback included.
 */
export const ROUTING_OBJECT_ANNOTATIONS: Readonly<Record<string, string>> = { "pulumi.com/patchForce": "true" };
