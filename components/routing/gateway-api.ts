// Routing with the Kubernetes Gateway API (gateway.networking.k8s.io/v1), implemented by Istio: a
// Gateway bound to the Helm-installed ingress gateway, one Service per version (the API has no
// subsets), a test HTTPRoute (a header reaches any version), and the live routes: one
// HTTPRoute on the Gateway for the gateway's traffic, one on the shared Service (GAMMA) for in-mesh
// callers. A switch changes those two HTTPRoutes and nothing else. One builder per object; each spec
// is typed by the upstream Gateway API model at compile time. The constructor creates what the gate
// goes through, `goLive` the live routes and the wait for Istio's verdict: when each runs is
// BlueGreenApp's order (components/app.ts).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import type { IGatewaySpec } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewaySpec";
import type { IHTTPBackendRef } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPBackendRef";
import type { IHTTPRouteMatch } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRouteMatch";
import type { IHTTPRouteRule } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRouteRule";
import type { IHTTPRouteSpec } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRouteSpec";
import type { IParentReference } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ParentReference";

import { GATEWAY_NAME } from "../../config";
import { NO_SERVICE_AWAIT } from "../../lib/annotations";
import type { Manifest } from "../../lib/manifest";
import type { VersionRole } from "../../lib/version-roles";
import { RouteStatus, type RouteRef } from "../../dynamic/route-status";
import {
    ROUTING_OBJECT_ANNOTATIONS,
    routingChild,
    sharedName,
    type Http01Solver,
    type Http01Target,
    type LiveRoute,
    type Routing,
    type RoutingArgs,
} from "./shape";

const API_VERSION = "gateway.networking.k8s.io/v1";
const GATEWAY_GROUP = "gateway.networking.k8s.io";

// The Gateway and the redirect route live in the shared ingress namespace: named per stack
// (lib/shared-names.ts), as before for the default app namespace and stacks deployed before.
const gatewayName = (args: Http01Target) => sharedName(args, `${args.appName}-gateway`);
const redirectName = (args: Http01Target) => sharedName(args, `${args.appName}-redirect`);
const serviceOf = (args: RoutingArgs, version: string) => `${args.appName}-${version}`;
// Written out although it is the API's default, so the precedence below is visible in the object.
const everyPath: IHTTPRouteMatch = { path: { type: "PathPrefix", value: "/" } };

/** The app's routes attach to the HTTPS listener (or to both when plain HTTP is served). */
function gatewayRef(args: RoutingArgs): IParentReference {
    return {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        name: gatewayName(args),
        namespace: args.ingressNamespace,
        ...(args.httpsRedirect ? { sectionName: "https" } : {}),
    };
}

function backend(args: RoutingArgs, version: string, weight?: number): IHTTPBackendRef {
    return { group: "", kind: "Service", name: serviceOf(args, version), port: args.port, ...(weight === undefined ? {} : { weight }) };
}

/** What both live routes send: every serving version with its weight. */
function liveRule(args: RoutingArgs): IHTTPRouteRule {
    return { matches: [everyPath], backendRefs: args.roles.serving.map((v) => backend(args, v.name, v.weight)) };
}

/**
 * A backendRef names a Service, never a subset: each version gets a Service that selects exactly its
 * pods. The shared Service stays: in-mesh callers address it, and the mesh route hangs off it.
 */
export function versionService(args: RoutingArgs, version: VersionRole): k8s.core.v1.ServiceArgs {
    return {
        metadata: {
            name: serviceOf(args, version.name),
            namespace: args.namespace,
            labels: { ...args.podSelector, version: version.name },
            annotations: { ...NO_SERVICE_AWAIT },
        },
        spec: {
            selector: { ...args.podSelector, version: version.name },
            ports: [{ name: "http", port: args.port, targetPort: args.targetPort, appProtocol: "http" }],
        },
    };
}

/**
 * The Gateway lives next to the ingress gateway's Service and the TLS Secret: Istio binds a Gateway
 * to a Service only in its own namespace, and certificateRefs need no ReferenceGrant there. One
 * address of type Hostname makes it a manual deployment: Istio configures the Helm-installed pods
 * (same address, same identity) instead of deploying a gateway of its own.
 */
