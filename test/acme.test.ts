// issuer acme under Pulumi mocks: the HTTP-01 solver each routing API gives the Issuer reaches that
// API's port 80 past the HTTPS redirect (the Gateway and listener it names exist and admit the
// solver's route; the Istio redirect is a catch-all route, never the gateway's require-TLS), stacks
// on the selfsigned issuer keep every object as it was, and two stacks on one mesh with app
// namespaces of their own share no object. What istiod really pushes for port 80 is checked end to
// end (test/e2e/cluster.e2e.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
    GW,
    HTTPROUTE,
    K8S_GATEWAY,
    VS,
    byKey,
    find,
    kubernetesObjects,
    metadataOf,
    ofType,
    runProgram,
    spec,
    type Registered,
    type Run,
    type Spec,
} from "./support/helpers";

const ISSUER = "kubernetes:cert-manager.io/v1:Issuer";
const CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate";
const INGRESS_CLASS = "kubernetes:networking.k8s.io/v1:IngressClass";
const CERT_MANAGER = "kubernetes-cert-manager:index:CertManager";
const ACME = { issuer: "acme", acmeEmail: "ops@example.com" };
const GA = { routingApi: "gateway-api" };

const solverOf = (run: Run): Spec => {
    const solvers = spec(find(run, ISSUER)).acme.solvers as Spec[];
    assert.equal(solvers.length, 1);
    return solvers[0].http01 as Spec;
};
const namesOf = (rs: readonly Registered[]) => rs.map((r) => metadataOf(r).name).sort();

describe("issuer acme, routingApi gateway-api: the solver's HTTPRoute attaches to port 80 and wins over the redirect", () => {
    it("names the program's Gateway and its plain-HTTP listener, which admits routes from the Issuer's namespace", async () => {
        for (const config of [
            { ...GA, ...ACME },
            { ...GA, ...ACME, appNamespace: "shop", hostname: "shop.example.com" },
        ] as Record<string, string>[]) {
            const run = await runProgram(config);
            assert.equal(run.error, undefined);
            const issuer = find(run, ISSUER);
            const [ref, ...more] = solverOf(run).gatewayHTTPRoute.parentRefs as Spec[];
            assert.deepEqual(more, []);
            // cert-manager creates the route in the Challenge's namespace, the Issuer's.
            const routeNamespace = metadataOf(issuer).namespace;
            const gateway = find(run, K8S_GATEWAY, ref.name);
            assert.equal(metadataOf(gateway).namespace, ref.namespace);
            assert.deepEqual([ref.group, ref.kind], ["gateway.networking.k8s.io", "Gateway"]);
            const listener = (spec(gateway).listeners as Spec[]).find((l) => l.name === ref.sectionName) as Spec;
            assert.deepEqual([listener.port, listener.protocol, listener.hostname], [80, "HTTP", config.hostname ?? "cowsay.example.com"]);
            assert.deepEqual(listener.allowedRoutes, { namespaces: { from: "Same" } });
            assert.equal(routeNamespace, metadataOf(gateway).namespace, "Same admits the solver's route");
        }
    });

    it("leaves the redirect route a catch-all on that listener: the solver's Exact path takes precedence", async () => {
        const run = await runProgram({ ...GA, ...ACME });
        const redirect = find(run, HTTPROUTE, "cowsay-nginx-redirect");
        const ref = (solverOf(run).gatewayHTTPRoute.parentRefs as Spec[])[0];
        assert.deepEqual(
            (spec(redirect).parentRefs as Spec[]).map((p) => [p.name, p.sectionName]),
            [[ref.name, ref.sectionName]],
        );
        const rules = spec(redirect).rules as Spec[];
        assert.equal(rules.length, 1);
        assert.equal(rules[0].matches, undefined, "no match: a prefix '/', below any Exact path");
        assert.deepEqual(rules[0].filters, [{ type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } }]);
    });

    it("without the redirect, the plain-HTTP listener admits routes from the app's and the Issuer's namespaces", async () => {
        const run = await runProgram({ ...GA, ...ACME, httpsRedirect: "false" });
        const listener = (spec(find(run, K8S_GATEWAY)).listeners as Spec[]).find((l) => l.name === "http") as Spec;
        assert.deepEqual(listener.allowedRoutes.namespaces.selector, {
            matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["cowsay", metadataOf(find(run, ISSUER)).namespace] }],
        });
        const selfSigned = await runProgram({ ...GA, httpsRedirect: "false" });
        const before = (spec(find(selfSigned, K8S_GATEWAY)).listeners as Spec[]).find((l) => l.name === "http") as Spec;
        assert.deepEqual(before.allowedRoutes.namespaces.selector, { matchLabels: { "kubernetes.io/metadata.name": "cowsay" } });
    });

    it("installs cert-manager with its Gateway API support on, after the Gateway API CRDs", async () => {
        const run = await runProgram({ ...GA, ...ACME });
        const certManager = find(run, CERT_MANAGER);
        assert.equal((certManager.inputs.helmOptions as Spec).values.config.enableGatewayAPI, true);
        assert.ok(certManager.dependsOn.includes("kubernetes:yaml/v2:ConfigFile::gateway-api-standard-install"), certManager.dependsOn.join(", "));
        // The Istio API's solver is an Ingress: cert-manager as before.
        const istio = await runProgram(ACME);
        assert.equal((find(istio, CERT_MANAGER).inputs.helmOptions as Spec).values, undefined);
    });
});

