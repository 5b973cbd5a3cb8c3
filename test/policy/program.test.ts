// The program and the policy pack together: what the program emits for every kind of stack passes
// every policy, and the one thing a policy exists to stop (a stopped idle version without the
// explicit opt-in) is caught on the program's own output.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { policies, routeBackendsSelectOneVersion, versionsKeepAReplica } from "../../policy/policies";
import { DEPLOYMENT, HTTPROUTE, find, runProgram, type Run } from "../support/helpers";
import { resourceArgs, stackArgs, stackResource, violationsOf } from "./harness";

async function violations(run: Run): Promise<string[]> {
    const found: string[] = [];
    for (const policy of policies) {
        if ("validateResource" in policy) {
            for (const r of run.resources) {
                const seen = await violationsOf((report) => policy.validateResource(resourceArgs(r.type, r.name, r.inputs), report));
                found.push(...seen.map((v) => `${policy.name}: ${v.message}`));
            }
        } else {
            const resources = run.resources.map((r) => stackResource(r.type, r.name, r.inputs));
            const seen = await violationsOf((report) => policy.validateStack(stackArgs(resources), report));
            found.push(...seen.map((v) => `${policy.name}: ${v.message}`));
        }
    }
    return found;
}

const STACKS: Record<string, Record<string, string>> = {
    "the example stack": {},
    "v2 live": { activeVersion: "v2", gatewayUrl: "https://203.0.113.10" },
    "a 90/10 split": { trafficSplit: '{"v1":90,"v2":10}' },
    "idle versions stopped, explicitly": { idleReplicas: "0" },
    "a v3 added": {
        versions: JSON.stringify({
            v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
            v3: { image: "dougbtv/nginx-cowsay:v3", expect: "v3" },
        }),
    },
    "ACME (a port-80 Gateway and redirect route, an IngressClass)": { issuer: "acme", acmeEmail: "ops@example.com" },
    "gateway-api, the example stack": { routingApi: "gateway-api" },
    "gateway-api, ACME, a second stack's app namespace": {
        routingApi: "gateway-api",
        issuer: "acme",
        acmeEmail: "ops@example.com",
        appNamespace: "shop",
        hostname: "shop.example.com",
    },
    "gateway-api, a 90/10 split, idle v3 stopped": {
        routingApi: "gateway-api",
        trafficSplit: '{"v1":90,"v2":10}',
        idleReplicas: "0",
        versions: JSON.stringify({
            v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
            v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
            v3: { image: "dougbtv/nginx-cowsay:v3", expect: "v3" },
        }),
    },
};

describe("the program's output under the policy pack", () => {
    for (const [label, config] of Object.entries(STACKS)) {
        it(`${label}: no violations`, async () => {
            assert.deepEqual(await violations(await runProgram(config)), []);
        });
    }

    it("catches a stopped idle version whose opt-in annotation is missing", async () => {
        const run = await runProgram({ idleReplicas: "0" });
        const idle = find(run, DEPLOYMENT, "cowsay-nginx-v2");
        const stripped = { ...idle.inputs, metadata: { ...(idle.inputs.metadata as object), annotations: {} } };
        const seen = await violationsOf((report) => versionsKeepAReplica.validateResource(resourceArgs(idle.type, idle.name, stripped), report));
        assert.equal(seen.length, 1);
        assert.match(seen[0].message, /replicas/);
    });

    it("catches a live HTTPRoute whose backend is the Service over every version", async () => {
        const run = await runProgram({ routingApi: "gateway-api" });
        const resources = run.resources.map((r) => {
            if (r.type !== HTTPROUTE || r.name !== find(run, HTTPROUTE, "cowsay-nginx").name) return stackResource(r.type, r.name, r.inputs);
            const spec = r.inputs.spec as { rules: { backendRefs: { name: string }[] }[] };
            const rules = spec.rules.map((rule) => ({ ...rule, backendRefs: rule.backendRefs.map((b) => ({ ...b, name: "cowsay-nginx" })) }));
            return stackResource(r.type, r.name, { ...r.inputs, spec: { ...spec, rules } });
        });
        const seen = await violationsOf((report) => routeBackendsSelectOneVersion.validateStack(stackArgs(resources), report));
        assert.deepEqual(
            seen.map((v) => v.message),
            [
                'HTTPRoute "cowsay-route": spec.rules[0].backendRefs[0] Service cowsay/cowsay-nginx selects the pods of versions "v1", "v2", ' +
                    "so the route would spread requests over them; name a Service per version.",
            ],
        );
    });
});
