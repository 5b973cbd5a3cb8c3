// The blue-green app: the namespace, one Deployment (and PodDisruptionBudget) per version, the one
// Service in front of all of them, the gate, and the routing component the caller picked, a child of
// the app, which owns the ingress and routing objects and the live route (components/routing/). What
// each version does comes from its role (lib/version-roles.ts); the app does not decide it again. Only
// the live route depends on which version is active, so a switch or a rollback changes that one
// object (and the gate) and nothing else.
//
// The order inside one `pulumi up` is the constructor's, top to bottom, each step waiting for the one
// before: (1) the Deployments of the versions that will take traffic; (2) the routing objects test
// requests go through (gateway, test routes); (3) the gate, which fetches each serving version through
// its test route; (4) the live route, and the routing API's verdict on it; (5) only then the versions
// that go idle. So a failed gate, route or verdict never scales down the version that is still live.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import { ALLOW_ZERO_REPLICAS, NO_SERVICE_AWAIT } from "../lib/annotations";
import { resolveChecks, type Subject } from "../lib/analysis/checks";
import { FORMER_GATE_TYPE, Gate, type GateArgs, type GateSettings } from "../dynamic/gate";
import { APP_NAME, workloadName } from "../lib/app-names";
import type { VersionRole, VersionRoles } from "../lib/version-roles";
import type { Routing, RoutingComponent, RouteSettings } from "./routing/shape";

export interface BlueGreenAppArgs {
    /** Namespace to create for the app; sidecar injection is on in it. */
    readonly namespace: string;
    /** Every version and what it does in this update. */
    readonly roles: VersionRoles;
    /** How traffic reaches the versions: a routing API's component (components/routing/index.ts). */
    readonly routing: RoutingComponent;
    /** What the routing needs from the config: host, test-route header, gateway, TLS. */
    readonly route: RouteSettings;
    /** The gate before the live route moves; undefined (or no test-route header): none, only Deployment readiness gates it. */
    readonly gate?: GateSettings;
    /** Mount the container's root filesystem read-only. Default: true. */
    readonly readOnlyRootFilesystem?: boolean;
    /** Name of the Service and prefix of the Deployments. Default: "cowsay-nginx". */
    readonly appName?: string;
    /**
     * What must exist before any object here: the installs of the CRDs and of the TLS Secret. A
     * component's own dependsOn does not reach its children, hence this. Default: none.
     */
    readonly prerequisites?: readonly pulumi.Resource[];
}

const HTTP_PORT = 9080;
const CONTAINER_PORT = 80;

export class BlueGreenApp extends pulumi.ComponentResource {
    public readonly namespace: k8s.core.v1.Namespace;
    public readonly deployments: ReadonlyMap<string, k8s.apps.v1.Deployment>;
    public readonly service: k8s.core.v1.Service;
    /** Labels every version's pods carry (the Service's selector). */
    public readonly podSelector: Readonly<Record<string, string>>;
    public readonly routing: Routing;
    /** The live route: the one object a switch changes. */
    public readonly route: pulumi.Resource;
    public readonly gate: Gate | undefined;