describe("issuer acme, routingApi istio: the solver's Ingress is Istio's, and port 80 redirects by a route", () => {
    it("the Issuer's ingress class is the IngressClass the stack creates, for Istio's ingress controller", async () => {
        for (const [config, name] of [
            [ACME, "istio"],
            [{ ...ACME, appNamespace: "shop", hostname: "shop.example.com" }, "shop-istio"],
        ] as const) {
            const run = await runProgram(config);
            assert.equal(run.error, undefined);
            const ingressClass = find(run, INGRESS_CLASS);
            assert.deepEqual(solverOf(run), { ingress: { ingressClassName: name } });
            assert.equal(metadataOf(ingressClass).name, name);
            assert.deepEqual(spec(ingressClass), { controller: "istio.io/ingress-controller" });
        }
    });

    it("no Gateway server redirects by tls.httpsRedirect; port 80 has a Gateway of its own, bound only by a catch-all redirect", async () => {
        const run = await runProgram(ACME);
        const servers: Spec[] = ofType(run, GW).flatMap((g) =>
            (spec(g).servers as Spec[]).map((s) => ({ gateway: `${metadataOf(g).namespace}/${metadataOf(g).name}`, ...s })),
        );
        assert.deepEqual(
            servers.filter((s) => s.tls?.httpsRedirect !== undefined),
            [],
            "require-TLS would redirect the challenge too",
        );
        const http = servers.filter((s) => s.port.number === 80);
        assert.equal(http.length, 1);
        const boundToHttp = ofType(run, VS).filter((vs) => (spec(vs).gateways as string[]).includes(http[0].gateway));
        assert.deepEqual(namesOf(boundToHttp), ["cowsay-nginx-https-redirect"]);
        assert.deepEqual(spec(boundToHttp[0]).http, [{ name: "https-redirect", redirect: { scheme: "https", redirectCode: 301 } }]);
        assert.deepEqual(spec(boundToHttp[0]).hosts, ["cowsay.example.com"]);
        // The live and test routes stay on HTTPS: nothing of the app is served in plain HTTP.
        const https = servers.filter((s) => s.port.number === 443);
        assert.deepEqual(
            https.map((s) => s.hosts),
            [["cowsay.example.com"]],
        );
        for (const vs of ofType(run, VS).filter((v) => v !== boundToHttp[0])) {
            assert.deepEqual(
                (spec(vs).gateways as string[]).filter((g) => g !== "mesh"),
                [https[0].gateway],
                metadataOf(vs).name,
            );
        }
    });

    it("the HTTPS Gateway gives up port 80 only after the port-80 Gateway and its redirect exist (no gap on an upgrade)", async () => {
        const run = await runProgram(ACME);
        const gateway = find(run, GW, "cowsay-nginx-gateway");
        assert.ok(gateway.dependsOn.includes(`${GW}::cowsay-http-gateway`), gateway.dependsOn.join(", "));
        assert.ok(gateway.dependsOn.includes(`${VS}::cowsay-https-redirect`), gateway.dependsOn.join(", "));
    });

    it("without the redirect, ACME changes only the Issuer (and the Certificate's reference to it) and adds the IngressClass", async () => {
        const [selfSigned, acme] = [await runProgram({ httpsRedirect: "false" }), await runProgram({ ...ACME, httpsRedirect: "false" })];
        const [a, b] = [byKey(selfSigned), byKey(acme)];
        const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k) && !k.startsWith("pulumi:pulumi:Stack"));
        // The Certificate names the Issuer of the other kind.
        assert.deepEqual(changed.sort(), [`${CERTIFICATE}::tls-certificate`, `${ISSUER}::tls-issuer`, `${INGRESS_CLASS}::cowsay-ingress-class`].sort());
    });
});

