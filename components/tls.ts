// TLS for the gateway host: cert-manager (optional, for clusters that lack it), an Issuer, and the
// Certificate whose Secret the Istio Gateway serves. The Secret lives in the ingress gateway's
// namespace because that is where Istio reads `credentialName` from. With ACME, the HTTP-01 solver is
// the one the routing API gives (components/routing/): it knows how a challenge on port 80 reaches
// cert-manager's solver pod past the HTTPS redirect.
import * as k8s from "@pulumi/kubernetes";
import { CertManager } from "@pulumi/kubernetes-cert-manager";
import * as pulumi from "@pulumi/pulumi";

import versions from "../versions.json";
import type { IssuerSettings } from "../config";
import type { Http01Solver } from "./routing/shape";

/**
 * The issuer as the component takes it: the ACME e-mail may be a secret, and ACME comes with the
 * HTTP-01 solver of the stack's routing API.
 */
export type IssuerArgs =
    | Extract<IssuerSettings, { kind: "selfsigned" }>
    | (Omit<Extract<IssuerSettings, { kind: "acme" }>, "email"> & { readonly email: pulumi.Input<string>; readonly http01: Http01Solver });

/** The cert-manager chart every install is pinned to (versions.json; the tests load this release's CRDs). */
export const CERT_MANAGER_VERSION: string = versions.certManager;

/**
 * cert-manager's controller configuration (chart value `config`) that turns its Gateway API support on;
 * cert-manager's recommended way since 1.16 (its docs, usage/gateway).
 */
export const GATEWAY_API_CONTROLLER_CONFIG = {
    apiVersion: "controller.config.cert-manager.io/v1alpha1",
    kind: "ControllerConfiguration",
    enableGatewayAPI: true,
} as const;

/**
 * The Secret the Certificate writes unless the caller names one: the host with its dots as dashes,
 * then "-tls". The end-to-end suites issue this Secret themselves in cert-manager's place, so they
 * name it with this function too.
 */
export const tlsSecretName = (hostname: string): string => `${hostname.replace(/\./g, "-")}-tls`;

export interface GatewayTlsArgs {
    /** Host name the certificate is for. */
    readonly hostname: string;
    /** Namespace of the ingress gateway; the Issuer, Certificate and Secret go there. */
    readonly namespace: pulumi.Input<string>;
    /** Self-signed or ACME. */
    readonly issuer: IssuerArgs;
    /** Install cert-manager (with its CRDs). Default: true. */
    readonly installCertManager?: boolean;
    /** Name of the Secret the Certificate writes. Default: "<hostname with dots as dashes>-tls". */
    readonly secretName?: string;
    /**
     * Name of the Issuer (and prefix of its ACME account Secret), in the namespace other stacks may share.
     * Default: "<name>-<issuer kind>".
     */
    readonly issuerName?: string;
    /** What must exist first (the ingress namespace's install). Default: none. */
    readonly prerequisites?: readonly pulumi.Resource[];
}

export class GatewayTls extends pulumi.ComponentResource {
    public readonly certManager: CertManager | undefined;
    public readonly issuer: k8s.apiextensions.CustomResource;
    public readonly certificate: k8s.apiextensions.CustomResource;
    /** The Secret the Gateway's HTTPS server names as `credentialName`. */
    public readonly secretName: string;

    constructor(name: string, args: GatewayTlsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:tls:GatewayTls", name, {}, opts);
        this.secretName = args.secretName ?? tlsSecretName(args.hostname);

        // cert-manager solves through HTTPRoutes only with its Gateway API support on, and then its
        // controller does not start until the Gateway API CRDs exist (they are among the prerequisites).
        const gatewayApi = args.issuer.kind === "acme" && "gatewayHTTPRoute" in args.issuer.http01;
        if (args.installCertManager ?? true) {
            const namespace = new k8s.core.v1.Namespace(`${name}-cert-manager`, { metadata: { name: "cert-manager" } }, { parent: this });
            this.certManager = new CertManager(
                `${name}-cert-manager`,
                {
                    installCRDs: true,
                    helmOptions: {
                        namespace: namespace.metadata.name,
                        version: CERT_MANAGER_VERSION,
                        ...(gatewayApi ? { values: { config: GATEWAY_API_CONTROLLER_CONFIG } } : {}),
                    },
                },
                gatewayApi ? { parent: this, dependsOn: [...(args.prerequisites ?? [])] } : { parent: this },
            );
        }
        // The Issuer and Certificate kinds exist only once cert-manager's CRDs are installed.
        const needsCrds = {
            parent: this,
            dependsOn: [...(args.prerequisites ?? []), ...(this.certManager === undefined ? [] : [this.certManager])],
        };

        const issuerName = args.issuerName ?? `${name}-${args.issuer.kind}`;
        this.issuer = new k8s.apiextensions.CustomResource(
            `${name}-issuer`,
            {
                apiVersion: "cert-manager.io/v1",
                kind: "Issuer",
                metadata: { name: issuerName, namespace: args.namespace },
                spec:
                    args.issuer.kind === "selfsigned"
                        ? { selfSigned: {} }
                        : {
                              acme: {
                                  email: args.issuer.email,
                                  server: args.issuer.server,
                                  privateKeySecretRef: { name: `${issuerName}-account` },
                                  // The HTTP-01 challenge enters through the ingress gateway, on port 80.
                                  solvers: [{ http01: args.issuer.http01 }],
                              },
                          },
            },
            needsCrds,
        );
        this.certificate = new k8s.apiextensions.CustomResource(
            `${name}-certificate`,
            {
                apiVersion: "cert-manager.io/v1",
                kind: "Certificate",
                metadata: { name: this.secretName, namespace: args.namespace },
                spec: {
                    secretName: this.secretName,
                    dnsNames: [args.hostname],
                    issuerRef: { name: issuerName, kind: "Issuer", group: "cert-manager.io" },
                    privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
                },
            },
            { ...needsCrds, dependsOn: [...needsCrds.dependsOn, this.issuer] },
        );
        this.registerOutputs({
            certManager: this.certManager,
            issuer: this.issuer,
            certificate: this.certificate,
            secretName: this.secretName,
        });
    }
}
