// Routing with Istio's own APIs: a Gateway on the Helm-installed ingress gateway, a DestinationRule
// with one subset per version, a test-route VirtualService (a header reaches any version), and the live
// VirtualService (the gateway's traffic and in-mesh callers go to activeVersion, or the
// split). One builder per object; each spec is typed by the upstream Istio model at compile time.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import type { IDestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import type { IGateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import type { IVirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";

import type { Manifest } from "../manifest";
import { ROUTING_OBJECT_ANNOTATIONS, routingChild, type Routing, type RoutingArgs } from "./shape";

const API_VERSION = "networking.istio.io/v1";

type VirtualServiceSpec = NonNullable<IVirtualService["spec"]>;
type HttpRouteDestination = NonNullable<NonNullable<VirtualServiceSpec["http"]>[number]["route"]>[number];

const serviceHost = (args: RoutingArgs) => `${args.appName}.${args.namespace}.svc.cluster.local`;
const gatewayName = (args: RoutingArgs) => `${args.appName}-gateway`;
/** How the VirtualServices name the Gateway. */
const gatewayRef = (args: RoutingArgs) => `${args.namespace}/${gatewayName(args)}`;

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
            subsets: args.plan.versions.map((v) => ({ name: v.name, labels: { version: v.name } })),
        },
    };
}

/** The gateway host on the Helm-installed ingress gateway: HTTP (redirected, unless told not to) and HTTPS. */
export function gateway(args: RoutingArgs): Manifest<NonNullable<IGateway["spec"]>> {
    const hosts = [args.hostname];
    return {
        apiVersion: API_VERSION,
        kind: "Gateway",
        metadata: { name: gatewayName(args), namespace: args.namespace },
        spec: {
            selector: { ...args.gatewaySelector },
            servers: [
                {
                    port: { number: 80, name: "http", protocol: "HTTP" },
                    hosts,
                    ...(args.httpsRedirect ? { tls: { httpsRedirect: true } } : {}),
                },
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

/** A rule per version for requests that carry `header: <version>`; no catch-all. */
export function testRoute(args: RoutingArgs, header: string): Manifest<VirtualServiceSpec> {
    return {
        apiVersion: API_VERSION,
        kind: "VirtualService",
        metadata: { name: `${args.appName}-test`, namespace: args.namespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
        spec: {
            hosts: [args.hostname],
            gateways: [gatewayRef(args)],
            http: args.plan.versions.map((v) => ({
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
            http: [{ name: "live", route: args.plan.serving.map((v) => subsetRoute(args, v.name, v.weight)) }],
        },
    };
}

export class IstioRouting extends pulumi.ComponentResource implements Routing {
    public readonly destinationRule: k8s.apiextensions.CustomResource;
    public readonly gateway: k8s.apiextensions.CustomResource;
    public readonly testRoute: k8s.apiextensions.CustomResource | undefined;
    public readonly live: k8s.apiextensions.CustomResource;
    /** Istio reports nothing on VirtualServices by default: the live route, once written, is as settled as it gets. */
    public get settled(): k8s.apiextensions.CustomResource {
        return this.live;
    }

    constructor(name: string, args: RoutingArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:routing:IstioRouting", name, {}, opts);
        this.destinationRule = new k8s.apiextensions.CustomResource(`${name}-subsets`, destinationRule(args), routingChild(this, args));
        this.gateway = new k8s.apiextensions.CustomResource(`${name}-gateway`, gateway(args), routingChild(this, args));
        const ready: pulumi.Resource[] = [this.destinationRule, this.gateway];
        if (args.testRouteHeader !== undefined) {
            // Istio merges VirtualServices bound to one gateway host in creation order; this one has no
            // catch-all and is always created before the live route, so its header matches come first.
            this.testRoute = new k8s.apiextensions.CustomResource(`${name}-test-route`, testRoute(args, args.testRouteHeader), routingChild(this, args, ready));
            ready.push(this.testRoute);
        }
        this.live = new k8s.apiextensions.CustomResource(`${name}-route`, liveRoute(args), routingChild(this, args, [...ready, ...args.beforeLive(ready)]));
        this.registerOutputs({ destinationRule: this.destinationRule, gateway: this.gateway, testRoute: this.testRoute, live: this.live });
    }
}