describe("issuer selfsigned: every object as before", () => {
    for (const [label, config] of [
        ["istio", {}],
        ["gateway-api", GA],
    ] as const) {
        it(`${label}: the redirect, the names and the Issuer are those stacks run; ACME adds or changes only the Issuer and port 80's objects`, async () => {
            const run = await runProgram(config);
            assert.deepEqual([metadataOf(find(run, ISSUER)).name, spec(find(run, ISSUER))], ["tls-selfsigned", { selfSigned: {} }]);
            assert.deepEqual(ofType(run, INGRESS_CLASS), []);
            assert.equal((find(run, CERT_MANAGER).inputs.helmOptions as Spec).values, undefined);
            if (label === "istio") {
                assert.deepEqual(namesOf(ofType(run, GW)), ["cowsay-nginx-gateway"]);
                assert.deepEqual(
                    (spec(find(run, GW)).servers as Spec[]).map((s) => [s.port.number, s.tls?.httpsRedirect]),
                    [
                        [80, true],
                        [443, undefined],
                    ],
                );
                assert.deepEqual(namesOf(ofType(run, VS)), ["cowsay-nginx", "cowsay-nginx-test"]);
            } else {
                assert.deepEqual(namesOf(ofType(run, K8S_GATEWAY)), ["cowsay-nginx-gateway"]);
                assert.ok(namesOf(ofType(run, HTTPROUTE)).includes("cowsay-nginx-redirect"));
            }
            // What an acme stack changes: the Issuer (and cert-manager's values), the Gateways and port 80's routes.
            const acme = await runProgram({ ...config, ...ACME });
            const [a, b] = [byKey(run), byKey(acme)];
            const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k) && !k.startsWith("pulumi:pulumi:Stack"));
            const expected =
                label === "istio"
                    ? [`${GW}::cowsay-gateway`, `${GW}::cowsay-http-gateway`, `${VS}::cowsay-https-redirect`, `${INGRESS_CLASS}::cowsay-ingress-class`]
                    : [`${CERT_MANAGER}::tls-cert-manager`];
            // The Issuer, and the Certificate's reference to it, change with the issuer in any case.
            expected.push(`${ISSUER}::tls-issuer`, `${CERTIFICATE}::tls-certificate`);
            assert.deepEqual(changed.sort(), expected.sort());
        });
    }
});

