// Routing with Istio's own APIs: a Gateway on the Helm-installed ingress gateway, a DestinationRule
// with one subset per version, a test-route VirtualService (a header reaches any version), and the live
// VirtualService (the gateway's traffic and in-mesh callers go to activeVersion, or the
// split). One builder per object; each spec is typed by the upstream Istio model at compile time.
// The constructor creates what the gate goes through, `goLive` the live route: when each runs is
// BlueGreenApp's order (components/app.ts).
//
// ACME HTTP-01 (issuer acme): cert-manager's ingress solver makes an Ingress for each challenge, and
// Istio serves Ingresses of a class whose controller is istio.io/ingress-controller on the gateway pods
// labelled istio=ingressgateway (mesh config ingressSelector's default), as a Gateway with a port-80
// server for every host and a VirtualService with the challenge's Exact path. That is why this API keeps
// the ingress solver, with an IngressClass of its own: cert-manager's Gateway API solver would need the
// Gateway API beside the Istio API. Istio merges every port-80 server's routes for one host into one
// virtual host, and a server with `tls.httpsRedirect` marks that whole virtual host require-TLS, the
// challenge included (buildGatewayHTTPRouteConfig in pilot/pkg/networking/core/gateway.go). So with
// ACME the redirect is a route instead: a Gateway of its own for port 80 (the live and test routes stay
// on the HTTPS one) and a VirtualService whose one rule redirects without a match. Istio moves such
// catch-all rules after every other rule of the virtual host (SortVHostRoutes), so the solver's Exact
// path goes first whichever VirtualService is older. A rule of ours that exempted the prefix
// `/.well-known/acme-challenge/` would do the opposite: older than the solver's, it would come first and
// shadow it. Stacks on the selfsigned issuer keep `tls.httpsRedirect` and objects exactly as before.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import type { IDestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import type { IGateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import type { IVirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";

import type { Manifest } from "../../lib/manifest";
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

const API_VERSION = "networking.istio.io/v1";

type VirtualServiceSpec = NonNullable<IVirtualService["spec"]>;
type HttpRouteDestination = NonNullable<NonNullable<VirtualServiceSpec["http"]>[number]["route"]>[number];

const serviceHost = (args: RoutingArgs) => `${args.appName}.${args.namespace}.svc.cluster.local`;
// The Gateways live in the app's namespace (the Gateway API's Gateway does not): two stacks with app
// namespaces of their own never share these names.
const gatewayName = (args: RoutingArgs) => `${args.appName}-gateway`;
const httpGatewayName = (args: RoutingArgs) => `${args.appName}-http-gateway`;
/** How the VirtualServices name the Gateway. */
const gatewayRef = (args: RoutingArgs) => `${args.namespace}/${gatewayName(args)}`;
/** Cluster-scoped, so named per stack (lib/shared-names.ts); Istio reads its controller, not its name. */
const ingressClassName = (target: Http01Target) => sharedName(target, "istio");
/** The redirect is a route of its own (see the header) when ACME challenges must pass port 80. */
const redirectsByRoute = (args: RoutingArgs) => args.httpsRedirect && args.acmeHttp01 === true;

function subsetRoute(args: RoutingArgs, version: string, weight?: number): HttpRouteDestination {
    return {
        destination: { host: serviceHost(args), subset: version, port: { number: args.port } },
        ...(weight === undefined ? {} : { weight }),
    };
}

/** One subset per version, selected by the pods' `version` label. */
export function destinationRule(args: RoutingArgs): Manifest<NonNullable<IDestinationRule["spec"]>> {
    return {
        apiVersion: API_VERSION,
        kind: "DestinationRule",
        metadata: { name: args.appName, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            host: serviceHost(args),
            subsets: args.roles.versions.map((v) => ({ name: v.name, labels: { version: v.name } })),
        },
    };
}

type GatewayServer = NonNullable<NonNullable<IGateway["spec"]>["servers"]>[number];

/** Plain HTTP for the gateway host; `redirect`: Istio's own redirect of the whole host to HTTPS. */
const httpServer = (args: RoutingArgs, redirect: boolean): GatewayServer => ({
    port: { number: 80, name: "http", protocol: "HTTP" },
    hosts: [args.hostname],
    ...(redirect ? { tls: { httpsRedirect: true } } : {}),
});

/**
 * The gateway host on the Helm-installed ingress gateway: HTTP (redirected, unless told not to) and
 * HTTPS; HTTPS only when the redirect is a route (httpGateway has port 80 then).
 */
export function gateway(args: RoutingArgs): Manifest<NonNullable<IGateway["spec"]>> {
    const hosts = [args.hostname];
    return {
        apiVersion: API_VERSION,
        kind: "Gateway",
        metadata: { name: gatewayName(args), namespace: args.namespace },
        spec: {
            selector: { ...args.gatewaySelector },
            servers: [
                ...(redirectsByRoute(args) ? [] : [httpServer(args, args.httpsRedirect)]),
                {
                    port: { number: 443, name: "https", protocol: "HTTPS" },
                    hosts,
                    // Istio reads credentialName from the gateway pods' own namespace.
                    tls: { mode: "SIMPLE", credentialName: args.tlsSecretName },
                },
            ],
        },
    };
}

/** Port 80 of the gateway host, on its own so that only the redirect route is bound to it. */
export function httpGateway(args: RoutingArgs): Manifest<NonNullable<IGateway["spec"]>> {
    return {
        apiVersion: API_VERSION,
        kind: "Gateway",
        metadata: { name: httpGatewayName(args), namespace: args.namespace },
        spec: { selector: { ...args.gatewaySelector }, servers: [httpServer(args, false)] },
    };
}

