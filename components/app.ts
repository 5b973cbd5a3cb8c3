// The blue-green app: one Deployment per version, all behind one Service, the gate, and the routing
// objects (from components/routing/) that decide which version the gateway's traffic reaches. Only
// the live route depends on which version is active, so a switch or a rollback changes that one
// object (and the gate) and nothing else. Order inside one `pulumi up`: the Deployments of the
// versions that will take traffic, then the gate, then the live route, and only then the versions
// that go idle; so a failed gate never scales down the version that is still live.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import { istioRouting } from "./routing/istio";
import type { RoutingFactory } from "./routing/shape";
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
    /** Gateway base URL as seen from where `pulumi up` runs; a secret when the config is one. */
    readonly gatewayUrl: pulumi.Input<string>;
    /** The most time one `pulumi up` spends checking, in seconds. Default: 60. */
    readonly timeoutSeconds?: number;
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
    /** Namespace of the ingress gateway. */
    readonly ingressNamespace: string;
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
    /** How traffic reaches the versions. Default: Istio's Gateway, DestinationRule and VirtualServices. */
    readonly routing?: RoutingFactory;
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
    /** The live route: the one object a switch changes. */
    public readonly route: pulumi.Resource;
    public readonly smokeCheck: SmokeCheck | undefined;

    constructor(name: string, args: BlueGreenAppArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:app:BlueGreenApp", name, {}, opts);
        const appName = args.appName ?? "cowsay-nginx";
        const ns = args.namespace;

        const prerequisites = [...(args.prerequisites ?? [])];
        this.namespace = new k8s.core.v1.Namespace(
            `${name}-ns`,
            { metadata: { name: ns, labels: { "istio-injection": "enabled" } } },
            { parent: this, dependsOn: prerequisites },
        );
        const inNamespace = { parent: this, dependsOn: [...prerequisites, this.namespace] };

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

        const routing = (args.routing ?? istioRouting)(
            name,
            {
                namespace: ns,
                appName,
                service: this.service,
                port: HTTP_PORT,
                targetPort: CONTAINER_PORT,
                versions: args.versions.map((v) => v.name),
                podSelector: { service: appName },
                weights: args.weights,
                hostname: args.hostname,
                testRouteHeader: args.testRouteHeader,
                gatewaySelector: args.gatewaySelector,
                ingressNamespace: args.ingressNamespace,
                tlsSecretName: args.tlsSecretName,
                httpsRedirect: args.httpsRedirect ?? true,
            },
            inNamespace,
        );

        const readOnlyRoot = args.readOnlyRootFilesystem ?? true;
        const serving = args.versions.filter((v) => args.weights.has(v.name));
        const idle = args.versions.filter((v) => !args.weights.has(v.name));
        const deployments = new Map<string, k8s.apps.v1.Deployment>();
        for (const version of serving) {
            deployments.set(version.name, this.deploy(name, appName, ns, version, readOnlyRoot, inNamespace));
        }

        const beforeRoute: pulumi.Resource[] = serving.map((v) => deployments.get(v.name) as k8s.apps.v1.Deployment);
        if (args.smokeCheck !== undefined && args.testRouteHeader !== undefined) {
            this.smokeCheck = new SmokeCheck(
                `${name}-smoke-check`,
                {
                    gatewayUrl: args.smokeCheck.gatewayUrl,
                    host: args.hostname,
                    header: args.testRouteHeader,
                    checks: serving.map((v) => ({ version: v.name, image: v.image, expect: v.expect ?? "" })),
                    timeoutSeconds: args.smokeCheck.timeoutSeconds ?? 60,
                    intervalMs: args.smokeCheck.intervalMs ?? 2000,
                },
                // Ready pods and the test routes first: the check goes through them.
                { parent: this, dependsOn: [...inNamespace.dependsOn, ...routing.ready, ...beforeRoute] },
            );
            beforeRoute.push(this.smokeCheck);
        }
        this.route = routing.live(beforeRoute);

        // Idle versions change only once the live route has left them: if the gate or the route
        // fails, the version that is still live keeps every pod.
        for (const version of idle) {
            deployments.set(
                version.name,
                this.deploy(name, appName, ns, version, readOnlyRoot, { ...inNamespace, dependsOn: [...inNamespace.dependsOn, this.route] }),
            );
        }
        this.deployments = deployments;

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
