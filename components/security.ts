// The mesh security of the app's namespace, beside the app: mutual TLS required for every workload
// (PeerAuthentication), and only the listed identities may call the app's pods (AuthorizationPolicy).
// One builder per object; each spec is typed by the upstream Istio model at compile time.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy";
import type { IPeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication";

import type { Manifest } from "../lib/manifest";

const API_VERSION = "security.istio.io/v1";

export interface MeshSecurityArgs {
    /** Namespace of the app; the objects go there. */
    readonly namespace: string;
    /** Labels of the app's pods (every version's): who the AuthorizationPolicy protects. */
    readonly podSelector: Readonly<Record<string, string>>;
    /** Name the AuthorizationPolicy is named from. */
    readonly appName: string;
    /** SPIFFE principals allowed to call the app (the ingress gateway's among them). */
    readonly allowedPrincipals: readonly string[];
    /** What must exist first: the namespace and Istio's CRDs. Default: none. */
    readonly prerequisites?: readonly pulumi.Resource[];
    /**
     * The resource these objects were children of before they had a component of their own (the
     * app): their aliases name it, so that a stack deployed before the move keeps them. Default:
     * none (nothing moved).
     */
    readonly formerParent?: pulumi.Resource;
}

/** Every workload of the namespace accepts mutual TLS only. */
export function peerAuthentication(args: MeshSecurityArgs): Manifest<NonNullable<IPeerAuthentication["spec"]>> {
    return {
        apiVersion: API_VERSION,
        kind: "PeerAuthentication",
        metadata: { name: "default", namespace: args.namespace },
        spec: { mtls: { mode: "STRICT" } },
    };
}

/** Only the allowed principals reach the app's pods. */
export function authorizationPolicy(args: MeshSecurityArgs): Manifest<NonNullable<IAuthorizationPolicy["spec"]>> {
    return {
        apiVersion: API_VERSION,
        kind: "AuthorizationPolicy",
        metadata: { name: `${args.appName}-callers`, namespace: args.namespace },
        spec: {
            selector: { matchLabels: { ...args.podSelector } },
            action: "ALLOW",
            rules: [{ from: [{ source: { principals: [...args.allowedPrincipals] } }] }],
        },
    };
}

export class MeshSecurity extends pulumi.ComponentResource {
    public readonly peerAuthentication: k8s.apiextensions.CustomResource;
    public readonly authorizationPolicy: k8s.apiextensions.CustomResource;

    constructor(name: string, args: MeshSecurityArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:security:MeshSecurity", name, {}, opts);
        const child: pulumi.CustomResourceOptions = {
            parent: this,
            // A component's own dependsOn does not reach its children.
            dependsOn: [...(args.prerequisites ?? [])],
            aliases: args.formerParent === undefined ? [] : [{ parent: args.formerParent }],
        };
        this.peerAuthentication = new k8s.apiextensions.CustomResource(`${name}-mtls`, peerAuthentication(args), child);
        this.authorizationPolicy = new k8s.apiextensions.CustomResource(`${name}-callers`, authorizationPolicy(args), child);
        this.registerOutputs({ peerAuthentication: this.peerAuthentication, authorizationPolicy: this.authorizationPolicy });
    }
}
