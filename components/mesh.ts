// The Istio control plane and ingress gateway, from Istio's official Helm charts, in the order the
// charts need: base (the CRDs) before istiod (which validates against them) before the gateway
// (which needs istiod to inject its proxy configuration). Helm waits for base and istiod; the gateway's
// release does not wait (Helm would wait for a load-balancer address too), and DeploymentReady waits for
// its pods instead: what a switch needs, on any cluster, with or without a load balancer.
import * as path from "node:path";

import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import versions from "../versions.json";
import { GATEWAY_NAME, ISTIO_CHART_REPOSITORY, type ChartSource, type GatewayServiceType } from "../config";
import { DeploymentReady, type DeploymentReadyArgs } from "../dynamic/deployment-ready";

/** The Istio release every chart is pinned to (versions.json; the tests load this release's CRDs). */
export const ISTIO_VERSION: string = versions.istio;

export interface IstioMeshArgs {
    /** Namespace of the control plane. Default: "istio-system". */
    readonly systemNamespace?: string;
    /** Namespace of the ingress gateway. Default: "istio-ingress". */
    readonly ingressNamespace?: string;
    /** Chart version of base, istiod and gateway. Default: ISTIO_VERSION. */
    readonly version?: string;
    /**
     * Where the charts come from: Istio's repository (or a mirror of it), or a local directory with
     * `base/`, `istiod/` and `gateway/` (for example from `helm pull --untar`), for clusters without
     * internet. Default: Istio's own repository (ISTIO_CHART_REPOSITORY).
     */
    readonly charts?: ChartSource;
    /** Type of the gateway's Service. Default: "LoadBalancer". */
    readonly gatewayServiceType?: GatewayServiceType;
    /** The cluster the wait for the gateway's pods reads (the stack's Kubernetes provider's). Default: KUBECONFIG. */
    readonly cluster?: Pick<DeploymentReadyArgs, "kubeconfig" | "context">;
    /** How long the first install (or an upgrade) of the gateway may take to roll out, in seconds. Default: 300 (Helm's). */
    readonly gatewayTimeoutSeconds?: number;
}

export class IstioMesh extends pulumi.ComponentResource {
    /** The CRD-installing release; anything that creates Istio objects depends on it (through the component). */
    public readonly base: k8s.helm.v3.Release;
    public readonly istiod: k8s.helm.v3.Release;
    public readonly gateway: k8s.helm.v3.Release;
    /** Done when the gateway's pods have rolled out; anything that needs a serving gateway depends on it (through the component). */
    public readonly gatewayReady: DeploymentReady;
    public readonly ingressNamespace: pulumi.Output<string>;

    constructor(name: string, args: IstioMeshArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:mesh:IstioMesh", name, {}, opts);
        const version = args.version ?? ISTIO_VERSION;
        const source = args.charts ?? { kind: "repository", url: ISTIO_CHART_REPOSITORY };
        // A local chart is used as it is: its own version is whatever was pulled.
        const chart = (name: string) =>
            source.kind === "repository" ? { chart: name, version, repositoryOpts: { repo: source.url } } : { chart: path.join(source.path, name) };

        const system = new k8s.core.v1.Namespace(`${name}-system`, { metadata: { name: args.systemNamespace ?? "istio-system" } }, { parent: this });
        const ingress = new k8s.core.v1.Namespace(
            `${name}-ingress`,
            // The gateway's own proxy is configured by the chart, not by sidecar injection.
            { metadata: { name: args.ingressNamespace ?? "istio-ingress" } },
            { parent: this },
        );

        this.base = new k8s.helm.v3.Release(
            `${name}-base`,
            {
                ...chart("base"),
                namespace: system.metadata.name,
                values: { defaultRevision: "default" },
            },
            { parent: this },
        );
        this.istiod = new k8s.helm.v3.Release(
            `${name}-istiod`,
            { ...chart("istiod"), namespace: system.metadata.name },
            { parent: this, dependsOn: [this.base] },
        );
        this.gateway = new k8s.helm.v3.Release(
            `${name}-gateway`,
            {
                ...chart("gateway"),
                // Not an argument: the Gateway API's address and the mesh's allowed principal are built from it.
                name: GATEWAY_NAME,
                namespace: ingress.metadata.name,
                values: { service: { type: args.gatewayServiceType ?? "LoadBalancer" } },
                skipAwait: true,
            },
            { parent: this, dependsOn: [this.istiod] },
        );
        // The chart names its Deployment after the release.
        this.gatewayReady = new DeploymentReady(
            `${name}-gateway-ready`,
            {
                namespace: this.gateway.status.namespace,
                name: this.gateway.status.name,
                revision: this.gateway.status.revision,
                timeoutSeconds: args.gatewayTimeoutSeconds ?? 300,
                ...args.cluster,
            },
            { parent: this, dependsOn: [this.gateway] },
        );
        this.ingressNamespace = ingress.metadata.name;
        this.registerOutputs({
            base: this.base,
            istiod: this.istiod,
            gateway: this.gateway,
            gatewayReady: this.gatewayReady,
            ingressNamespace: this.ingressNamespace,
        });
    }
}
