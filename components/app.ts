// The blue-green app: one Deployment per version, all behind one Service, and the Istio objects
// that decide which version the gateway's traffic reaches. Only the live VirtualService depends on
// which version is active, so a switch or a rollback changes that one object and nothing else.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import { SmokeCheck } from "./smokecheck";

/** A version as the component deploys it. */
export interface AppVersion {
    readonly name: string;
    readonly image: string;
    /** Pods to run now (the caller has already applied idle capacity). */
    readonly replicas: number;
    /** Text only this version's page contains (used by the smoke check). */
    readonly expect?: string;
}

export interface SmokeCheckSettings {
    /** Gateway base URL as seen from where `pulumi up` runs. */
    readonly gatewayUrl: string;
    /** Tries per version. Default: 30. */
    readonly attempts?: number;
    /** Pause between tries in milliseconds. Default: 2000. */
    readonly intervalMs?: number;
}

export interface BlueGreenAppArgs {
    /** Namespace to create for the app; sidecar injection is on in it. */
    readonly namespace: string;
    /** Every version to run, idle or not. */
    readonly versions: readonly AppVersion[];
    /** Live traffic share per version in percent (sums to 100). */
    readonly weights: ReadonlyMap<string, number>;
    /** Host name the gateway serves. */
    readonly hostname: string;
    /** Label selector of the ingress gateway pods. */
    readonly gatewaySelector: Readonly<Record<string, string>>;
    /** Secret (in the gateway's namespace) with the TLS certificate for `hostname`. */
    readonly tlsSecretName: string;
    /** Redirect plain HTTP to HTTPS. Default: true. */
    readonly httpsRedirect?: boolean;
    /** Header that pins a request to a version; undefined: no test routes. */
    readonly testRouteHeader?: string;
    /** Run the smoke check before routing traffic to a version; undefined: no check. */
    readonly smokeCheck?: SmokeCheckSettings;
    /** SPIFFE principals allowed to call the app (the ingress gateway's among them). */
    readonly allowedPrincipals: readonly string[];
    /** Mount the container's root filesystem read-only. Default: true. */
    readonly readOnlyRootFilesystem?: boolean;
    /** Name of the Service and prefix of the Deployments. Default: "cowsay-nginx". */
    readonly appName?: string;
    /**
     * What must exist before any object here: the installs of Istio's CRDs and of the TLS Secret.
     * A component's own dependsOn does not reach its children, hence this. Default: none.
     */
    readonly prerequisites?: readonly pulumi.Resource[];
}

/** Annotation the program sets (and the policy pack honours) when a version may run no pods. */
export const ALLOW_ZERO_REPLICAS = "cowsay-bluegreen.io/allow-zero-replicas";

const HTTP_PORT = 9080;
const CONTAINER_PORT = 80;

export class BlueGreenApp extends pulumi.ComponentResource {
    public readonly namespace: k8s.core.v1.Namespace;
    public readonly deployments: ReadonlyMap<string, k8s.apps.v1.Deployment>;
    public readonly service: k8s.core.v1.Service;
    public readonly destinationRule: k8s.apiextensions.CustomResource;
    public readonly gateway: k8s.apiextensions.CustomResource;
    /** Header-matched routes to every version; undefined when test routes are off. */
    public readonly testRoute: k8s.apiextensions.CustomResource | undefined;
    /** The live route: the one object a switch changes. */
    public readonly route: k8s.apiextensions.CustomResource;
    public readonly smokeCheck: SmokeCheck | undefined;
    /** In-cluster host of the Service. */
    public readonly serviceHost: string;

