// Unit tests of the policy pack in policy/: each validator is called directly, with arguments
// shaped like those @pulumi/policy's analyzer server passes, and a spy for reportViolation.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { messagesOfResource, resourceArgs, stackResource, violationsOfStack, type Props, type StackResource } from "./harness";

import {
    allowZeroReplicasAnnotation,
    containersHardened,
    deploymentType,
    imagesPinned,
    ingressType,
    noIngressAroundVersionRoutes,
    noIngressToSubsetRoutedService,
    policies,
    resolveHost,
    routeBackendsSelectOneVersion,
    routeTargetsExistingSubsets,
    serviceType,
    versionsKeepAReplica,
} from "../../policy/policies";

const virtualServiceType = "kubernetes:networking.istio.io/v1:VirtualService";
const destinationRuleType = "kubernetes:networking.istio.io/v1:DestinationRule";
const digest = `sha256:${"a".repeat(64)}`;

/** A container that passes every container policy; tests override one thing at a time. */
function container(overrides: Props = {}): Props {
    return {
        name: "nginx",
        image: "nginxinc/nginx-unprivileged:1.27.3",
        resources: { limits: { cpu: "100m", memory: "64Mi" } },
        securityContext: { allowPrivilegeEscalation: false },
        ...overrides,
    };
}

interface DeploymentOptions {
    readonly replicas?: number;
    readonly version?: string;
    readonly annotations?: Record<string, string>;
    readonly containers?: Props[];
    readonly initContainers?: Props[];
}

/** Deployment inputs shaped like the program's versioned Deployments. */
function deployment(options: DeploymentOptions = {}): Props {
    const labels: Record<string, string> = { app: "cowsay-nginx" };
    if (options.version !== undefined) {
        labels.version = options.version;
    }
    const podSpec: Props = { containers: options.containers ?? [container()] };
    if (options.initContainers !== undefined) {
        podSpec.initContainers = options.initContainers;
    }
    const spec: Props = { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec } };
    if (options.replicas !== undefined) {
        spec.replicas = options.replicas;
    }
    return {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { namespace: "cowsay", annotations: options.annotations ?? {} },
        spec,
    };
}

function destinationRule(name: string, namespace: string, host: string, subsets: string[]): StackResource {
    return stackResource(destinationRuleType, name, {
        apiVersion: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: { name, namespace },
        spec: { host, subsets: subsets.map((subset) => ({ name: subset, labels: { version: subset } })) },
    });
}

interface Destination {
    readonly host: string;
    readonly subset?: string;
    readonly weight?: number;
}

function virtualService(name: string, namespace: string, routes: Destination[][], type = virtualServiceType): StackResource {
    return stackResource(type, name, {
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { name, namespace },
        spec: {
            hosts: ["*"],
            gateways: ["cowsay-gateway"],
            http: routes.map((route) => ({
                route: route.map(({ weight, ...destination }) => (weight === undefined ? { destination } : { destination, weight })),
            })),
        },
    });
}

function ingress(name: string, namespace: string, spec: Props): StackResource {
    return stackResource(ingressType, name, {
        apiVersion: "networking.k8s.io/v1",
        kind: "Ingress",
        metadata: { name, namespace },
        spec,
    });
}

function pathTo(service: string): Props {
    return { path: "/", pathType: "Prefix", backend: { service: { name: service, port: { number: 80 } } } };
}

describe("policy pack", () => {
    it("holds the seven policies, each named once and described", () => {
        assert.deepEqual(
            policies.map((policy) => policy.name),
            [
                "versions-keep-a-replica",
                "images-pinned",
                "route-targets-existing-subsets",
                "no-ingress-to-subset-routed-service",
                "route-backends-select-one-version",
                "no-ingress-around-version-routes",
                "containers-hardened",
            ],
        );
        for (const policy of policies) {
            assert.ok(policy.description.length > 20, `${policy.name} has a description`);
        }
    });
});

