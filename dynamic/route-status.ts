// With the Gateway API, Istio says whether it took a route: it writes, per parent (the Gateway, or the
// Service for in-mesh routes), the conditions Accepted and ResolvedRefs with the generation of the route
// they judged. This dynamic resource comes after the HTTPRoutes a `pulumi up` wrote and waits, with a
// bound, until Istio has judged that generation of each and both conditions hold. So a route Istio
// cannot program (a backend Service that is gone, a parent that does not allow the route) fails
// `pulumi up` with Istio's own words, and the versions that went idle keep their pods.
//
// Why not the Kubernetes provider's `pulumi.com/waitFor`: its JSONPath condition checks only a
// top-level `.status.observedGeneration`, which an HTTPRoute does not have (its generations are per
// parent, inside each condition). After an update the route still carries the status Istio wrote for
// the previous generation, Accepted=True included, so the annotation would pass before Istio looked.
// The Istio API (VirtualServices) has no such report: its routes need no wait here.
import * as pulumi from "@pulumi/pulumi";

import { engineSignal } from "./gate";
import { loadKubeConfig, type ClusterAccess } from "./kube-client";

/** A route this update wrote, and the generation the API server gave it. */
export interface RouteRef {
    readonly namespace: string;
    readonly name: string;
    readonly generation: number;
}

export interface RouteStatusInputs extends ClusterAccess {
    readonly routes: readonly RouteRef[];
    /** The most time one create or update may wait, in seconds. */
    readonly timeoutSeconds: number;
}

interface ParentRef {
    readonly group?: string;
    readonly kind?: string;
    readonly name: string;
    readonly namespace?: string;
    readonly sectionName?: string;
    readonly port?: number;
}

interface Condition {
    readonly type: string;
    readonly status: string;
    readonly reason?: string;
    readonly message?: string;
    readonly observedGeneration?: number;
}

/** An HTTPRoute as read from the API server, the parts the verdict needs. */
export interface RouteObject {
    readonly metadata?: { readonly generation?: number };
    readonly spec?: { readonly parentRefs?: readonly ParentRef[] };
    readonly status?: { readonly parents?: readonly { readonly parentRef: ParentRef; readonly conditions?: readonly Condition[] }[] };
}

/**
 * Whether Istio has judged `generation` of the route and found it good, for every parent the route
 * names. `why` says what is missing, in Istio's words where Istio gave some.
 * Self-contained (no imports used inside) because Pulumi serializes it into the dynamic provider.
 */
export function routeVerdict(route: RouteObject, generation: number): { done: boolean; why: string; refused?: boolean } {
    const describe = (p: ParentRef) =>
        `${p.kind ?? "Gateway"} ${p.namespace === undefined ? "" : `${p.namespace}/`}${p.name}${p.sectionName === undefined ? "" : `#${p.sectionName}`}`;
    const same = (a: ParentRef, b: ParentRef) =>
        (a.kind ?? "Gateway") === (b.kind ?? "Gateway") &&
        a.name === b.name &&
        (a.sectionName ?? "") === (b.sectionName ?? "") &&
        (a.port ?? 0) === (b.port ?? 0) &&
        (a.namespace === undefined || b.namespace === undefined || a.namespace === b.namespace);
    const parents = route.spec?.parentRefs ?? [];
    if (parents.length === 0) return { done: false, why: "the route names no parent" };
    for (const parent of parents) {
        const status = route.status?.parents?.find((s) => same(s.parentRef, parent));
        if (status === undefined) return { done: false, why: `no status from Istio for ${describe(parent)} yet` };
        for (const type of ["Accepted", "ResolvedRefs"]) {
            const condition = status.conditions?.find((c) => c.type === type);
            if (condition === undefined) return { done: false, why: `${describe(parent)}: no ${type} condition yet` };
            const seen = condition.observedGeneration ?? 0;
            if (seen < generation) return { done: false, why: `${describe(parent)}: Istio has judged generation ${seen}, not ${generation} yet` };
            if (condition.status !== "True") {
                const why = `${describe(parent)}: ${type}=${condition.status} (${condition.reason ?? "no reason"}): ${condition.message ?? ""}`.trimEnd();
                return { done: false, why, refused: condition.status === "False" };
            }
        }
    }
    return { done: true, why: "" };
}

/** Reads one HTTPRoute; rejects when it cannot. */
export type RouteReader = (namespace: string, name: string) => Promise<RouteObject>;

/**
 * Reads every route until each verdict is done, all within one deadline, polling every `intervalMs`.
 * A condition that is False is not final at once: Istio may judge a route before it has seen the
 * Service created just before it, and correct itself once it has (its longest debounce,
 * PILOT_DEBOUNCE_MAX, is 10 s). A False verdict on the generation written that still holds `settleMs`
 * (10 s) later is Istio's answer, though: the wait ends there, not at the bound (60 s by default).
 * Self-contained.
 */
