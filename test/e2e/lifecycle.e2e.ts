// End to end with the real Pulumi engine (no cluster), for each routing API (routingApi istio and
// gateway-api): the users' verbs — up, switch, preview, roll back, a weighted split, refuse a bad
// value — against a stack whose Kubernetes provider renders YAML to a directory. Istio and
// cert-manager installs are off (Helm releases cannot render, and no chart can be fetched here). Then
// the gate and plain requests, against the stand-in gateway, which routes with the rendered routes and
// answers with the pages of the rendered versions. The two APIs run the same tests: what differs
// between them (the routes a switch changes, how a route names a version, the titles' words) is one
// row of ROUTING_APIS. The Gateway API's own suites (its CRD install, changing routingApi) are in
// gateway-api.e2e.ts. Each test brings the stack to the state it starts from (EngineStack.deploy), so
// any one of them runs alone.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { APP, configKey, COW, HOTDOG, NO_INSTALLS, ROOT, SHORT_GATE, URN, VERSIONS } from "../support/constants";
import { EngineStack, changedFiles, expectRefusal, plannedChanges, requirePulumi } from "../support/engine";
import { fetchPage, StandInGateway } from "../support/gateway";
import { renderedRoutes } from "../support/rendered-routes";

const changes = plannedChanges;
/** Whether a page shows `marker` (COW or HOTDOG); fails with the page otherwise. */
const assertShows = (page: { body: string }, marker: string, message?: string) => assert.ok(page.body.includes(marker), `${message ?? ""}\n${page.body}`);

/** A rendered route a switch changes: where to find it, its URN in a plan, and what it sends where. */
interface SwitchedRoute {
    readonly kind: string;
    readonly name: string;
    readonly urn: RegExp;
    /** The route's live rule: each backend (as the API names a version) with its weight. */
    readonly backends: (object: unknown) => [string, number | undefined][];
}

/** What differs between the routing APIs in these suites; everything else is written once, below. */
interface RoutingApi {
    /** The config every stack of this API starts from. */
    readonly config: Readonly<Record<string, string>>;
    /** What the suites' titles start with: nothing for the Istio APIs, the default. */
    readonly prefix: string;
    /** The routes a switch changes, and nothing else: the live route (and with the Gateway API the mesh route). */
    readonly routes: readonly SwitchedRoute[];
    /** How a route names `version`: a subset of the shared Service (Istio), the version's own Service (Gateway API). */
    readonly backend: (version: string) => string;
    /** The other API's route kind: a stack of this API renders none. */
    readonly otherRouteKind: string;
    /** What else `up` with v1 renders, checked beside the Deployments and the routes both APIs render. */
    readonly rendersAlso: (stack: EngineStack) => void;
    /** The titles' words for what differs. */
    readonly words: {
        /** What `up` with v1 renders. */
        readonly renders: string;
        /** What a switch's preview plans. */
        readonly plan: string;
        /** The files a switch changes. */
        readonly files: string;
        /** The same files, as a split changes them. */
        readonly sameFiles: string;
        /** The routes a switch changes, as the object of a sentence. */
        readonly routes: string;
        /** The kind the stand-in routes with, plural. */
        readonly routeKinds: string;
    };
}

type VirtualService = { spec: { http: { route: { destination: { subset: string }; weight?: number }[] }[] } };
type HttpRoute = { spec: { rules: { backendRefs: { name: string; weight?: number }[] }[] } };
const virtualServiceBackends = (route: unknown): [string, number | undefined][] =>
    (route as VirtualService).spec.http[0].route.map((r) => [r.destination.subset, r.weight]);
const httpRouteBackends = (route: unknown): [string, number | undefined][] => (route as HttpRoute).spec.rules[0].backendRefs.map((b) => [b.name, b.weight]);