describe("two stacks on one cluster: a second one shares the mesh with an app namespace of its own", () => {
    const SECOND = { installIstio: "false", installCertManager: "false", appNamespace: "shop", hostname: "shop.example.com" };
    /** Kind, namespace and name: what the API server keys an object by. */
    const identities = (run: Run) =>
        kubernetesObjects(run).map((r) => `${r.type.split(":")[2]} ${metadataOf(r).namespace ?? "(cluster)"}/${metadataOf(r).name}`);

    for (const [label, extra] of [
        ["istio, selfsigned", {}],
        ["istio, acme", ACME],
        ["gateway-api, selfsigned", GA],
        ["gateway-api, acme", { ...GA, ...ACME }],
    ] as const) {
        it(`${label}: no object of one is an object of the other`, async () => {
            const first = identities(await runProgram({ ...extra }));
            const second = identities(await runProgram({ ...extra, ...SECOND }));
            assert.ok(
                second.some((id) => id.includes(" istio-ingress/")),
                "the second stack does write into the shared ingress namespace",
            );
            assert.deepEqual(
                first.filter((id) => second.includes(id)),
                [],
            );
        });
    }

    it("no stack's names change on an upgrade: one deployed before the prefix keeps its names, one deployed since keeps its prefix", async () => {
        const shop = { ...GA, ...SECOND };
        const ran = { trafficSplit: { v1: 100 }, versions: { v1: { image: "dougbtv/nginx-cowsay:v1" }, v2: { image: "dougbtv/nginx-cowsay:v2" } } };
        const names = (run: Run) =>
            [
                find(run, ISSUER),
                find(run, K8S_GATEWAY),
                find(run, HTTPROUTE, metadataOf(ofType(run, HTTPROUTE).find((r) => metadataOf(r).namespace === "istio-ingress") as Registered).name),
            ].map((r) => metadataOf(r).name);
        const fresh = await runProgram(shop);
        assert.deepEqual(names(fresh), ["shop-tls-selfsigned", "shop-cowsay-nginx-gateway", "shop-cowsay-nginx-redirect"]);
        assert.equal(fresh.outputs.sharedNamePrefix, "shop-");
        const before = await runProgram(shop, { previousOutputs: ran });
        assert.deepEqual(
            names(before),
            ["tls-selfsigned", "cowsay-nginx-gateway", "cowsay-nginx-redirect"],
            "deployed before sharedNamePrefix: its names as they are",
        );
        assert.equal(before.outputs.sharedNamePrefix, "");
        const moved = await runProgram({ ...shop, appNamespace: "shop2" }, { previousOutputs: { ...ran, sharedNamePrefix: "shop-" } });
        assert.deepEqual(names(moved), names(fresh), "the prefix the stack first ran with");
    });

    it("the second stack's objects in the ingress namespace carry its app namespace; its Certificate follows its host", async () => {
        const run = await runProgram({ ...GA, ...ACME, ...SECOND });
        const shared = kubernetesObjects(run).filter((r) => metadataOf(r).namespace === "istio-ingress");
        assert.deepEqual(shared.map((r) => `${r.type.split(":")[2]} ${metadataOf(r).name}`).sort(), [
            "Certificate shop-example-com-tls",
            "Gateway shop-cowsay-nginx-gateway",
            "HTTPRoute shop-cowsay-nginx-redirect",
            "Issuer shop-tls-acme",
        ]);
        assert.equal(spec(find(run, ISSUER)).acme.privateKeySecretRef.name, "shop-tls-acme-account");
        assert.equal(spec(find(run, CERTIFICATE)).issuerRef.name, "shop-tls-acme");
        // The app's routes name the renamed Gateway.
        for (const route of ofType(run, HTTPROUTE).filter((r) => metadataOf(r).namespace === "shop" && metadataOf(r).name !== "cowsay-nginx-mesh")) {
            assert.deepEqual(
                (spec(route).parentRefs as Spec[]).map((p) => `${p.namespace}/${p.name}`),
                ["istio-ingress/shop-cowsay-nginx-gateway"],
            );
        }
    });
});