    constructor(name: string, args: BlueGreenAppArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cowsay-bluegreen:app:BlueGreenApp", name, {}, opts);
        const appName = args.appName ?? APP_NAME;
        const ns = args.namespace;
        this.podSelector = { service: appName };

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
                metadata: { name: appName, namespace: ns, labels: { ...this.podSelector }, annotations: { ...NO_SERVICE_AWAIT } },
                spec: {
                    // Every version's pods: which one a request reaches is the routes' decision.
                    selector: { ...this.podSelector },
                    ports: [{ name: "http", port: HTTP_PORT, targetPort: CONTAINER_PORT, appProtocol: "http" }],
                },
            },
            inNamespace,
        );

        const readOnlyRoot = args.readOnlyRootFilesystem ?? true;
        const deployments = new Map<string, k8s.apps.v1.Deployment>();
        // (1) The versions that will take traffic.
        const serving = args.roles.serving.map((version) => {
            const deployment = this.deploy(name, appName, ns, version, readOnlyRoot, inNamespace);
            deployments.set(version.name, deployment);
            return deployment;
        });

        // (2) The routing objects the test requests go through; nothing routes live traffic yet.
        this.routing = new args.routing(
            name,
            {
                ...args.route,
                roles: args.roles,
                namespace: ns,
                appName,
                service: this.service,
                port: HTTP_PORT,
                targetPort: CONTAINER_PORT,
                podSelector: this.podSelector,
                prerequisites: inNamespace.dependsOn,
                // Until routing had a component of its own, its objects were the app's children.
                formerParent: this,
            },
            { parent: this },
        );

        // (3) The gate, once the serving pods and the routing objects it goes through are there.
        const header = args.route.testRouteHeader;
        this.gate =
            args.gate === undefined || header === undefined
                ? undefined
                : this.gateOf(name, args, args.gate, header, [...inNamespace.dependsOn, ...this.routing.ready, ...serving]);

        // (4) The live route, after the serving pods and the gate.
        const { live, settled } = this.routing.goLive([...serving, ...(this.gate === undefined ? [] : [this.gate])]);
        this.route = live;

        // (5) Idle versions change only once the live route has left them, as the routing API reports
        // it: if the gate, the route or Istio's verdict on it fails, the version that was live keeps every pod.
        for (const version of args.roles.idle) {
            deployments.set(
                version.name,
                this.deploy(name, appName, ns, version, readOnlyRoot, { ...inNamespace, dependsOn: [...inNamespace.dependsOn, settled] }),
            );
        }
        this.deployments = deployments;

        this.registerOutputs({
            namespace: this.namespace,
            service: this.service,
            routing: this.routing,
            route: this.route,
            gate: this.gate,
        });
    }

    /** The gate's pre-switch analysis inputs: each serving version's checks, resolved for its workload. */
    private analysisOf(args: BlueGreenAppArgs, analysis: NonNullable<GateSettings["analysis"]>): Partial<GateArgs> {
        const subject = (version: string): Subject => ({ namespace: args.namespace, workload: workloadName(version, args.appName), version });
        const live = analysis.liveBefore;
        const checks = Object.fromEntries(
            args.roles.serving.map((v) => [
                v.name,
                resolveChecks(analysis.settings, subject(v.name), live === undefined || live === v.name ? undefined : subject(live)),
            ]),
        );
        return {
            prometheusUrl: analysis.prometheusUrl,
            ...(analysis.prometheusToken === undefined ? {} : { prometheusToken: analysis.prometheusToken }),
            analysis: { trafficPerSecond: analysis.trafficPerSecond, checks },
        };
    }

    /** Passes only when every serving version answers through its test route with its own page. */
    private gateOf(name: string, args: BlueGreenAppArgs, settings: GateSettings, header: string, after: readonly pulumi.Resource[]): Gate {
        return new Gate(
            `${name}-gate`,
            {
                gatewayUrl: settings.gatewayUrl,
                host: args.route.hostname,
                header,
                checks: args.roles.serving.map((v) => ({ version: v.name, image: v.image, expect: v.expect ?? "" })),
                timeoutSeconds: settings.timeoutSeconds ?? 60,
                intervalMs: settings.intervalMs ?? 2000,
                ...(settings.analysis === undefined ? {} : this.analysisOf(args, settings.analysis)),
            },
            // Stacks deployed before the gate had its name know it as `<app>-smoke-check`, of type SmokeCheck.
            { parent: this, dependsOn: [...after], aliases: [{ name: `${name}-smoke-check`, type: FORMER_GATE_TYPE }] },
        );
    }

    private deploy(
        name: string,
        appName: string,
        ns: string,
        version: VersionRole,
        readOnlyRoot: boolean,
        opts: pulumi.CustomResourceOptions,
    ): k8s.apps.v1.Deployment {
        const labels = { app: appName, service: appName, version: version.name };
        const workload = workloadName(version.name, appName);
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
                    name: workload,
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
                metadata: { name: workload, namespace: ns, labels },
                spec: { maxUnavailable: 1, selector: { matchLabels: { service: appName, version: version.name } } },
            },
            opts,
        );
        return deployment;
    }
}