const ISTIO: RoutingApi = {
    config: { ...NO_INSTALLS, activeVersion: "v1" },
    prefix: "",
    routes: [{ kind: "VirtualService", name: APP, urn: URN.istioRoute, backends: virtualServiceBackends }],
    backend: (version) => version,
    otherRouteKind: "HTTPRoute",
    rendersAlso: (stack) => {
        // One subset per version, by the pods' version label: what the route's subsets reach.
        assert.deepEqual(
            stack.object("DestinationRule", APP).object.spec.subsets,
            ["v1", "v2"].map((version) => ({ name: version, labels: { version } })),
        );
    },
    words: {
        renders: "both Deployments, a subset per version and a route to v1",
        plan: "one update, the live route",
        files: "its file",
        sameFiles: "the same file",
        routes: "the route",
        routeKinds: "VirtualServices",
    },
};

const GATEWAY_API: RoutingApi = {
    config: { ...NO_INSTALLS, routingApi: "gateway-api", activeVersion: "v1" },
    prefix: "gateway-api: ",
    routes: [
        { kind: "HTTPRoute", name: APP, urn: URN.httpRoute, backends: httpRouteBackends },
        { kind: "HTTPRoute", name: `${APP}-mesh`, urn: URN.meshRoute, backends: httpRouteBackends },
    ],
    backend: (version) => `${APP}-${version}`,
    otherRouteKind: "VirtualService",
    rendersAlso: (stack) => {
        assert.equal(stack.object("Gateway", `${APP}-gateway`).object.spec.gatewayClassName, "istio");
        for (const version of ["v1", "v2"]) {
            assert.deepEqual(stack.object("Service", `${APP}-${version}`).object.spec.selector, { service: APP, version });
        }
    },
    words: {
        renders: "the Gateway, a Service per version and routes to v1",
        plan: "two updates, the live and mesh routes",
        files: "their files",
        sameFiles: "the same two files",
        routes: "both routes",
        routeKinds: "HTTPRoutes",
    },
};

const ROUTING_APIS: readonly RoutingApi[] = [ISTIO, GATEWAY_API];

/** The backends of each route a switch changes, by the route's name. */
const routeBackends = (api: RoutingApi, stack: EngineStack): Record<string, string[]> =>
    Object.fromEntries(api.routes.map((r) => [r.name, r.backends(stack.object(r.kind, r.name).object).map(([backend]) => backend)]));
/** What routeBackends is when every route sends everything to `version`. */
const allTo = (api: RoutingApi, version: string): Record<string, string[]> => Object.fromEntries(api.routes.map((r) => [r.name, [api.backend(version)]]));
/** The rendered files of the routes a switch changes, as changedFiles lists them. */
const routeFiles = (api: RoutingApi, stack: EngineStack): string[] => api.routes.map((r) => stack.object(r.kind, r.name).file).sort();
/** The routes' entries in the stack's state. */
const routeStates = (api: RoutingApi, state: unknown): unknown[] =>
    (state as { urn: string }[]).filter((resource) => api.routes.some((r) => r.urn.test(resource.urn)));

/**
 * The refusal docs/operations.md promises under "Adding and retiring a version" when a first `--path`
 * starts a new versions map that leaves out the live version: the fenced block after that paragraph,
 * as the one line the CLI prints.
 */
function documentedRefusal(): string {
    const doc = readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
    const paragraph = doc.indexOf("with the commands that declare");
    const open = doc.indexOf("```\n", paragraph);
    const close = doc.indexOf("\n```", open + 4);
    assert.ok(paragraph >= 0 && open > paragraph && close > open, "the refusal under 'Adding and retiring a version' in docs/operations.md");
    return doc
        .slice(open + 4, close)
        .split("\n")
        .join(" ");
}

before(requirePulumi);