export function gateway(args: RoutingArgs): Manifest<IGatewaySpec> {
    const fromApp = { namespaces: { from: "Selector" as const, selector: { matchLabels: { "kubernetes.io/metadata.name": args.namespace } } } };
    // cert-manager puts the solver's HTTPRoute in the Issuer's namespace, the ingress namespace: with the
    // redirect, `Same` lets it attach; without, plain HTTP must take routes from both namespaces.
    const fromAppAndSolver = {
        namespaces: {
            from: "Selector" as const,
            selector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: [args.namespace, args.ingressNamespace] }] },
        },
    };
    return {
        apiVersion: API_VERSION,
        kind: "Gateway",
        metadata: { name: gatewayName(args), namespace: args.ingressNamespace },
        spec: {
            gatewayClassName: "istio",
            // The Service the gateway chart creates for the release mesh.ts installs.
            addresses: [{ type: "Hostname", value: `${GATEWAY_NAME}.${args.ingressNamespace}.svc.cluster.local` }],
            listeners: [
                {
                    name: "http",
                    port: 80,
                    protocol: "HTTP",
                    hostname: args.hostname,
                    // With the redirect, only the routes next to the Gateway may attach here: the redirect
                    // and, with ACME, the HTTP-01 solver's.
                    allowedRoutes: args.httpsRedirect ? { namespaces: { from: "Same" } } : args.acmeHttp01 === true ? fromAppAndSolver : fromApp,
                },
                {
                    name: "https",
                    port: 443,
                    protocol: "HTTPS",
                    hostname: args.hostname,
                    tls: { mode: "Terminate", certificateRefs: [{ group: "", kind: "Secret", name: args.tlsSecretName }] },
                    allowedRoutes: fromApp,
                },
            ],
        },
    };
}

/**
 * Plain HTTP answers with a redirect to HTTPS. Its one rule has no match (every path, as a prefix "/"),
 * so an ACME challenge is not redirected: the solver's route (gatewayApiHttp01Solver) on the same
 * listener and host matches `Exact` `/.well-known/acme-challenge/<token>`, and the API orders matches
 * across all routes of a listener by precedence, an Exact path first, before any prefix (HTTPRouteRule,
 * gateway-api apis/v1/httproute_types.go), whichever route is older.
 */
export function redirectRoute(args: RoutingArgs): Manifest<IHTTPRouteSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "HTTPRoute",
        metadata: { name: redirectName(args), namespace: args.ingressNamespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            parentRefs: [{ group: GATEWAY_GROUP, kind: "Gateway", name: gatewayName(args), sectionName: "http" }],
            hostnames: [args.hostname],
            rules: [{ filters: [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }] }],
        },
    };
}

/**
 * A rule per version for requests that carry `header: <version>`. Routes on one listener and host
 * merge, and the API orders their rules by match precedence: with the same path (prefix "/") and no
 * method, the rule with more header matches wins, so a request with the header takes its version's
 * rule whatever the live route says, and one without it matches no rule here. Creation order does not
 * matter (unlike Istio's merge).
 */
export function testRoute(args: RoutingArgs, header: string): Manifest<IHTTPRouteSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "HTTPRoute",
        metadata: { name: `${args.appName}-test`, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            parentRefs: [gatewayRef(args)],
            hostnames: [args.hostname],
            rules: args.roles.versions.map((v) => ({
                matches: [{ ...everyPath, headers: [{ type: "Exact", name: header, value: v.name }] }],
                backendRefs: [backend(args, v.name)],
            })),
        },
    };
}

/** The live route for the gateway's traffic. */
export function ingressRoute(args: RoutingArgs): Manifest<IHTTPRouteSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "HTTPRoute",
        metadata: { name: args.appName, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: { parentRefs: [gatewayRef(args)], hostnames: [args.hostname], rules: [liveRule(args)] },
    };
}

/**
 * The live route for in-mesh callers of the shared Service, with the same weights. A route of its
 * own: the API leaves a route with both a Gateway and a Service parent undefined (GEP-1426), and mesh
 * routes ignore hostnames.
 */
