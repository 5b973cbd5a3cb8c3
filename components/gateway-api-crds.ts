// The Kubernetes Gateway API's CRDs (standard channel) for routingApi gateway-api: the release pinned in
// versions.json, fetched from GitHub, or the same manifest from a mirror URL or a local file (air-gapped
// clusters, tests). Everything that creates Gateway API objects depends on this component.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import versions from "../versions.json";
import type { GatewayApiCrdsSource } from "../config";

/** The sigs.k8s.io/gateway-api release whose CRDs the program installs. */
export const GATEWAY_API_VERSION: string = versions.gatewayApi;

/** The standard channel's single-file install of a release (CRDs and their safe-upgrade policy). */
export function releaseManifestUrl(version: string = GATEWAY_API_VERSION): string {
    return `https://github.com/kubernetes-sigs/gateway-api/releases/download/${version}/standard-install.yaml`;
}

export interface GatewayApiCrdsArgs {
    /** Where the manifest comes from. Default: the pinned release. */
    readonly source?: GatewayApiCrdsSource;
}

export class GatewayApiCrds extends pulumi.ComponentResource {
    /** The URL or file path the manifest is read from (a relative path is the project directory's). */
    public readonly manifest: string;
    public readonly install: k8s.yaml.v2.ConfigFile;

    constructor(name: string, args: GatewayApiCrdsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:gateway-api:GatewayApiCrds", name, {}, opts);
        const source = args.source ?? { kind: "release" };
        this.manifest = source.kind === "release" ? releaseManifestUrl() : source.location;
        // The provider reads the manifest and registers each object as a child (CRDs are awaited
        // until Established), so a dependsOn on this component waits for all of them.
        this.install = new k8s.yaml.v2.ConfigFile(
            `${name}-standard-install`,
            { file: this.manifest },
            {
                parent: this,
                // CRDs belong to the whole cluster: deleting one deletes every object of its kind, ours
                // and everyone else's. When this stack stops installing them (routingApi back to istio,
                // gatewayApiCrds none), they stay, as Helm leaves the CRDs it installed. A transform,
                // because the provider creates the objects and retainOnDelete is not inherited.
                transforms: [({ props, opts: childOpts }) => ({ props, opts: { ...childOpts, retainOnDelete: true } })],
            },
        );
        this.registerOutputs({ manifest: this.manifest, install: this.install });
    }
}
