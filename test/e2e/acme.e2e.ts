// issuer acme against the API server with istiod (scripts/cluster.sh with COWSAY_CLUSTER_ISTIOD=1), real
// engine, real Kubernetes provider: an HTTP-01 challenge on port 80 reaches the solver and everything
// else on port 80 is redirected, as istiod pushes it to the ingress gateway, for each routing API.
// cert-manager does not run here (its component plugin cannot be fetched): the suite plays its part,
// creating for a challenge exactly what its solver would (an Ingress of the Issuer's class, or an
// HTTPRoute on the Issuer's parentRefs; a Service for the solver pod), from the Issuer the program
// wrote, so the solver's wiring is what is tested. The Gateway API stack runs in an app namespace of
// its own, as a second stack on a shared mesh does. Needs `scripts/cluster.sh build` and the engine.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { LocalCluster } from "../support/cluster";
import { APP_NAMESPACE, GATEWAY_SELECTOR, HOST, INGRESS_NAMESPACE, NO_INSTALLS } from "../support/constants";
import { EngineStack, requirePulumi } from "../support/engine";
import type { KubeObject } from "../support/gateway";
import { createGatewayService, createTlsSecret, IstioRoutes } from "../support/istio-routes";

const TOKEN = "x";
const CHALLENGE_PATH = `/.well-known/acme-challenge/${TOKEN}`;
/** cert-manager's names are generated (`cm-acme-http-solver-<random>`); one fixed name stands for them. */
const SOLVER = "cm-acme-http-solver-e2e";
/** The port cert-manager's solver pod listens on. */
const SOLVER_PORT = 8089;
const ACME = { ...NO_INSTALLS, issuer: "acme", acmeEmail: "ops@example.com", smokeCheck: "false", activeVersion: "v1" };

type Http01 = { ingress?: { ingressClassName: string }; gatewayHTTPRoute?: { parentRefs: Record<string, unknown>[] } };

before(requirePulumi);

/** The one Issuer of the stack in `namespace`, as the API server has it, and its HTTP-01 solver. */
async function issuerSolver(cluster: LocalCluster, namespace: string): Promise<{ issuer: KubeObject; http01: Http01 }> {
    const issuers = await cluster.get("issuers.cert-manager.io", namespace);
    assert.equal(issuers.length, 1, JSON.stringify(issuers.map((i) => i.metadata.name)));
    const solvers = (issuers[0].spec as { acme: { solvers: { http01: Http01 }[] } }).acme.solvers;
    assert.equal(solvers.length, 1);
    return { issuer: issuers[0], http01: solvers[0].http01 };
}

/**
 * What cert-manager creates to solve one challenge for `host` with the Issuer's solver, in the
 * Issuer's namespace (the Challenge's): the solver's Service, and an Ingress (ingress solver, path as
 * cert-manager writes it, ImplementationSpecific) or an HTTPRoute (Gateway API solver, Exact path).
 */
async function solveLikeCertManager(cluster: LocalCluster, namespace: string, host: string, http01: Http01): Promise<void> {
    const service = {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: SOLVER, namespace },
        spec: { selector: { "acme.cert-manager.io/http01-solver": "true" }, ports: [{ name: "http", port: SOLVER_PORT, targetPort: SOLVER_PORT }] },
    };
    const route =
        http01.ingress !== undefined
            ? {
                  apiVersion: "networking.k8s.io/v1",
                  kind: "Ingress",
                  metadata: { name: SOLVER, namespace },
                  spec: {
                      ingressClassName: http01.ingress.ingressClassName,
                      rules: [
                          {
                              host,
                              http: {
                                  paths: [
                                      {
                                          path: CHALLENGE_PATH,
                                          pathType: "ImplementationSpecific",
                                          backend: { service: { name: SOLVER, port: { number: SOLVER_PORT } } },
                                      },
                                  ],
                              },
                          },
                      ],
                  },
              }
            : {
                  apiVersion: "gateway.networking.k8s.io/v1",
                  kind: "HTTPRoute",
                  metadata: { name: SOLVER, namespace },
                  spec: {
                      parentRefs: http01.gatewayHTTPRoute?.parentRefs,
                      hostnames: [host],
                      rules: [
                          {
                              matches: [{ path: { type: "Exact", value: CHALLENGE_PATH } }],
                              backendRefs: [{ group: "", kind: "Service", name: SOLVER, namespace, port: SOLVER_PORT, weight: 1 }],
                          },
                      ],
                  },
              };
    const file = path.join(cluster.state, `${namespace}-solver.json`);
    writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: [service, route] }));
    const applied = await cluster.kubectl("apply", "-f", file);
    assert.equal(applied.code, 0, applied.stderr);
}