/** Every plain-HTTP request that no other rule of the host takes (an ACME challenge) goes to HTTPS. */
export function redirectRoute(args: RoutingArgs): Manifest<VirtualServiceSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "VirtualService",
        metadata: { name: `${args.appName}-https-redirect`, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            hosts: [args.hostname],
            gateways: [`${args.namespace}/${httpGatewayName(args)}`],
            // No match: a catch-all, which Istio puts after the solver's Exact path (see the header).
            http: [{ name: "https-redirect", redirect: { scheme: "https", redirectCode: 301 } }],
        },
    };
}

/** The class the ACME solver's Ingresses name, served by Istio's ingress controller. */
export function ingressClass(args: RoutingArgs): k8s.networking.v1.IngressClassArgs {
    return { metadata: { name: ingressClassName(args) }, spec: { controller: "istio.io/ingress-controller" } };
}

/** cert-manager's ingress solver, with the class this component creates (see the header). */
export function istioHttp01Solver(target: Http01Target): Http01Solver {
    return { ingress: { ingressClassName: ingressClassName(target) } };
}

/** A rule per version for requests that carry `header: <version>`; no catch-all. */
export function testRoute(args: RoutingArgs, header: string): Manifest<VirtualServiceSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "VirtualService",
        metadata: { name: `${args.appName}-test`, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            hosts: [args.hostname],
            gateways: [gatewayRef(args)],
            http: args.roles.versions.map((v) => ({
                name: `test-${v.name}`,
                match: [{ headers: { [header]: { exact: v.name } } }],
                route: [subsetRoute(args, v.name)],
            })),
        },
    };
}

/** The live route: every serving version with its weight, for the gateway host and the Service host. */
export function liveRoute(args: RoutingArgs): Manifest<VirtualServiceSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "VirtualService",
        metadata: { name: args.appName, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            // The gateway host for ingress traffic, the Service host for in-mesh callers.
            hosts: [args.hostname, serviceHost(args)],
            gateways: [gatewayRef(args), "mesh"],
            http: [{ name: "live", route: args.roles.serving.map((v) => subsetRoute(args, v.name, v.weight)) }],
        },
    };
}

export class IstioRouting extends pulumi.ComponentResource implements Routing {
    public readonly destinationRule: k8s.apiextensions.CustomResource;
    public readonly gateway: k8s.apiextensions.CustomResource;
    /** Port 80 and its redirect route, when the redirect must let ACME challenges through; else undefined. */
    public readonly httpGateway: k8s.apiextensions.CustomResource | undefined;
    public readonly redirectRoute: k8s.apiextensions.CustomResource | undefined;
    /** The class of the ACME solver's Ingresses (issuer acme); else undefined. */
    public readonly ingressClass: k8s.networking.v1.IngressClass | undefined;
    public readonly testRoute: k8s.apiextensions.CustomResource | undefined;
    public readonly ready: readonly pulumi.Resource[];
    // Kept for goLive, whose children are named and configured like the constructor's.
    private readonly childName: string;
    private readonly args: RoutingArgs;

    constructor(name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:routing:IstioRouting", name, {}, opts);
        this.childName = name;
        this.args = args;
        this.destinationRule = new k8s.apiextensions.CustomResource(`${name}-subsets`, destinationRule(args), routingChild(this, args));
        const http: pulumi.Resource[] = [];
        if (args.acmeHttp01 === true) {
            this.ingressClass = new k8s.networking.v1.IngressClass(`${name}-ingress-class`, ingressClass(args), routingChild(this, args));
        }
        if (redirectsByRoute(args)) {
            this.httpGateway = new k8s.apiextensions.CustomResource(`${name}-http-gateway`, httpGateway(args), routingChild(this, args));
            this.redirectRoute = new k8s.apiextensions.CustomResource(
                `${name}-https-redirect`,
                redirectRoute(args),
                routingChild(this, args, [this.httpGateway]),
            );
            http.push(this.httpGateway, this.redirectRoute);
        }
        // On a stack that moves to the route redirect, the Gateway gives up port 80 only once the new
        // port-80 Gateway and its redirect are there: plain HTTP is redirected throughout.
        this.gateway = new k8s.apiextensions.CustomResource(`${name}-gateway`, gateway(args), routingChild(this, args, http));
        const ready: pulumi.Resource[] = [this.destinationRule, this.gateway, ...http];
        if (args.testRouteHeader !== undefined) {
            // Istio merges VirtualServices bound to one gateway host in creation order; this one has no
            // catch-all and is always created before the live route, so its header matches come first.
            this.testRoute = new k8s.apiextensions.CustomResource(`${name}-test-route`, testRoute(args, args.testRouteHeader), routingChild(this, args, ready));
            ready.push(this.testRoute);
        }
        this.ready = ready;
    }

    /** Istio reports nothing on VirtualServices by default: the live route, once written, is as settled as it gets. */
    goLive(after: readonly pulumi.Resource[]): LiveRoute {
        const live = new k8s.apiextensions.CustomResource(
            `${this.childName}-route`,
            liveRoute(this.args),
            routingChild(this, this.args, [...this.ready, ...after]),
        );
        this.registerOutputs({
            destinationRule: this.destinationRule,
            gateway: this.gateway,
            httpGateway: this.httpGateway,
            redirectRoute: this.redirectRoute,
            ingressClass: this.ingressClass,
            testRoute: this.testRoute,
            live,
        });
        return { live, settled: live };
    }
}