for (const api of ROUTING_APIS) {
    describe(`${api.prefix}up, switch, roll back, refuse (real engine, rendered YAML)`, () => {
        let stack: EngineStack;

        before(async () => {
            stack = await EngineStack.create({ config: { ...api.config, smokeCheck: "false" } });
        });
        after(() => stack?.dispose());

        it(`pulumi up with activeVersion=v1 renders ${api.words.renders}`, async () => {
            stack.configure();
            await stack.up();
            assert.deepEqual(routeBackends(api, stack), allTo(api, "v1"));
            for (const version of ["v1", "v2"]) {
                const { object } = stack.object("Deployment", `${APP}-${version}`);
                assert.equal(object.spec.template.spec.containers[0].image, VERSIONS[version].image);
            }
            api.rendersAlso(stack);
            assert.deepEqual(
                stack.objects().filter((o) => o.kind === api.otherRouteKind),
                [],
            );
            assert.ok(stack.rendered().size >= 10);
        });

        for (const [from, to] of [
            ["v1", "v2"],
            ["v2", "v1"],
        ]) {
            it(`switching ${from} -> ${to}: the preview plans ${api.words.plan}, and up changes only ${api.words.files}`, async () => {
                // v2 live after v1, so that the way back is a rollback.
                await stack.deploy(...(from === "v1" ? [{}] : [{}, { activeVersion: "v2" }]));
                const renderedBefore = stack.rendered();
                await stack.pulumi("config", "set", configKey("activeVersion"), to);
                const { steps, result } = await stack.preview();
                assert.equal(result.code, 0, result.stderr);
                const planned = changes(steps);
                assert.deepEqual(
                    planned.map((s) => s.op),
                    api.routes.map(() => "update"),
                    JSON.stringify(planned),
                );
                assert.ok(
                    api.routes.every((r) => planned.some((s) => r.urn.test(s.urn))),
                    JSON.stringify(planned),
                );
                await stack.up();
                assert.deepEqual(routeBackends(api, stack), allTo(api, to));
                assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), routeFiles(api, stack));
            });
        }

        it(`a 90/10 split changes ${api.words.sameFiles}, nothing else`, async () => {
            await stack.deploy();
            const renderedBefore = stack.rendered();
            await stack.pulumi("config", "set", configKey("trafficSplit"), '{"v1":90,"v2":10}');
            await stack.up();
            for (const r of api.routes) {
                assert.deepEqual(
                    r.backends(stack.object(r.kind, r.name).object),
                    [
                        [api.backend("v1"), 90],
                        [api.backend("v2"), 10],
                    ],
                    r.name,
                );
            }
            assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), routeFiles(api, stack));
        });

        it("activeVersion=v3 fails preview and up with the program's message; state and rendered files are unchanged", async () => {
            await stack.deploy();
            await stack.pulumi("config", "set", configKey("activeVersion"), "v3");
            await expectRefusal(stack, 'error: Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2. Nothing was changed.');
        });

        it("passes the policy pack", async () => {
            stack.configure();
            const { result } = await stack.preview("--policy-pack", path.join(ROOT, "policy"));
            assert.equal(result.code, 0, result.stdout + result.stderr);
        });
    });
}

describe("a first --path on a stack that runs the Pulumi.yaml default versions (real engine)", () => {
    let stack: EngineStack;

    before(async () => {
        // No versions of its own: the stack runs v1 and v2 of the Pulumi.yaml default, v1 live.
        stack = await EngineStack.create({ config: { ...NO_INSTALLS } });
    });
    after(() => stack?.dispose());

    it("is refused with the documented message (v1 takes live traffic, how to declare it again), not as an unknown activeVersion; nothing changes", async () => {
        await stack.deploy();
        const message = documentedRefusal();
        assert.match(message, /^Invalid config versions: v1 takes live traffic now, .* Nothing was changed\.$/);
        // The first command of "Adding and retiring a version" (docs/operations.md), typed on this stack.
        await stack.pulumi("config", "set", "--path", "versions.v3.image", "registry.example.com/cowsay:v3");
        await expectRefusal(stack, `error: ${message}`);
        // The commands the message gives declare v1 again; with v3's expect text the update goes through.
        for (const command of /\((pulumi config set .*)\), move/.exec(message)?.[1].split(" && ") ?? []) {
            const args =
                command
                    .replace(/^pulumi /, "")
                    .match(/'[^']*'|\S+/g)
                    ?.map((a) => a.replace(/^'(.*)'$/, "$1")) ?? [];
            await stack.pulumi(...args);
        }
        await stack.pulumi("config", "set", "--path", "versions.v3.expect", "cowsay:v3");
        await stack.up();
        assert.deepEqual(routeBackends(ISTIO, stack), allTo(ISTIO, "v1"));
        assert.equal(stack.object("Deployment", `${APP}-v1`).object.spec.template.spec.containers[0].image, VERSIONS.v1.image);
        assert.equal(stack.object("Deployment", `${APP}-v3`).object.spec.template.spec.containers[0].image, "registry.example.com/cowsay:v3");
    });
});