describe("versions-keep-a-replica", () => {
    const check = (props: Props, type = deploymentType) => messagesOfResource(versionsKeepAReplica, resourceArgs(type, "cowsay-v2", props));

    it("accepts versions with replicas, an explicit opt-in to zero, and Deployments that are not versions", async () => {
        assert.deepEqual(await check(deployment({ version: "v2", replicas: 2 })), []);
        assert.deepEqual(await check(deployment({ version: "v2" })), [], "replicas left to the default of 1");
        assert.deepEqual(await check(deployment({ version: "v2", replicas: 0, annotations: { [allowZeroReplicasAnnotation]: "true" } })), []);
        assert.deepEqual(await check(deployment({ replicas: 0 })), [], "no version label");
        assert.deepEqual(await check(deployment({ version: "v2", replicas: 0 }), "kubernetes:apps/v1:StatefulSet"), []);
    });

    it("reports a version scaled to zero without the annotation", async () => {
        const expected =
            'Deployment "cowsay-v2" (pod label version="v2"): spec.replicas is 0; keep at least 1 replica, or set ' +
            'metadata.annotations["cowsay-bluegreen.io/allow-zero-replicas"] to "true" to allow an idle version.';
        assert.deepEqual(await check(deployment({ version: "v2", replicas: 0 })), [expected]);
        // Only the exact string "true" opts in: a near miss fails closed.
        assert.deepEqual(await check(deployment({ version: "v2", replicas: 0, annotations: { [allowZeroReplicasAnnotation]: "True" } })), [expected]);
    });
});

describe("images-pinned", () => {
    const check = (props: Props) => messagesOfResource(imagesPinned, resourceArgs(deploymentType, "cowsay-v1", props));

    // Which references are pinned is test/image.test.ts's table, run through this policy and the program.

    it("accepts a Deployment whose containers and init containers are pinned", async () => {
        const props = deployment({
            containers: [container(), container({ name: "sidecar", image: `registry:5000/tools/sidecar@${digest}` })],
            initContainers: [container({ name: "init", image: "busybox:1.37" })],
        });
        assert.deepEqual(await check(props), []);
    });

    it("reports every unpinned image by container path, name and value", async () => {
        const props = deployment({
            initContainers: [container({ name: "init", image: "registry:5000/busybox" })],
            containers: [container({ image: "nginx:latest" }), container({ name: "empty", image: undefined })],
        });
        assert.deepEqual(await check(props), [
            'Deployment "cowsay-v1": spec.template.spec.initContainers[0] ("init") image "registry:5000/busybox" is not ' +
                "pinned; expected a pinned tag or digest (for example dougbtv/nginx-cowsay:v1).",
            'Deployment "cowsay-v1": spec.template.spec.containers[0] ("nginx") image "nginx:latest" is not pinned; ' +
                "expected a pinned tag other than latest, or a digest.",
            'Deployment "cowsay-v1": spec.template.spec.containers[1] ("empty") image is not set; set an image pinned to a ' + "version tag or digest.",
        ]);
    });
});

describe("containers-hardened", () => {
    const check = (props: Props) => messagesOfResource(containersHardened, resourceArgs(deploymentType, "cowsay-v1", props));

    it("accepts containers with CPU and memory limits that forbid privilege escalation", async () => {
        assert.deepEqual(await check(deployment({ initContainers: [container({ name: "init" })] })), []);
    });

    it("reports each missing limit and a privilege escalation that is not forbidden", async () => {
        const props = deployment({
            initContainers: [container({ name: "init", resources: { limits: { cpu: "50m" } } })],
            containers: [
                container({ resources: undefined, securityContext: undefined }),
                container({ name: "escalating", securityContext: { allowPrivilegeEscalation: true } }),
            ],
        });
        assert.deepEqual(await check(props), [
            'Deployment "cowsay-v1": spec.template.spec.initContainers[0] ("init") resources.limits.memory is not set; set a memory limit.',
            'Deployment "cowsay-v1": spec.template.spec.containers[0] ("nginx") resources.limits.cpu is not set; set a cpu limit.',
            'Deployment "cowsay-v1": spec.template.spec.containers[0] ("nginx") resources.limits.memory is not set; set a memory limit.',
            'Deployment "cowsay-v1": spec.template.spec.containers[0] ("nginx") securityContext.allowPrivilegeEscalation is not set; ' + "set it to false.",
            'Deployment "cowsay-v1": spec.template.spec.containers[1] ("escalating") securityContext.allowPrivilegeEscalation is ' + "true; set it to false.",
        ]);
    });
});

