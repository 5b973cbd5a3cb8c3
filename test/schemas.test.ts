// Every Kubernetes object the program emits, checked against the upstream OpenAPI / CRD schemas
// shipped by kubernetes-models, @kubernetes-models/istio, @kubernetes-models/cert-manager and
// @kubernetes-models/gateway-api.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { kubernetesObjects, runProgram } from "./support/helpers";

interface Validatable {
    validate(): void;
}
type Model = new (data: Record<string, unknown>) => Validatable;

// Keyed by the Pulumi type token, which carries apiVersion and kind. The model packages are
// ECMAScript modules whose exports offer only "import", hence the dynamic imports.
let MODELS: Record<string, Model> = {};

async function loadModels(): Promise<Record<string, Model>> {
    const m = (mod: Record<string, unknown>, name: string) => mod[name] as Model;
    return {
        "kubernetes:core/v1:Namespace": m(await import("kubernetes-models/v1/Namespace"), "Namespace"),
        "kubernetes:core/v1:Service": m(await import("kubernetes-models/v1/Service"), "Service"),
        "kubernetes:apps/v1:Deployment": m(await import("kubernetes-models/apps/v1/Deployment"), "Deployment"),
        "kubernetes:policy/v1:PodDisruptionBudget": m(await import("kubernetes-models/policy/v1/PodDisruptionBudget"), "PodDisruptionBudget"),
        "kubernetes:networking.k8s.io/v1:IngressClass": m(await import("kubernetes-models/networking.k8s.io/v1/IngressClass"), "IngressClass"),
        "kubernetes:networking.istio.io/v1:DestinationRule": m(
            await import("@kubernetes-models/istio/networking.istio.io/v1/DestinationRule"),
            "DestinationRule",
        ),
        "kubernetes:networking.istio.io/v1:Gateway": m(await import("@kubernetes-models/istio/networking.istio.io/v1/Gateway"), "Gateway"),
        "kubernetes:networking.istio.io/v1:VirtualService": m(await import("@kubernetes-models/istio/networking.istio.io/v1/VirtualService"), "VirtualService"),
        "kubernetes:security.istio.io/v1:PeerAuthentication": m(
            await import("@kubernetes-models/istio/security.istio.io/v1/PeerAuthentication"),
            "PeerAuthentication",
        ),
        "kubernetes:security.istio.io/v1:AuthorizationPolicy": m(
            await import("@kubernetes-models/istio/security.istio.io/v1/AuthorizationPolicy"),
            "AuthorizationPolicy",
        ),
        "kubernetes:cert-manager.io/v1:Issuer": m(await import("@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer"), "Issuer"),
        "kubernetes:cert-manager.io/v1:Certificate": m(await import("@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate"), "Certificate"),
        "kubernetes:gateway.networking.k8s.io/v1:Gateway": m(await import("@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway"), "Gateway"),
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": m(
            await import("@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute"),
            "HTTPRoute",
        ),
    };
}

function apiVersionOf(type: string): { apiVersion: string; kind: string } {
    const [, groupVersion, kind] = type.split(":");
    return { apiVersion: groupVersion.replace(/^core\//, ""), kind };
}

const STACKS: Record<string, Record<string, string>> = {
    "the example stack": {},
    "v2 live, idle versions stopped": { activeVersion: "v2", idleReplicas: "0" },
    "a 90/10 split with a gated v3": {
        versions: JSON.stringify({
            v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O", replicas: 4 },
            v3: { image: "registry.example.com:5000/cowsay@sha256:" + "a".repeat(64), expect: "v3" },
        }),
        trafficSplit: JSON.stringify({ v1: 90, v2: 10 }),
        gatewayUrl: "https://203.0.113.10",
    },
    "ACME on an existing mesh, plain HTTP, extra callers": {
        installIstio: "false",
        installCertManager: "false",
        issuer: "acme",
        acmeEmail: "ops@example.com",
        httpsRedirect: "false",
        testRouteHeader: "",
        smokeCheck: "false",
        meshClients: JSON.stringify(["cluster.local/ns/shop/sa/frontend"]),
    },
    "ACME with the HTTPS redirect (a port-80 Gateway and redirect route)": { issuer: "acme", acmeEmail: "ops@example.com" },
    "gateway-api: ACME with the HTTPS redirect, a second stack's app namespace": {
        routingApi: "gateway-api",
        issuer: "acme",
        acmeEmail: "ops@example.com",
        appNamespace: "shop",
        hostname: "shop.example.com",
    },
    "gateway-api: ACME, plain HTTP": { routingApi: "gateway-api", issuer: "acme", acmeEmail: "ops@example.com", httpsRedirect: "false" },
    "gateway-api: v2 live, gated, idle versions stopped": {
        routingApi: "gateway-api",
        activeVersion: "v2",
        idleReplicas: "0",
        gatewayUrl: "https://203.0.113.10",
    },
    "gateway-api on an existing mesh: a 90/10 split, plain HTTP, CRDs from a mirror": {
        routingApi: "gateway-api",
        installIstio: "false",
        installCertManager: "false",
        httpsRedirect: "false",
        trafficSplit: JSON.stringify({ v1: 90, v2: 10 }),
        gatewayApiCrds: "https://mirror.example.com/gateway-api/standard-install.yaml",
    },
};

describe("every emitted Kubernetes object matches its upstream schema", () => {
    before(async () => {
        MODELS = await loadModels();
    });

    for (const [label, config] of Object.entries(STACKS)) {
        it(label, async () => {
            const run = await runProgram(config);
            assert.equal(run.error, undefined);
            const objects = kubernetesObjects(run);
            assert.ok(objects.length >= 10, `expected the whole app, got ${objects.length} objects`);
            for (const object of objects) {
                const model = MODELS[object.type];
                assert.ok(model !== undefined, `no schema for ${object.type}: add its model to this test`);
                const data = { ...object.inputs, ...apiVersionOf(object.type) };
                assert.doesNotThrow(() => new model(data).validate(), `${object.type} ${object.name}`);
            }
        });
    }

    it("rejects an object that breaks its schema (the check can fail)", () => {
        const broken = {
            apiVersion: "networking.istio.io/v1",
            kind: "VirtualService",
            spec: { http: [{ route: [{ destination: { port: { number: "80" } } }] }] },
        };
        const model = MODELS["kubernetes:networking.istio.io/v1:VirtualService"];
        assert.throws(() => new model(broken).validate(), /port|number|integer/i);
        const brokenRoute = {
            apiVersion: "gateway.networking.k8s.io/v1",
            kind: "HTTPRoute",
            metadata: { name: "x" },
            spec: { rules: [{ backendRefs: [{ name: "a", port: "80" }] }] },
        };
        assert.throws(() => new MODELS["kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"](brokenRoute).validate(), /port must be integer/);
    });
});