export async function waitForRoutes(
    inputs: Pick<RouteStatusInputs, "routes" | "timeoutSeconds">,
    read: RouteReader,
    context: { readonly report: (line: string) => void; readonly signal?: AbortSignal; readonly intervalMs?: number; readonly settleMs?: number },
): Promise<void> {
    const started = Date.now();
    const deadline = started + inputs.timeoutSeconds * 1000;
    const settleMs = context.settleMs ?? 10_000;
    const pending = new Map(
        inputs.routes.map((r) => [`${r.namespace}/${r.name}`, { route: r, why: "not read yet", refusedSince: undefined as number | undefined }]),
    );
    const afterwards =
        "The routes are written, so the gateway serves what Istio made of them; the versions that went idle keep their pods. " +
        "Fix the cause and run pulumi up again, or roll back (pulumi config set activeVersion <version> && pulumi up).";
    const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    for (let attempt = 1; pending.size > 0; attempt++) {
        for (const [key, entry] of pending) {
            let verdict: ReturnType<typeof routeVerdict>;
            try {
                verdict = routeVerdict(await read(entry.route.namespace, entry.route.name), entry.route.generation);
            } catch (err) {
                verdict = { done: false, why: `could not be read: ${err instanceof Error ? err.message : String(err)}` };
            }
            if (verdict.done) {
                pending.delete(key);
                context.report(`routes: Istio accepted HTTPRoute ${key} (generation ${entry.route.generation}) after ${elapsed()}`);
                continue;
            }
            entry.why = verdict.why;
            entry.refusedSince = verdict.refused === true ? (entry.refusedSince ?? Date.now()) : undefined;
            if (entry.refusedSince !== undefined && Date.now() - entry.refusedSince >= settleMs) {
                throw new Error(
                    `Istio refused HTTPRoute ${key} (generation ${entry.route.generation}), and still did ${Math.round(settleMs / 1000)} s later: ${verdict.why}. ${afterwards}`,
                );
            }
        }
        if (pending.size === 0) return;
        if (context.signal?.aborted === true) {
            throw new Error(`waiting for Istio stopped: ${String(context.signal.reason ?? "cancelled")} after ${elapsed()}`);
        }
        if (Date.now() >= deadline) {
            const [key, { route, why }] = [...pending][0];
            throw new Error(`Istio did not accept HTTPRoute ${key} (generation ${route.generation}) within ${inputs.timeoutSeconds} s: ${why}. ${afterwards}`);
        }
        if (attempt % 10 === 0) context.report(`routes: waiting for Istio (${elapsed()} of ${inputs.timeoutSeconds} s): ${[...pending.values()][0].why}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(context.intervalMs ?? 500, Math.max(0, deadline - Date.now()))));
    }
}

/** A reader on the cluster the stack's Kubernetes provider uses, with the ecosystem's client. */
function clusterReader(inputs: RouteStatusInputs): RouteReader {
    const k8s = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
    const api = loadKubeConfig(inputs).makeApiClient(k8s.CustomObjectsApi);
    return async (namespace, name) =>
        (await api.getNamespacedCustomObject({ group: "gateway.networking.k8s.io", version: "v1", namespace, plural: "httproutes", name })) as RouteObject;
}

async function run(inputs: RouteStatusInputs): Promise<RouteStatusInputs> {
    await waitForRoutes(inputs, clusterReader(inputs), { report: (line) => console.error(line), signal: engineSignal() });
    return inputs;
}

const provider: pulumi.dynamic.ResourceProvider<RouteStatusInputs, RouteStatusInputs> = {
    async check(_olds, news) {
        engineSignal();
        return Promise.resolve({ inputs: news });
    },
    async create(inputs) {
        return { id: `routes-${Date.now()}`, outs: await run(inputs) };
    },
    async update(_id, _olds, news) {
        return { outs: await run(news) };
    },
};

export type RouteStatusArgs = { readonly [K in keyof RouteStatusInputs]: pulumi.Input<RouteStatusInputs[K]> };

/** Done when Istio has accepted, and resolved every backend of, the generation of each route this update wrote. */
export class RouteStatus extends pulumi.dynamic.Resource {
    constructor(name: string, args: RouteStatusArgs, opts?: pulumi.CustomResourceOptions) {
        // The kubeconfig text may hold credentials.
        super(provider, name, args, { ...opts, additionalSecretOutputs: ["kubeconfig"] }, "cowsay-bluegreen", "RouteStatus");
    }
}
