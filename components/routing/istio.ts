// Routing with Istio's own APIs: a Gateway on the Helm-installed ingress gateway, a DestinationRule
// with one subset per version, a test-route VirtualService (a header reaches any version) and the
// live VirtualService (the gateway's traffic and in-mesh callers go to activeVersion, or the split).
import * as k8s from "@pulumi/kubernetes";

import { ROUTING_OBJECT_ANNOTATIONS, type RoutingFactory } from "./shape";

export const istioRouting: RoutingFactory = (name, args, opts) => {
    const ns = args.namespace;
    const first = { parent: opts.parent, dependsOn: [...opts.dependsOn] };
    const serviceHost = `${args.appName}.${ns}.svc.cluster.local`;
    const hosts = [args.hostname];

    const destinationRule = new k8s.apiextensions.CustomResource(
        `${name}-subsets`,
        {
            apiVersion: "networking.istio.io/v1",
            kind: "DestinationRule",
            metadata: { name: args.appName, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
            spec: {
                host: serviceHost,
                subsets: args.versions.map((v) => ({ name: v, labels: { version: v } })),
            },
        },
        first,
    );

    const gatewayName = `${args.appName}-gateway`;
    const gateway = new k8s.apiextensions.CustomResource(
        `${name}-gateway`,
        {
            apiVersion: "networking.istio.io/v1",
            kind: "Gateway",
            metadata: { name: gatewayName, namespace: ns },
            spec: {
                selector: args.gatewaySelector,
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
        },
        first,
    );
    const gatewayRef = `${ns}/${gatewayName}`;
    const subsetRoute = (version: string, weight?: number) => ({
        destination: { host: serviceHost, subset: version, port: { number: args.port } },
        ...(weight === undefined ? {} : { weight }),
    });

    const ready: k8s.apiextensions.CustomResource[] = [destinationRule, gateway];
    if (args.testRouteHeader !== undefined) {
        const header = args.testRouteHeader;
        // Istio merges VirtualServices bound to one gateway host in creation order; this one has no
        // catch-all and is always created before the live route, so its header matches come first.
        ready.push(
            new k8s.apiextensions.CustomResource(
                `${name}-test-route`,
                {
                    apiVersion: "networking.istio.io/v1",
                    kind: "VirtualService",
                    metadata: { name: `${args.appName}-test`, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: {
                        hosts,
                        gateways: [gatewayRef],
                        http: args.versions.map((v) => ({
                            name: `test-${v}`,
                            match: [{ headers: { [header]: { exact: v } } }],
                            route: [subsetRoute(v)],
                        })),
                    },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, destinationRule, gateway] },
            ),
        );
    }

    return {
        ready,
        live: (after) =>
            new k8s.apiextensions.CustomResource(
                `${name}-route`,
                {
                    apiVersion: "networking.istio.io/v1",
                    kind: "VirtualService",
                    metadata: { name: args.appName, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: {
                        // The gateway host for ingress traffic, the Service host for in-mesh callers.
                        hosts: [args.hostname, serviceHost],
                        gateways: [gatewayRef, "mesh"],
                        http: [
                            {
                                name: "live",
                                route: args.versions
                                    .filter((v) => args.weights.has(v))
                                    .map((v) => subsetRoute(v, args.weights.get(v))),
                            },
                        ],
                    },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, ...ready, ...after] },
            ),
    };
};