    constructor(name: string, args: BlueGreenAppArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:app:BlueGreenApp", name, {}, opts);
        const appName = args.appName ?? "cowsay-nginx";
        const ns = args.namespace;
        this.serviceHost = `${appName}.${ns}.svc.cluster.local`;

        const prerequisites = [...(args.prerequisites ?? [])];
        this.namespace = new k8s.core.v1.Namespace(
            `${name}-ns`,
            { metadata: { name: ns, labels: { "istio-injection": "enabled" } } },
            { parent: this, dependsOn: prerequisites },
        );
        const inNamespace = { parent: this, dependsOn: [...prerequisites, this.namespace] };

        const deployments = new Map<string, k8s.apps.v1.Deployment>();
        for (const version of args.versions) {
            deployments.set(version.name, this.deploy(name, appName, ns, version, args.readOnlyRootFilesystem ?? true, inNamespace));
        }
        this.deployments = deployments;

        this.service = new k8s.core.v1.Service(
            `${name}-service`,
            {
                metadata: { name: appName, namespace: ns, labels: { service: appName } },
                spec: {
                    // Every version's pods: which one a request reaches is the routes' decision.
                    selector: { service: appName },
                    ports: [{ name: "http", port: HTTP_PORT, targetPort: CONTAINER_PORT, appProtocol: "http" }],
                },
            },
            inNamespace,
        );

        this.destinationRule = new k8s.apiextensions.CustomResource(
            `${name}-subsets`,
            {
                apiVersion: "networking.istio.io/v1",
                kind: "DestinationRule",
                metadata: { name: appName, namespace: ns },
                spec: {
                    host: this.serviceHost,
                    subsets: args.versions.map((v) => ({ name: v.name, labels: { version: v.name } })),
                },
            },
            inNamespace,
        );

        const gatewayName = `${appName}-gateway`;
        const hosts = [args.hostname];
        this.gateway = new k8s.apiextensions.CustomResource(
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
                            ...((args.httpsRedirect ?? true) ? { tls: { httpsRedirect: true } } : {}),
                        },
                        {
                            port: { number: 443, name: "https", protocol: "HTTPS" },
                            hosts,
                            tls: { mode: "SIMPLE", credentialName: args.tlsSecretName },
                        },
                    ],
                },
            },
            inNamespace,
        );
        const gatewayRef = `${ns}/${gatewayName}`;
        const subsetRoute = (version: string, weight?: number) => ({
            destination: { host: this.serviceHost, subset: version, port: { number: HTTP_PORT } },
            ...(weight === undefined ? {} : { weight }),
        });

        const routeDeps: pulumi.Resource[] = [...inNamespace.dependsOn, this.destinationRule, this.gateway];
        if (args.testRouteHeader !== undefined) {
            const header = args.testRouteHeader;
            // Istio merges VirtualServices bound to one gateway host in creation order; this one
            // has no catch-all and is always created before the live route, so its header matches
            // are evaluated first.
            this.testRoute = new k8s.apiextensions.CustomResource(
                `${name}-test-route`,
                {
                    apiVersion: "networking.istio.io/v1",
                    kind: "VirtualService",
                    metadata: { name: `${appName}-test`, namespace: ns },
                    spec: {
                        hosts,
                        gateways: [gatewayRef],
                        http: args.versions.map((v) => ({
                            name: `test-${v.name}`,
                            match: [{ headers: { [header]: { exact: v.name } } }],
                            route: [subsetRoute(v.name)],
                        })),
                    },
                },
                { parent: this, dependsOn: [...routeDeps] },
            );
            routeDeps.push(this.testRoute);
        }

        const serving = args.versions.filter((v) => args.weights.has(v.name));
        routeDeps.push(...serving.map((v) => deployments.get(v.name) as k8s.apps.v1.Deployment));
        if (args.smokeCheck !== undefined && args.testRouteHeader !== undefined) {
            this.smokeCheck = new SmokeCheck(
                `${name}-smoke-check`,
                {
                    gatewayUrl: args.smokeCheck.gatewayUrl,
                    host: args.hostname,
                    header: args.testRouteHeader,
                    checks: serving.map((v) => ({ version: v.name, image: v.image, expect: v.expect ?? "" })),
                    attempts: args.smokeCheck.attempts ?? 30,
                    intervalMs: args.smokeCheck.intervalMs ?? 2000,
                },
                // Ready pods and the test routes first: the check goes through them.
                { parent: this, dependsOn: [...routeDeps] },
            );
            routeDeps.push(this.smokeCheck);
        }

        this.route = new k8s.apiextensions.CustomResource(
            `${name}-route`,
            {
                apiVersion: "networking.istio.io/v1",
                kind: "VirtualService",
                metadata: { name: appName, namespace: ns },
                spec: {
                    // The gateway host for ingress traffic, the Service host for in-mesh callers.
                    hosts: [args.hostname, this.serviceHost],
                    gateways: [gatewayRef, "mesh"],
                    http: [{ name: "live", route: serving.map((v) => subsetRoute(v.name, args.weights.get(v.name))) }],
                },
            },
            { parent: this, dependsOn: routeDeps },
        );

        new k8s.apiextensions.CustomResource(
            `${name}-mtls`,
            {
                apiVersion: "security.istio.io/v1",
                kind: "PeerAuthentication",
                metadata: { name: "default", namespace: ns },
                spec: { mtls: { mode: "STRICT" } },
            },
            inNamespace,
        );
        new k8s.apiextensions.CustomResource(
            `${name}-callers`,
            {
                apiVersion: "security.istio.io/v1",
                kind: "AuthorizationPolicy",
                metadata: { name: `${appName}-callers`, namespace: ns },
                spec: {
                    selector: { matchLabels: { service: appName } },
                    action: "ALLOW",
                    rules: [{ from: [{ source: { principals: [...args.allowedPrincipals] } }] }],
                },
            },
            inNamespace,
        );

        this.registerOutputs({
            namespace: this.namespace,
            service: this.service,
            destinationRule: this.destinationRule,
            gateway: this.gateway,
            testRoute: this.testRoute,
            route: this.route,
            smokeCheck: this.smokeCheck,
        });
    }

    private deploy(
        name: string,
        appName: string,
        ns: string,
        version: AppVersion,
        readOnlyRoot: boolean,
        opts: pulumi.CustomResourceOptions,
    ): k8s.apps.v1.Deployment {
        const labels = { app: appName, service: appName, version: version.name };
        const workloadName = `${appName}-${version.name}`;
        if (version.replicas === 0) {
            void pulumi.log.warn(
                `version ${version.name} will run 0 replicas while idle (idleReplicas=0): a rollback to it is not instant, it must start pods first.`,
                this,
            );
        }
        // nginx writes its pid, temp files and cache here; everything else stays read-only.
        const writable = [
            { name: "cache", mountPath: "/var/cache/nginx" },
            { name: "run", mountPath: "/var/run" },
            { name: "tmp", mountPath: "/tmp" },
        ];
        const deployment = new k8s.apps.v1.Deployment(
            `${name}-${version.name}`,
            {
                metadata: {
                    name: workloadName,
                    namespace: ns,
                    labels,
                    annotations: version.replicas === 0 ? { [ALLOW_ZERO_REPLICAS]: "true" } : undefined,
                },
                spec: {
                    replicas: version.replicas,
                    selector: { matchLabels: { service: appName, version: version.name } },
                    template: {
                        metadata: { labels },
                        spec: {
                            securityContext: { seccompProfile: { type: "RuntimeDefault" } },
                            containers: [
                                {
                                    name: appName,
                                    image: version.image,
                                    imagePullPolicy: "IfNotPresent",
                                    ports: [{ name: "http", containerPort: CONTAINER_PORT }],
                                    readinessProbe: {
                                        httpGet: { path: "/", port: CONTAINER_PORT },
                                        periodSeconds: 5,
                                        failureThreshold: 3,
                                    },
                                    resources: {
                                        requests: { cpu: "50m", memory: "32Mi" },
                                        limits: { cpu: "200m", memory: "64Mi" },
                                    },
                                    securityContext: {
                                        allowPrivilegeEscalation: false,
                                        readOnlyRootFilesystem: readOnlyRoot,
                                        // The nginx master starts as root, binds :80, then switches
                                        // its workers to the nginx user and hands them its temp dirs.
                                        capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN"] },
                                    },
                                    volumeMounts: writable,
                                },
                            ],
                            volumes: writable.map((w) => ({ name: w.name, emptyDir: {} })),
                        },
                    },
                },
            },
            opts,
        );
        new k8s.policy.v1.PodDisruptionBudget(
            `${name}-${version.name}-pdb`,
            {
                metadata: { name: workloadName, namespace: ns, labels },
                spec: { maxUnavailable: 1, selector: { matchLabels: { service: appName, version: version.name } } },
            },
            opts,
        );
        return deployment;
    }
}
