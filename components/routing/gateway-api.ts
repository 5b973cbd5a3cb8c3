// Routing with the Kubernetes Gateway API (gateway.networking.k8s.io/v1), implemented by Istio: a
// Gateway bound to the Helm-installed ingress gateway, one Service per version (the API has no
// subsets), a test HTTPRoute (a header reaches any version), and the live routes: one HTTPRoute on the
// Gateway for the gateway's traffic, one on the shared Service (GAMMA) for in-mesh callers. A switch
// changes those two HTTPRoutes and nothing else.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";

import { ROUTING_OBJECT_ANNOTATIONS, type RoutingFactory } from "./shape";

/**
 * The Service of the ingress gateway the Gateway binds to: the one the `gateway` chart creates for the
 * release mesh.ts installs, and the one the Istio API's Gateway selects the pods of.
 */
export const GATEWAY_SERVICE = "istio-ingressgateway";
const API_VERSION = "gateway.networking.k8s.io/v1";
const GATEWAY_GROUP = "gateway.networking.k8s.io";

export const gatewayApiRouting: RoutingFactory = (name, args, opts) => {
    const ns = args.namespace;
    const first = { parent: opts.parent, dependsOn: [...opts.dependsOn] };
    const hostnames = [args.hostname];
    const serviceOf = (version: string) => `${args.appName}-${version}`;

    // A backendRef names a Service, never a subset: each version gets a Service that selects exactly
    // its pods. The shared Service stays: in-mesh callers address it, and the mesh route hangs off it.
    const services = args.versions.map(
        (version) =>
            new k8s.core.v1.Service(
                `${name}-${version}-service`,
                {
                    metadata: { name: serviceOf(version), namespace: ns, labels: { ...args.podSelector, version } },
                    spec: {
                        selector: { ...args.podSelector, version },
                        ports: [{ name: "http", port: args.port, targetPort: args.targetPort, appProtocol: "http" }],
                    },
                },
                first,
            ),
    );

    // The Gateway lives next to the ingress gateway's Service and the TLS Secret: Istio binds a Gateway
    // to a Service only in its own namespace, and certificateRefs need no ReferenceGrant there.
    // One address of type Hostname makes it a manual deployment: Istio configures the Helm-installed
    // pods (same address, same identity) instead of deploying a gateway of its own.
    const gatewayName = `${args.appName}-gateway`;
    const fromApp = { namespaces: { from: "Selector", selector: { matchLabels: { "kubernetes.io/metadata.name": ns } } } };
    const gateway = new k8s.apiextensions.CustomResource(
        `${name}-gateway`,
        {
            apiVersion: API_VERSION,
            kind: "Gateway",
            metadata: { name: gatewayName, namespace: args.ingressNamespace },
            spec: {
                gatewayClassName: "istio",
                addresses: [{ type: "Hostname", value: `${GATEWAY_SERVICE}.${args.ingressNamespace}.svc.cluster.local` }],
                listeners: [
                    {
                        name: "http",
                        port: 80,
                        protocol: "HTTP",
                        hostname: args.hostname,
                        // With the redirect, only the redirect route (next to the Gateway) may attach here.
                        allowedRoutes: args.httpsRedirect ? { namespaces: { from: "Same" } } : fromApp,
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
        },
        first,
    );
    const ready: pulumi.Resource[] = [gateway, ...services];

    if (args.httpsRedirect) {
        ready.push(
            new k8s.apiextensions.CustomResource(
                `${name}-redirect`,
                {
                    apiVersion: API_VERSION,
                    kind: "HTTPRoute",
                    metadata: { name: `${args.appName}-redirect`, namespace: args.ingressNamespace, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: {
                        parentRefs: [{ group: GATEWAY_GROUP, kind: "Gateway", name: gatewayName, sectionName: "http" }],
                        hostnames,
                        rules: [{ filters: [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }] }],
                    },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, gateway] },
            ),
        );
    }

    // The app's routes attach to the HTTPS listener (or to both when plain HTTP is served).
    const gatewayRef = {
        group: GATEWAY_GROUP,
        kind: "Gateway",
        name: gatewayName,
        namespace: args.ingressNamespace,
        ...(args.httpsRedirect ? { sectionName: "https" } : {}),
    };
    // Written out although it is the API's default, so the precedence below is visible in the object.
    const everyPath = { path: { type: "PathPrefix", value: "/" } };
    const backend = (version: string, weight?: number) => ({
        group: "",
        kind: "Service",
        name: serviceOf(version),
        port: args.port,
        ...(weight === undefined ? {} : { weight }),
    });

    if (args.testRouteHeader !== undefined) {
        const header = args.testRouteHeader;
        // Routes on one listener and host merge, and the API orders their rules by match precedence:
        // with the same path (prefix "/") and no method, the rule with more header matches wins, so a
        // request with the header takes its version's rule whatever the live route says, and one
        // without it matches no rule here. Creation order does not matter (unlike Istio's merge).
        ready.push(
            new k8s.apiextensions.CustomResource(
                `${name}-test-route`,
                {
                    apiVersion: API_VERSION,
                    kind: "HTTPRoute",
                    metadata: { name: `${args.appName}-test`, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: {
                        parentRefs: [gatewayRef],
                        hostnames,
                        rules: args.versions.map((version) => ({
                            matches: [{ ...everyPath, headers: [{ type: "Exact", name: header, value: version }] }],
                            backendRefs: [backend(version)],
                        })),
                    },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, gateway, ...services] },
            ),
        );
    }

    const liveRule = {
        matches: [everyPath],
        backendRefs: args.versions.filter((v) => args.weights.has(v)).map((v) => backend(v, args.weights.get(v))),
    };
    return {
        ready,
        live: (after) => {
            const ingress = new k8s.apiextensions.CustomResource(
                `${name}-route`,
                {
                    apiVersion: API_VERSION,
                    kind: "HTTPRoute",
                    metadata: { name: args.appName, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: { parentRefs: [gatewayRef], hostnames, rules: [liveRule] },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, ...ready, ...after] },
            );
            // In-mesh callers of the shared Service follow the same weights. A route of its own: the
            // API leaves a route with both a Gateway and a Service parent undefined (GEP-1426), and
            // mesh routes ignore hostnames. Created after the ingress route, so waiting for it is
            // waiting for both.
            return new k8s.apiextensions.CustomResource(
                `${name}-mesh-route`,
                {
                    apiVersion: API_VERSION,
                    kind: "HTTPRoute",
                    metadata: { name: `${args.appName}-mesh`, namespace: ns, annotations: { ...ROUTING_OBJECT_ANNOTATIONS } },
                    spec: {
                        parentRefs: [{ group: "", kind: "Service", name: args.appName, port: args.port }],
                        rules: [liveRule],
                    },
                },
                { parent: opts.parent, dependsOn: [...opts.dependsOn, ...ready, ...after, args.service, ingress] },
            );
        },
    };
};
