// The one shape every way of routing traffic to the versions shares. BlueGreenApp owns the
// Deployments, the shared Service and the gate; a routing API is a component of its own, a child of
// the app, that owns the ingress and routing objects and the live route. A switch, a rollback or a
// weighted step changes only the live route (and the gate, when a version starts taking traffic).
// The order of an update is told, and followed, in BlueGreenApp's constructor (components/app.ts):
// the constructor creates the objects the gate goes through, `goLive` the live route.
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

import type { VersionRoles } from "../../lib/version-roles";

/** What the caller decides about routing (from the config), whichever API routes. */
export interface RouteSettings {
    /** Host name the gateway serves. */
    readonly hostname: string;
    /** Header that pins a request to a version; undefined: no test routes (and no gate). */
    readonly testRouteHeader?: string;
    /** Label selector of the Helm-installed ingress gateway's pods. */
    readonly gatewaySelector: Readonly<Record<string, string>>;
    /** Namespace of the ingress gateway, where the TLS Secret is. */
    readonly ingressNamespace: string;
    /** Secret (in `ingressNamespace`) with the TLS certificate for `hostname`. */
    readonly tlsSecretName: string;
    /** Redirect plain HTTP to HTTPS. */
    readonly httpsRedirect: boolean;
    /**
     * The stack's certificate comes from ACME over HTTP-01: port 80 must carry the challenge requests
     * (`/.well-known/acme-challenge/<token>`) to cert-manager's solver, not redirect them. Default: false.
     */
    readonly acmeHttp01?: boolean;
    /**
     * Prefix of the names of the objects other stacks on the cluster may name too: those in the shared
     * ingress namespace and cluster-scoped ones (lib/shared-names.ts). Default: "".
     */
    readonly sharedNamePrefix?: string;
    /**
     * Where a routing API reports whether it took the routes (the Gateway API's route status): how long
     * `pulumi up` waits for that report, and the cluster to read it from. Undefined: no wait.
     */
    readonly statusWait?: { readonly timeoutSeconds: number; readonly kubeconfig?: pulumi.Input<string>; readonly context?: string };
}

/** What a routing component is given: the caller's settings and the app's side of things. */
export interface RoutingArgs extends RouteSettings {
    /** Every version and what it does in this update. */
    readonly roles: VersionRoles;
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
    /** Labels every version's pods carry (the shared Service's selector); with `version` they pick one version. */
    readonly podSelector: Readonly<Record<string, string>>;
    /** What every object waits for: the namespace, the CRDs, the TLS Secret. */
    readonly prerequisites: readonly pulumi.Resource[];
    /**
     * The resource these objects were children of before routing had a component of its own (the
     * app). Their aliases name it, so that a stack deployed before the move sees the same objects.
     * Default: none (nothing moved).
     */
    readonly formerParent?: pulumi.Resource;
}

/** A routing API's component, as the app sees it: built with the objects the gate goes through, not yet live. */
export interface Routing extends pulumi.ComponentResource {
    /** The objects test requests go through (gateway, test routes, per-version Services): what the gate waits for. */
    readonly ready: readonly pulumi.Resource[];
    /**
     * Creates the live route after `ready` and `after` (the serving Deployments and the gate), and
     * whatever waits for the routing API's verdict on it; registers the component's outputs. Called
     * once, after everything in `after` exists.
     */
    goLive(after: readonly pulumi.Resource[]): LiveRoute;
}

/** What `goLive` created. */
export interface LiveRoute {
    /** The object created last: it waits for every other live object, so whatever waits for it sees the switch done. */
    readonly live: pulumi.Resource;
    /**
     * What is done once the routing API has reported the live objects programmed (the same as `live`
     * where the API reports nothing). Versions going idle wait for it.
     */
    readonly settled: pulumi.Resource;
}

/** A routing API: a component class the caller picks (components/routing/index.ts). */
export type RoutingComponent = new (name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) => Routing;

/** What an ACME solver needs to know of a stack's routing objects: the names the component gives them. */
export type Http01Target = Pick<RoutingArgs, "appName" | "namespace" | "ingressNamespace" | "sharedNamePrefix">;

/** The name of an object other stacks on the cluster may name too (see `sharedNamePrefix`). */
export const sharedName = (target: Http01Target, name: string): string => `${target.sharedNamePrefix ?? ""}${name}`;

/**
 * cert-manager's HTTP-01 solver (an Issuer's `spec.acme.solvers[].http01`, cert-manager.io/v1): an
 * Ingress of a class, or an HTTPRoute on Gateway listeners. Only the fields this program sets.
 */
export type Http01Solver =
    | { readonly ingress: { readonly ingressClassName: string } }
    | {
          readonly gatewayHTTPRoute: {
              readonly parentRefs: readonly {
                  readonly group: string;
                  readonly kind: string;
                  readonly name: string;
                  readonly namespace: string;
                  readonly sectionName: string;
              }[];
          };
      };

/**
 * A routing API as the caller picks it: its component, and how cert-manager's HTTP-01 solver reaches
 * the port-80 side of the objects that component creates (the Issuer is made before them, from names).
 */
export interface RoutingApiChoice {
    readonly component: RoutingComponent;
    readonly http01Solver: (target: Http01Target) => Http01Solver;
}

/**
 * Options of a routing object: a child of `component`, after the prerequisites and `after`, and known
 * by its former URN too (a child of the app) on stacks deployed before routing had a component.
 */
export function routingChild(component: Routing, args: RoutingArgs, after: readonly pulumi.Resource[] = []): pulumi.CustomResourceOptions {
    return {
        parent: component,
        dependsOn: [...args.prerequisites, ...after],
        aliases: args.formerParent === undefined ? [] : [{ parent: args.formerParent }],
    };
}

/**
 * Annotations of the objects that decide where traffic goes (routes, subsets). They belong to the
 * program: a hand edit (`kubectl patch`, `kubectl edit`) is drift that `pulumi refresh` shows and the
 * next `pulumi up` undoes, instead of a server-side-apply field conflict that blocks every update,
 * the rollback included.
 */
export const ROUTING_OBJECT_ANNOTATIONS: Readonly<Record<string, string>> = { "pulumi.com/patchForce": "true" };
