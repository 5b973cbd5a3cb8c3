// The CrossGuard policies of the cowsay-bluegreen pack. They live apart from index.ts because
// `new PolicyPack` starts a gRPC server: tests import this module and call the validators directly.
//
// Only types come from @pulumi/policy (import type), so this module loads without it at run time.
// The image rule is the program's (lib/image.ts), imported, not restated.
// Keep the syntax within TypeScript 3.8: the Pulumi policy runner falls back to its vendored
// TypeScript 3.8 when the pack's folder has no TypeScript of its own.

import type { PolicyResource, ResourceValidation, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";

// The program's own image rule and annotation, so that the pack and the program agree.
import { ALLOW_ZERO_REPLICAS } from "../lib/annotations";
import { imageProblem } from "../lib/image";

/** A resource policy with exactly one validation function, so callers need not narrow it. */
export interface SingleResourcePolicy extends ResourceValidationPolicy {
    readonly validateResource: ResourceValidation;
}

export const deploymentType = "kubernetes:apps/v1:Deployment";
export const ingressType = "kubernetes:networking.k8s.io/v1:Ingress";
export const serviceType = "kubernetes:core/v1:Service";
/** The Gateway API versions whose HTTPRoute has the same backendRefs. */
export const httpRouteTypes = ["v1", "v1beta1"].map((v) => `kubernetes:gateway.networking.k8s.io/${v}:HTTPRoute`);

/** The Istio networking versions whose VirtualService and DestinationRule share one schema. */
const istioNetworkingVersions = ["v1", "v1beta1", "v1alpha3"];
export const virtualServiceTypes = istioNetworkingVersions.map((v) => `kubernetes:networking.istio.io/${v}:VirtualService`);
export const destinationRuleTypes = istioNetworkingVersions.map((v) => `kubernetes:networking.istio.io/${v}:DestinationRule`);

/** Annotation on a Deployment that allows `spec.replicas: 0` for an idle version: the program's own name for it. */
export const allowZeroReplicasAnnotation = ALLOW_ZERO_REPLICAS;

/** Kubernetes puts objects without metadata.namespace here. */
const defaultNamespace = "default";
/** Istio appends this cluster domain to short host names (its default `cluster.local`). */
const clusterDomain = "cluster.local";

// ---------------------------------------------------------------------------------------------
// Narrow readers for untyped resource properties. Props arrive as plain JSON (wrapped in a proxy
// that throws on values unknown during preview), so every read goes through a guard.

type JsonObject = { readonly [key: string]: unknown };

function asObject(value: unknown): JsonObject | undefined {
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

function asArray(value: unknown): readonly unknown[] {
    return Array.isArray(value) ? value : [];
}

function asString(value: unknown): string | undefined {
    return typeof value === "string" ? value : undefined;
}

/** Reads a nested field, `undefined` as soon as one step is missing or not an object. */
function at(value: unknown, ...path: string[]): unknown {
    let current = value;
    for (const key of path) {
        const obj = asObject(current);
        if (obj === undefined) {
            return undefined;
        }
        current = obj[key];
    }
    return current;
}

/** Renders a value for a violation message: JSON for values, "not set" for a missing one. */
function show(value: unknown): string {
    return value === undefined ? "not set" : JSON.stringify(value);
}

function namespaceOf(props: JsonObject): string {
    return asString(at(props, "metadata", "namespace")) ?? defaultNamespace;
}

// ---------------------------------------------------------------------------------------------
// Deployments

interface PodContainer {
    /** Path of the container from the Deployment, e.g. `spec.template.spec.containers[0]`. */
    readonly path: string;
    readonly name: string | undefined;
    readonly spec: JsonObject;
}

/** The containers and init containers of a Deployment's pod template, with their paths. */
function podContainers(props: JsonObject, kinds: readonly ("containers" | "initContainers")[]): PodContainer[] {
    const result: PodContainer[] = [];
    for (const kind of kinds) {
        asArray(at(props, "spec", "template", "spec", kind)).forEach((item, index) => {
            const spec = asObject(item) ?? {};
            result.push({ path: `spec.template.spec.${kind}[${index}]`, name: asString(spec.name), spec });
        });
    }
    return result;
}

function describeContainer(resourceName: string, container: PodContainer): string {
    const label = container.name === undefined ? "" : ` (${JSON.stringify(container.name)})`;
    return `Deployment ${JSON.stringify(resourceName)}: ${container.path}${label}`;
}

/**
 * Kubernetes annotation values are strings; only the exact string "true" opts in, so a typo such
 * as "yes" or "True" fails closed instead of silently allowing an empty version.
 */
function annotationEnabled(props: JsonObject, annotation: string): boolean {
    return asString(at(props, "metadata", "annotations", annotation)) === "true";
}

export const versionsKeepAReplica: SingleResourcePolicy = {
    name: "versions-keep-a-replica",
    description:
        "A Deployment whose pods carry a `version` label keeps at least one replica, unless it is annotated " + `${allowZeroReplicasAnnotation}: "true".`,
    validateResource: (args, reportViolation) => {
        if (args.type !== deploymentType) {
            return;
        }
        const props: JsonObject = args.props;
        const version = at(props, "spec", "template", "metadata", "labels", "version");
        if (version === undefined || at(props, "spec", "replicas") !== 0) {
            return;
        }
        if (annotationEnabled(props, allowZeroReplicasAnnotation)) {
            return;
        }
        reportViolation(
            `Deployment ${JSON.stringify(args.name)} (pod label version=${show(version)}): spec.replicas is 0; ` +
                `keep at least 1 replica, or set metadata.annotations[${JSON.stringify(allowZeroReplicasAnnotation)}] ` +
                `to "true" to allow an idle version.`,
        );
    },
};

export const imagesPinned: SingleResourcePolicy = {
    name: "images-pinned",
    description: "Every container and init container image of a Deployment has an explicit tag or digest, and no `latest` tag.",
    validateResource: (args, reportViolation) => {
        if (args.type !== deploymentType) {
            return;
        }
        for (const container of podContainers(args.props, ["initContainers", "containers"])) {
            const image = container.spec.image;
            const where = describeContainer(args.name, container);
            if (typeof image !== "string" || image === "") {
                reportViolation(`${where} image is ${show(image)}; set an image pinned to a version tag or digest.`);
                continue;
            }
            const problem = imageProblem(image);
            if (problem !== undefined) {
                reportViolation(`${where} image ${JSON.stringify(image)} is not pinned; expected ${problem}.`);
            }
        }
    },
};

export const containersHardened: SingleResourcePolicy = {
    name: "containers-hardened",
    description:
        "Every container and init container of a Deployment sets resources.limits.cpu, resources.limits.memory " +
        "and securityContext.allowPrivilegeEscalation: false.",
    validateResource: (args, reportViolation) => {
        if (args.type !== deploymentType) {
            return;
        }
        for (const container of podContainers(args.props, ["initContainers", "containers"])) {
            const where = describeContainer(args.name, container);
            for (const limit of ["cpu", "memory"]) {
                const value = at(container.spec, "resources", "limits", limit);
                if (value === undefined || value === null || value === "") {
                    reportViolation(`${where} resources.limits.${limit} is ${show(value)}; set a ${limit} limit.`);
                }
            }
            const escalation = at(container.spec, "securityContext", "allowPrivilegeEscalation");
            if (escalation !== false) {
                reportViolation(`${where} securityContext.allowPrivilegeEscalation is ${show(escalation)}; set it to false.`);
            }
        }
    },
};

// ---------------------------------------------------------------------------------------------
// Istio routing

/**
 * The fully qualified name Istio gives a host written in a resource of `namespace`: like Istio's
 * ResolveShortnameToFQDN, only a name without dots is short; anything with a dot is taken as is.
 */
export function resolveHost(host: string, namespace: string): string {
    return host === "*" || host.indexOf(".") !== -1 ? host : `${host}.${namespace}.svc.${clusterDomain}`;
}

interface DestinationRuleView {
    readonly resource: PolicyResource;
    /** Fully qualified host the rule applies to. */
    readonly host: string;
    readonly subsets: readonly string[];
}

function isOneOf(type: string, types: readonly string[]): boolean {
    return types.indexOf(type) !== -1;
}

function destinationRules(resources: readonly PolicyResource[]): DestinationRuleView[] {
    const rules: DestinationRuleView[] = [];
    for (const resource of resources) {
        if (!isOneOf(resource.type, destinationRuleTypes)) {
            continue;
        }
        const props: JsonObject = resource.props;
        const host = asString(at(props, "spec", "host"));
        if (host === undefined) {
            continue;
        }
        const subsets = asArray(at(props, "spec", "subsets"))
            .map((subset) => asString(at(subset, "name")))
            .filter((name): name is string => name !== undefined);
        rules.push({ resource, host: resolveHost(host, namespaceOf(props)), subsets });
    }
    return rules;
}

export const routeTargetsExistingSubsets: StackValidationPolicy = {
    name: "route-targets-existing-subsets",
    description: "Every VirtualService HTTP route destination names a subset that a DestinationRule for the same host defines.",
    validateStack: (args, reportViolation) => {
        const rules = destinationRules(args.resources);
        for (const resource of args.resources) {
            if (!isOneOf(resource.type, virtualServiceTypes)) {
                continue;
            }
            const props: JsonObject = resource.props;
            const namespace = namespaceOf(props);
            asArray(at(props, "spec", "http")).forEach((http, httpIndex) => {
                asArray(at(http, "route")).forEach((route, routeIndex) => {
                    const host = asString(at(route, "destination", "host"));
                    const subset = asString(at(route, "destination", "subset"));
                    if (host === undefined || subset === undefined) {
                        return; // no subset: the route goes to every endpoint of the host
                    }
                    const fqdn = resolveHost(host, namespace);
                    const forHost = rules.filter((rule) => rule.host === fqdn);
                    const defined = forHost.reduce<string[]>((all, rule) => all.concat(rule.subsets), []);
                    if (defined.indexOf(subset) !== -1) {
                        return;
                    }
                    const where =
                        `VirtualService ${JSON.stringify(resource.name)}: spec.http[${httpIndex}].route[${routeIndex}].destination ` +
                        `host ${JSON.stringify(host)} (${fqdn}) subset ${JSON.stringify(subset)}`;
                    const why =
                        forHost.length === 0
                            ? `no DestinationRule has host ${fqdn}`
                            : `the DestinationRules for ${fqdn} define only ${defined.map((name) => JSON.stringify(name)).join(", ") || "no subsets"}`;
                    reportViolation(`${where} is not defined: ${why}.`, resource.urn);
                });
            });
        }
    },
};

interface IngressBackend {
    readonly path: string;
    readonly serviceName: string;
}

function ingressBackends(props: JsonObject): IngressBackend[] {
    const backends: IngressBackend[] = [];
    const defaultName = asString(at(props, "spec", "defaultBackend", "service", "name"));
    if (defaultName !== undefined) {
        backends.push({ path: "spec.defaultBackend.service.name", serviceName: defaultName });
    }
    asArray(at(props, "spec", "rules")).forEach((rule, ruleIndex) => {
        asArray(at(rule, "http", "paths")).forEach((path, pathIndex) => {
            const name = asString(at(path, "backend", "service", "name"));
            if (name !== undefined) {
                backends.push({ path: `spec.rules[${ruleIndex}].http.paths[${pathIndex}].backend.service.name`, serviceName: name });
            }
        });
    });
    return backends;
}

export const noIngressToSubsetRoutedService: StackValidationPolicy = {
    name: "no-ingress-to-subset-routed-service",
    description:
        "No Ingress backend points at a Service whose versions a DestinationRule splits into subsets: an Ingress ignores " +
        "subsets (Istio IST0140) and would spread requests over every version.",
    validateStack: (args, reportViolation) => {
        const subsetRules = destinationRules(args.resources).filter((rule) => rule.subsets.length > 0);
        for (const resource of args.resources) {
            if (resource.type !== ingressType) {
                continue;
            }
            const props: JsonObject = resource.props;
            const namespace = namespaceOf(props);
            for (const backend of ingressBackends(props)) {
                const fqdn = resolveHost(backend.serviceName, namespace);
                const rule = subsetRules.find((candidate) => candidate.host === fqdn);
                if (rule === undefined) {
                    continue;
                }
                reportViolation(
                    `Ingress ${JSON.stringify(resource.name)}: ${backend.path} ${JSON.stringify(backend.serviceName)} points at ` +
                        `Service ${fqdn}, which DestinationRule ${JSON.stringify(rule.resource.name)} splits into subsets ` +
                        `${rule.subsets.map((name) => JSON.stringify(name)).join(", ")}; an Ingress ignores subsets (Istio IST0140) ` +
                        "and would spread requests over every version. Route through the Istio Gateway and a VirtualService instead.",
                    resource.urn,
                );
            }
        }
    },
};

// ---------------------------------------------------------------------------------------------
// Gateway API routing. It has no subsets: a route picks a version by naming a Service that selects
// only that version's pods. Which versions a Service reaches is read from the Deployments of the
// stack (their pod template labels, `version` among them).

interface ServiceView {
    readonly resource: PolicyResource;
    readonly name: string;
    readonly namespace: string;
    /** The versions whose pods (Deployments of the stack) the selector picks, sorted. */
    readonly versions: readonly string[];
}

function stringMap(value: unknown): Record<string, string> {
    const result: Record<string, string> = {};
    const obj = asObject(value) ?? {};
    for (const key of Object.keys(obj)) {
        const item = asString(obj[key]);
        if (item !== undefined) {
            result[key] = item;
        }
    }
    return result;
}

function versionServices(resources: readonly PolicyResource[]): ServiceView[] {
    const pods = resources
        .filter((r) => r.type === deploymentType)
        .map((r) => ({ namespace: namespaceOf(r.props), labels: stringMap(at(r.props, "spec", "template", "metadata", "labels")) }));
    const views: ServiceView[] = [];
    for (const resource of resources) {
        if (resource.type !== serviceType) {
            continue;
        }
        const props: JsonObject = resource.props;
        const name = asString(at(props, "metadata", "name"));
        if (name === undefined) {
            continue;
        }
        const namespace = namespaceOf(props);
        const selector = stringMap(at(props, "spec", "selector"));
        const keys = Object.keys(selector);
        const versions: string[] = [];
        for (const pod of pods) {
            // A Service without a selector selects no pods (its endpoints are managed by hand).
            const selected = keys.length > 0 && pod.namespace === namespace && keys.every((key) => pod.labels[key] === selector[key]);
            const version = pod.labels.version;
            if (selected && version !== undefined && versions.indexOf(version) === -1) {
                versions.push(version);
            }
        }
        views.push({ resource, name, namespace, versions: versions.sort() });
    }
    return views;
}

function quoteAll(names: readonly string[]): string {
    return names.map((name) => JSON.stringify(name)).join(", ");
}

/** A backendRef or Ingress backend that names a core Service (the default kind). */
function isServiceRef(ref: unknown): boolean {
    const group = asString(at(ref, "group")) ?? "";
    const kind = asString(at(ref, "kind")) ?? "Service";
    return (group === "" || group === "core") && kind === "Service";
}

export const routeBackendsSelectOneVersion: StackValidationPolicy = {
    name: "route-backends-select-one-version",
    description:
        "Every HTTPRoute backendRef to a Service names a Service of the stack whose selector picks the pods of exactly one " +
        "version: the Gateway API's counterpart of a subset. A Service over several versions would spread requests over them.",
    validateStack: (args, reportViolation) => {
        const services = versionServices(args.resources);
        for (const resource of args.resources) {
            if (!isOneOf(resource.type, httpRouteTypes)) {
                continue;
            }
            const props: JsonObject = resource.props;
            const routeNamespace = namespaceOf(props);
            asArray(at(props, "spec", "rules")).forEach((rule, ruleIndex) => {
                asArray(at(rule, "backendRefs")).forEach((ref, refIndex) => {
                    const name = asString(at(ref, "name"));
                    if (name === undefined || !isServiceRef(ref)) {
                        return;
                    }
                    const namespace = asString(at(ref, "namespace")) ?? routeNamespace;
                    const service = services.find((candidate) => candidate.name === name && candidate.namespace === namespace);
                    if (service !== undefined && service.versions.length === 1) {
                        return;
                    }
                    const where = `HTTPRoute ${JSON.stringify(resource.name)}: spec.rules[${ruleIndex}].backendRefs[${refIndex}] Service ${namespace}/${name}`;
                    const why =
                        service === undefined
                            ? "is not a Service of this stack"
                            : service.versions.length === 0
                              ? "selects the pods of no versioned Deployment of this stack"
                              : `selects the pods of versions ${quoteAll(service.versions)}, so the route would spread requests over them; name a Service per version`;
                    reportViolation(`${where} ${why}.`, resource.urn);
                });
            });
        }
    },
};

export const noIngressAroundVersionRoutes: StackValidationPolicy = {
    name: "no-ingress-around-version-routes",
    description:
        "No Ingress backend points at a Service that spans several versions which HTTPRoutes route to one by one: an Ingress " +
        "bypasses the routes and would spread requests over every version.",
    validateStack: (args, reportViolation) => {
        const services = versionServices(args.resources);
        // The versions some HTTPRoute sends requests to, by namespace.
        const routed: string[] = [];
        for (const resource of args.resources) {
            if (!isOneOf(resource.type, httpRouteTypes)) {
                continue;
            }
            const routeNamespace = namespaceOf(resource.props);
            for (const rule of asArray(at(resource.props, "spec", "rules"))) {
                for (const ref of asArray(at(rule, "backendRefs"))) {
                    const namespace = asString(at(ref, "namespace")) ?? routeNamespace;
                    const service = services.find((candidate) => candidate.name === asString(at(ref, "name")) && candidate.namespace === namespace);
                    if (service !== undefined && isServiceRef(ref)) {
                        service.versions.forEach((version) => routed.push(`${namespace}/${version}`));
                    }
                }
            }
        }
        for (const resource of args.resources) {
            if (resource.type !== ingressType) {
                continue;
            }
            const namespace = namespaceOf(resource.props);
            for (const backend of ingressBackends(resource.props)) {
                const service = services.find((candidate) => candidate.name === backend.serviceName && candidate.namespace === namespace);
                if (service === undefined || service.versions.length < 2) {
                    continue;
                }
                if (!service.versions.some((version) => routed.indexOf(`${namespace}/${version}`) !== -1)) {
                    continue;
                }
                reportViolation(
                    `Ingress ${JSON.stringify(resource.name)}: ${backend.path} ${JSON.stringify(backend.serviceName)} points at Service ` +
                        `${namespace}/${backend.serviceName}, which selects the pods of versions ${quoteAll(service.versions)} that HTTPRoutes ` +
                        "route to one by one; the Ingress would spread requests over every version. Route through the Gateway and an HTTPRoute instead.",
                    resource.urn,
                );
            }
        }
    },
};

/** Every policy of the pack, in the order the pack reports them. */
export const policies: (SingleResourcePolicy | StackValidationPolicy)[] = [
    versionsKeepAReplica,
    imagesPinned,
    routeTargetsExistingSubsets,
    noIngressToSubsetRoutedService,
    routeBackendsSelectOneVersion,
    noIngressAroundVersionRoutes,
    containersHardened,
];