for (const api of ROUTING_APIS) {
    describe(`${api.prefix}the gate and requests through the stand-in gateway (real engine)`, () => {
        /** Where a switch to a broken v2 leaves the stack: v1 live, activeVersion v2 in config. */
        const FAILED_SWITCH = "a switch to a broken v2 failed";
        let stack: EngineStack;
        let gateway: StandInGateway;
        /** Each test's start: v1 live, the gateway serving every version's own page. */
        const v1Live = async () => {
            await gateway.reset();
            await stack.deploy();
        };

        before(async () => {
            // The stand-in routes with what the stack rendered, at every request, and answers with the chosen version's page.
            gateway = await StandInGateway.start(renderedRoutes(() => Promise.resolve(stack?.objects() ?? [])));
            // The shortest gate: the broken release below is refused after 5 s instead of the default 60.
            stack = await EngineStack.create({ config: { ...api.config, gatewayUrl: `https://${gateway.address}`, smokeCheckTimeout: SHORT_GATE } });
        });
        after(async () => {
            stack?.dispose();
            await gateway?.stop();
        });

        it(`serves the live version without the header and any version with it, through the rendered ${api.words.routeKinds}`, async () => {
            await v1Live();
            assertShows(await fetchPage(gateway), COW);
            assertShows(await fetchPage(gateway, "v2"), HOTDOG, "the idle v2 through its test route");
            assertShows(await fetchPage(gateway, "v1"), COW);
        });

        it(`a switch to a v2 that serves the wrong page fails up and leaves ${api.words.routes} and the state as they were`, async () => {
            await v1Live();
            assert.deepEqual(routeBackends(api, stack), allTo(api, "v1"));
            gateway.serveWrongPage(VERSIONS.v2.image); // v2 is broken
            const routesBefore = routeStates(api, await stack.state());
            assert.equal(routesBefore.length, api.routes.length, "the routes are in the state");
            const renderedBefore = stack.rendered();
            await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
            const { steps } = await stack.preview();
            const planned = changes(steps);
            // One update for the gate, one for each route: nothing else depends on activeVersion.
            assert.deepEqual(
                planned.map((s) => s.op),
                ["update", ...api.routes.map(() => "update")],
            );
            assert.ok(
                [URN.gate, ...api.routes.map((r) => r.urn)].every((urn) => planned.some((s) => urn.test(s.urn))),
                JSON.stringify(planned),
            );
            const up = await stack.run("up", "--yes", "--skip-preview", "--non-interactive");
            assert.notEqual(up.code, 0);
            assert.match(up.stdout + up.stderr, new RegExp(`gate failed after \\d+ s of ${SHORT_GATE} s: version v2 \\(dougbtv/nginx-cowsay:v2\\)`));
            assert.deepEqual(routeBackends(api, stack), allTo(api, "v1"));
            assert.deepEqual(changedFiles(renderedBefore, stack.rendered()), []);
            assert.deepEqual(routeStates(api, await stack.state()), routesBefore, "the routes' state is untouched");
            assertShows(await fetchPage(gateway), COW, "traffic stays on v1");
            stack.remember(FAILED_SWITCH);
        });

        it(`once v2 serves its own page, the same up switches ${api.words.routes}, and plain requests get the hotdog`, async () => {
            await stack.reach(FAILED_SWITCH, async () => {
                await v1Live();
                gateway.serveWrongPage(VERSIONS.v2.image);
                await stack.pulumi("config", "set", configKey("activeVersion"), "v2");
                await stack.upFails();
            });
            await gateway.reset();
            const from = gateway.requests.length;
            await stack.up();
            assert.deepEqual(routeBackends(api, stack), allTo(api, "v2"));
            assert.equal(
                gateway.requests.slice(from).filter((r) => r.header === "v2" && r.routedTo === "v2" && r.status === 200).length,
                1,
                "the gate fetched v2 once",
            );
            assertShows(await fetchPage(gateway), HOTDOG);
            assertShows(await fetchPage(gateway, "v1"), COW, "v1 stays reachable for the rollback check");
        });
    });
}