describe("resolveHost", () => {
    it("expands only dotless names, like Istio's ResolveShortnameToFQDN", () => {
        assert.equal(resolveHost("cowsay-nginx", "cowsay"), "cowsay-nginx.cowsay.svc.cluster.local");
        assert.equal(resolveHost("cowsay-nginx.cowsay.svc.cluster.local", "other"), "cowsay-nginx.cowsay.svc.cluster.local");
        assert.equal(resolveHost("cowsay-nginx.cowsay", "cowsay"), "cowsay-nginx.cowsay");
        assert.equal(resolveHost("*", "cowsay"), "*");
    });
});

describe("route-targets-existing-subsets", () => {
    const rule = destinationRule("cowsay-nginx", "cowsay", "cowsay-nginx.cowsay.svc.cluster.local", ["v1", "v2"]);

    it("accepts routes to defined subsets, whether the hosts are short or fully qualified", async () => {
        const shortRule = destinationRule("short", "cowsay", "cowsay-nginx", ["v1", "v2"]);
        const routes = virtualService("cowsay", "cowsay", [
            [
                { host: "cowsay-nginx", subset: "v1", weight: 100 },
                { host: "cowsay-nginx", subset: "v2", weight: 0 },
            ],
            [{ host: "cowsay-nginx.cowsay.svc.cluster.local", subset: "v2" }],
            [{ host: "cowsay-nginx" }],
        ]);
        assert.deepEqual(await violationsOfStack(routeTargetsExistingSubsets, [rule, routes]), []);
        assert.deepEqual(await violationsOfStack(routeTargetsExistingSubsets, [shortRule, routes]), []);
    });

    it("reports a subset the DestinationRule for the host does not define", async () => {
        const routes = virtualService("cowsay", "cowsay", [[{ host: "cowsay-nginx", subset: "v1" }], [{ host: "cowsay-nginx", subset: "v3" }]]);
        assert.deepEqual(await violationsOfStack(routeTargetsExistingSubsets, [rule, routes]), [
            {
                message:
                    'VirtualService "cowsay": spec.http[1].route[0].destination host "cowsay-nginx" ' +
                    '(cowsay-nginx.cowsay.svc.cluster.local) subset "v3" is not defined: the DestinationRules for ' +
                    'cowsay-nginx.cowsay.svc.cluster.local define only "v1", "v2".',
                urn: routes.urn,
            },
        ]);
    });

    it("reports a route whose host resolves to no DestinationRule's host", async () => {
        // The short name resolves in the VirtualService's namespace, not the DestinationRule's.
        const elsewhere = virtualService("cowsay", "other", [[{ host: "cowsay-nginx", subset: "v1" }]]);
        // A dotted name is never expanded, so "cowsay-nginx.cowsay" is not the Service's FQDN.
        const dotted = virtualService(
            "dotted",
            "cowsay",
            [[{ host: "cowsay-nginx.cowsay", subset: "v1" }]],
            "kubernetes:networking.istio.io/v1beta1:VirtualService",
        );
        assert.deepEqual(await violationsOfStack(routeTargetsExistingSubsets, [rule, elsewhere, dotted]), [
            {
                message:
                    'VirtualService "cowsay": spec.http[0].route[0].destination host "cowsay-nginx" ' +
                    '(cowsay-nginx.other.svc.cluster.local) subset "v1" is not defined: no DestinationRule has host ' +
                    "cowsay-nginx.other.svc.cluster.local.",
                urn: elsewhere.urn,
            },
            {
                message:
                    'VirtualService "dotted": spec.http[0].route[0].destination host "cowsay-nginx.cowsay" ' +
                    '(cowsay-nginx.cowsay) subset "v1" is not defined: no DestinationRule has host cowsay-nginx.cowsay.',
                urn: dotted.urn,
            },
        ]);
    });
});