describe("issuer acme: an HTTP-01 challenge on port 80 reaches the solver, the rest is redirected (istiod's push)", () => {
    let cluster: LocalCluster;
    const stacks: EngineStack[] = [];
    const SUITES = [
        { api: "istio", app: APP_NAMESPACE, ingress: INGRESS_NAMESPACE, host: HOST },
        // A second stack on the mesh: an app namespace, an ingress namespace and a host of its own.
        { api: "gateway-api", app: `${APP_NAMESPACE}-acme-gw`, ingress: `${INGRESS_NAMESPACE}-acme-gw`, host: "acme-gw.example.com" },
    ] as const;

    before(async () => {
        cluster = await LocalCluster.up({ crds: true, istiod: true });
        for (const s of SUITES) {
            await createGatewayService(cluster, s.ingress, GATEWAY_SELECTOR);
            await createTlsSecret(cluster, s.ingress, s.host);
        }
    });
    after(async () => {
        for (const stack of stacks) stack.dispose();
        await cluster?.down();
    });

    for (const s of SUITES) {
        it(`routingApi ${s.api}: before a challenge port 80 is one redirect route; with the solver's objects the challenge path goes to the solver's Service, others to the 301`, async () => {
            const stack = await EngineStack.create({
                config: { ...ACME, routingApi: s.api, gatewayApiCrds: "none", appNamespace: s.app, ingressNamespace: s.ingress, hostname: s.host },
                target: "cluster",
                env: cluster.env,
            });
            stacks.push(stack);
            await stack.deploy();
            const routes = new IstioRoutes(cluster, { ingressNamespace: s.ingress, selector: GATEWAY_SELECTOR, host: s.host });
            const redirect = `/ -> redirect 301 https://${s.host}/`;
            // A route, not the virtual host's require-TLS (which would redirect the challenge as well).
            await routes.ingress.waitForTable(s.host, 80, [redirect], 30);
            // HTTPS keeps serving the live route.
            await routes.expectGatewayLive(s.api === "istio" ? "v1" : "cowsay-nginx-v1", 30);

            const { issuer, http01 } = await issuerSolver(cluster, s.ingress);
            assert.equal(issuer.metadata.namespace, s.ingress);
            if (s.api === "istio") assert.equal(http01.ingress?.ingressClassName, "istio");
            else assert.equal((http01.gatewayHTTPRoute?.parentRefs ?? [])[0]?.name, `${s.app}-cowsay-nginx-gateway`);
            await solveLikeCertManager(cluster, String(issuer.metadata.namespace), s.host, http01);

            const table = [`${CHALLENGE_PATH} -> ${SOLVER}`, redirect];
            await routes.ingress.waitForTable(s.host, 80, table, 30);
            const challenge = await routes.ingress.route({ host: s.host, port: 80, path: CHALLENGE_PATH });
            assert.equal(challenge.kind, "cluster", JSON.stringify(challenge));
            assert.equal(challenge.kind === "cluster" ? challenge.cluster : "", `outbound|${SOLVER_PORT}||${SOLVER}.${s.ingress}.svc.cluster.local`);
            for (const other of ["/moo", "/.well-known/acme-challenge/another-token", "/.well-known/"]) {
                assert.deepEqual(
                    await routes.ingress.route({ host: s.host, port: 80, path: other }),
                    { kind: "redirect", status: 301, location: `https://${s.host}${other}` },
                    other,
                );
            }
        });
    }
});