export function meshRoute(args: RoutingArgs): Manifest<IHTTPRouteSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "HTTPRoute",
        metadata: { name: `${args.appName}-mesh`, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: { parentRefs: [{ group: "", kind: "Service", name: args.appName, port: args.port }], rules: [liveRule(args)] },
    };
}

/**
 * cert-manager's Gateway API solver: for each challenge it creates an HTTPRoute (in the Issuer's
 * namespace, the ingress namespace) on the Gateway's plain-HTTP listener, which the listener admits
 * (see gateway()) and which wins over the redirect (see redirectRoute()). cert-manager must run with
 * its Gateway API support on (components/tls.ts turns it on when it installs cert-manager).
 */
export function gatewayApiHttp01Solver(target: Http01Target): Http01Solver {
    return {
        gatewayHTTPRoute: {
            parentRefs: [{ group: GATEWAY_GROUP, kind: "Gateway", name: gatewayName(target), namespace: target.ingressNamespace, sectionName: "http" }],
        },
    };
}

/** A route as the status wait names it: where it is and the generation the API server gave this update's write. */
function routeRef(route: k8s.apiextensions.CustomResource): pulumi.Output<RouteRef> {
    return route.metadata.apply((m) => ({ namespace: m.namespace ?? "", name: m.name ?? "", generation: m.generation ?? 0 }));
}

export class GatewayApiRouting extends pulumi.ComponentResource implements Routing {
    public readonly services: readonly k8s.core.v1.Service[];
    public readonly gateway: k8s.apiextensions.CustomResource;
    public readonly ready: readonly pulumi.Resource[];
    /** The HTTPRoutes written before the live ones (redirect, test route): Istio's verdict covers them too. */
    private readonly routes: readonly k8s.apiextensions.CustomResource[];
    // Kept for goLive, whose children are named and configured like the constructor's.
    private readonly childName: string;
    private readonly args: RoutingArgs;

    constructor(name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:routing:GatewayApiRouting", name, {}, opts);
        this.childName = name;
        this.args = args;
        const CustomResource = k8s.apiextensions.CustomResource;
        this.services = args.roles.versions.map((v) => new k8s.core.v1.Service(`${name}-${v.name}-service`, versionService(args, v), routingChild(this, args)));
        this.gateway = new CustomResource(`${name}-gateway`, gateway(args), routingChild(this, args));
        const routes: k8s.apiextensions.CustomResource[] = [];
        if (args.httpsRedirect) {
            routes.push(new CustomResource(`${name}-redirect`, redirectRoute(args), routingChild(this, args, [this.gateway])));
        }
        if (args.testRouteHeader !== undefined) {
            routes.push(
                new CustomResource(`${name}-test-route`, testRoute(args, args.testRouteHeader), routingChild(this, args, [this.gateway, ...this.services])),
            );
        }
        this.routes = routes;
        this.ready = [this.gateway, ...this.services, ...routes];
    }

    /**
     * The ingress route, then the mesh route (waiting for it is waiting for both), then Istio's verdict
     * on every HTTPRoute this update wrote (dynamic/route-status.ts), unless it is not waited for.
     */
    goLive(after: readonly pulumi.Resource[]): LiveRoute {
        const [name, args] = [this.childName, this.args];
        const CustomResource = k8s.apiextensions.CustomResource;
        const afterReady = [...this.ready, ...after];
        const ingress = new CustomResource(`${name}-route`, ingressRoute(args), routingChild(this, args, afterReady));
        const live = new CustomResource(`${name}-mesh-route`, meshRoute(args), routingChild(this, args, [...afterReady, args.service, ingress]));
        const settled =
            args.statusWait === undefined
                ? live
                : new RouteStatus(
                      `${name}-route-status`,
                      {
                          routes: pulumi.all([...this.routes, ingress, live].map(routeRef)),
                          timeoutSeconds: args.statusWait.timeoutSeconds,
                          kubeconfig: args.statusWait.kubeconfig === undefined ? undefined : pulumi.secret(args.statusWait.kubeconfig),
                          context: args.statusWait.context,
                      },
                      { parent: this, dependsOn: [live] },
                  );
        this.registerOutputs({ services: this.services, gateway: this.gateway, ingressRoute: ingress, live, settled });
        return { live, settled };
    }
}