describe("no-ingress-to-subset-routed-service", () => {
    const rule = destinationRule("cowsay-nginx", "cowsay", "cowsay-nginx", ["v1", "v2"]);

    it("accepts Ingresses to Services without subsets, or in another namespace", async () => {
        const noSubsets = destinationRule("plain", "cowsay", "plain-svc", []);
        const resources = [
            rule,
            noSubsets,
            ingress("plain", "cowsay", { defaultBackend: { service: { name: "plain-svc", port: { number: 80 } } } }),
            ingress("other-ns", "other", { rules: [{ http: { paths: [pathTo("cowsay-nginx")] } }] }),
        ];
        assert.deepEqual(await violationsOfStack(noIngressToSubsetRoutedService, resources), []);
    });

    it("reports rule paths and the default backend that point at the subset-routed Service", async () => {
        const bypass = ingress("bypass", "cowsay", {
            ingressClassName: "istio",
            defaultBackend: { service: { name: "cowsay-nginx", port: { number: 80 } } },
            rules: [{ host: "cowsay.example.com", http: { paths: [pathTo("plain-svc"), pathTo("cowsay-nginx")] } }],
        });
        const tail =
            ', which DestinationRule "cowsay-nginx" splits into subsets "v1", "v2"; an Ingress ignores subsets (Istio IST0140) ' +
            "and would spread requests over every version. Route through the Istio Gateway and a VirtualService instead.";
        assert.deepEqual(await violationsOfStack(noIngressToSubsetRoutedService, [rule, bypass]), [
            {
                message: `Ingress "bypass": spec.defaultBackend.service.name "cowsay-nginx" points at Service cowsay-nginx.cowsay.svc.cluster.local${tail}`,
                urn: bypass.urn,
            },
            {
                message:
                    'Ingress "bypass": spec.rules[0].http.paths[1].backend.service.name "cowsay-nginx" points at Service ' +
                    `cowsay-nginx.cowsay.svc.cluster.local${tail}`,
                urn: bypass.urn,
            },
        ]);
    });
});

// Gateway API routing: versions are told apart by Services, read against the stack's Deployments.

function versionDeployment(version: string, namespace = "cowsay"): StackResource {
    const labels = { service: "cowsay-nginx", version };
    return stackResource(deploymentType, `cowsay-${version}`, {
        metadata: { name: `cowsay-nginx-${version}`, namespace },
        spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [container()] } } },
    });
}

function service(name: string, selector: Record<string, string> | undefined, namespace = "cowsay"): StackResource {
    return stackResource(serviceType, name, {
        metadata: { name, namespace },
        spec: { ...(selector === undefined ? {} : { selector }), ports: [{ port: 9080 }] },
    });
}

function httpRoute(name: string, namespace: string, backendRefs: Props[][], version = "v1"): StackResource {
    return stackResource(`kubernetes:gateway.networking.k8s.io/${version}:HTTPRoute`, name, {
        metadata: { name, namespace },
        spec: { parentRefs: [{ name: "gw", namespace: "istio-ingress" }], rules: backendRefs.map((refs) => ({ backendRefs: refs })) },
    });
}

/** v1 and v2 Deployments, the shared Service and a Service per version, as the Gateway API path declares them. */
const twoVersionsWithServices = () => [
    versionDeployment("v1"),
    versionDeployment("v2"),
    service("cowsay-nginx", { service: "cowsay-nginx" }),
    service("cowsay-nginx-v1", { service: "cowsay-nginx", version: "v1" }),
    service("cowsay-nginx-v2", { service: "cowsay-nginx", version: "v2" }),
];

describe("route-backends-select-one-version", () => {
    const stack = twoVersionsWithServices();

    it("accepts backends that are Services of one version each, and refs that are not Services", async () => {
        const routes = httpRoute(
            "cowsay",
            "cowsay",
            [
                [
                    { name: "cowsay-nginx-v1", port: 9080, weight: 90 },
                    { group: "", kind: "Service", name: "cowsay-nginx-v2", port: 9080, weight: 10 },
                ],
                [{ name: "cowsay-nginx-v2", namespace: "cowsay", port: 9080 }],
                [{ group: "example.com", kind: "Bucket", name: "static" }],
            ],
            "v1beta1",
        );
        assert.deepEqual(await violationsOfStack(routeBackendsSelectOneVersion, [...stack, routes]), []);
    });

    it("reports a backend over several versions, over no version, or that is not in the stack", async () => {
        const routes = httpRoute("cowsay", "cowsay", [
            [{ name: "cowsay-nginx", port: 9080 }],
            [{ name: "cowsay-nginx-v3", port: 9080 }],
            [{ name: "cowsay-nginx-v1", namespace: "other", port: 9080 }],
        ]);
        const lonely = service("cowsay-nginx-v3", { service: "cowsay-nginx", version: "v3" });
        assert.deepEqual(await violationsOfStack(routeBackendsSelectOneVersion, [...stack, lonely, routes]), [
            {
                message:
                    'HTTPRoute "cowsay": spec.rules[0].backendRefs[0] Service cowsay/cowsay-nginx selects the pods of versions "v1", "v2", ' +
                    "so the route would spread requests over them; name a Service per version.",
                urn: routes.urn,
            },
            {
                message:
                    'HTTPRoute "cowsay": spec.rules[1].backendRefs[0] Service cowsay/cowsay-nginx-v3 selects the pods of no versioned Deployment of this stack.',
                urn: routes.urn,
            },
            {
                message: 'HTTPRoute "cowsay": spec.rules[2].backendRefs[0] Service other/cowsay-nginx-v1 is not a Service of this stack.',
                urn: routes.urn,
            },
        ]);
    });

    it("does not count a Service without a selector, or pods in another namespace, as selecting a version", async () => {
        const routes = httpRoute("cowsay", "cowsay", [[{ name: "manual", port: 9080 }], [{ name: "cowsay-nginx-v1", port: 9080 }]]);
        const elsewhere = [versionDeployment("v1", "other"), service("manual", undefined), service("cowsay-nginx-v1", { version: "v1" })];
        const seen = await violationsOfStack(routeBackendsSelectOneVersion, [...elsewhere, routes]);
        assert.deepEqual(
            seen.map((v) => v.message.replace(/^.*Service /, "")),
            [
                "cowsay/manual selects the pods of no versioned Deployment of this stack.",
                "cowsay/cowsay-nginx-v1 selects the pods of no versioned Deployment of this stack.",
            ],
        );
    });
});

describe("no-ingress-around-version-routes", () => {
    const stack = [...twoVersionsWithServices(), httpRoute("cowsay", "cowsay", [[{ name: "cowsay-nginx-v1", port: 9080 }]])];

    it("accepts an Ingress to one version's Service, or to a shared Service no HTTPRoute routes", async () => {
        const toOne = ingress("one", "cowsay", { defaultBackend: { service: { name: "cowsay-nginx-v2", port: { number: 9080 } } } });
        assert.deepEqual(await violationsOfStack(noIngressAroundVersionRoutes, [...stack, toOne]), []);
        const unrouted = stack.filter((r) => r.type !== "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute");
        const toShared = ingress("shared", "cowsay", { rules: [{ http: { paths: [pathTo("cowsay-nginx")] } }] });
        assert.deepEqual(await violationsOfStack(noIngressAroundVersionRoutes, [...unrouted, toShared]), []);
    });

    it("reports an Ingress to the Service over every version while HTTPRoutes pick versions", async () => {
        const bypass = ingress("bypass", "cowsay", { rules: [{ http: { paths: [pathTo("cowsay-nginx")] } }] });
        assert.deepEqual(await violationsOfStack(noIngressAroundVersionRoutes, [...stack, bypass]), [
            {
                message:
                    'Ingress "bypass": spec.rules[0].http.paths[0].backend.service.name "cowsay-nginx" points at Service cowsay/cowsay-nginx, ' +
                    'which selects the pods of versions "v1", "v2" that HTTPRoutes route to one by one; the Ingress would spread requests ' +
                    "over every version. Route through the Gateway and an HTTPRoute instead.",
                urn: bypass.urn,
            },
        ]);
    });
});
