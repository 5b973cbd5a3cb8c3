// Waits, with a bound, until a Deployment that Helm (not Pulumi) manages has rolled out: the ingress
// gateway's. The gateway chart's release is installed with `skipAwait`, because Helm's wait also waits
// for a LoadBalancer Service to get an address, which never comes on kind, minikube or k3d without a
// load-balancer add-on (nor on the tests' API server): the first `pulumi up` would hang until Helm's
// timeout. What a switch needs is the gateway's pods, so this resource waits for exactly that, as
// `kubectl rollout status` does, and reports the address as what it is: not ours to wait for.
//
// Why not a `pulumi.com/waitFor` annotation: the Deployment is the chart's, written by Helm; the
// program has no Pulumi resource of it to annotate.
import * as pulumi from "@pulumi/pulumi";

import { engineSignal } from "./gate";
import { loadKubeConfig, type ClusterAccess } from "./kube-client";

export interface DeploymentReadyInputs extends ClusterAccess {
    readonly namespace: string;
    readonly name: string;
    /** What changes when the Deployment may have changed (the Helm release's revision): an update waits again. */
    readonly revision: number;
    /** The most time one create or update may wait, in seconds. */
    readonly timeoutSeconds: number;
}

/** A Deployment as read from the API server, the parts the verdict needs. */
export interface DeploymentObject {
    readonly metadata?: { readonly generation?: number };
    readonly spec?: { readonly replicas?: number };
    readonly status?: {
        readonly observedGeneration?: number;
        readonly replicas?: number;
        readonly updatedReplicas?: number;
        readonly availableReplicas?: number;
        readonly conditions?: readonly { readonly type: string; readonly status: string; readonly reason?: string; readonly message?: string }[];
    };
}

/**
 * Whether the Deployment has rolled out, by `kubectl rollout status`'s rule: the controller has seen
 * the latest generation, every replica runs the latest template, the old ones are gone, and all are
 * available. `why` says what is missing. Self-contained: Pulumi serializes it into the provider.
 */
export function deploymentVerdict(deployment: DeploymentObject): { done: boolean; why: string } {
    const generation = deployment.metadata?.generation ?? 0;
    const status = deployment.status ?? {};
    const wanted = deployment.spec?.replicas ?? 1;
    const progressing = status.conditions?.find((c) => c.type === "Progressing");
    if (progressing?.reason === "ProgressDeadlineExceeded")
        return { done: false, why: `its rollout exceeded its progress deadline: ${progressing.message ?? ""}`.trimEnd() };
    if ((status.observedGeneration ?? 0) < generation) return { done: false, why: `the controller has not seen generation ${generation} yet` };
    const updated = status.updatedReplicas ?? 0;
    if (updated < wanted) return { done: false, why: `${updated} of ${wanted} replicas run the latest template` };
    if ((status.replicas ?? 0) > updated) return { done: false, why: `${(status.replicas ?? 0) - updated} old replicas are still terminating` };
    const available = status.availableReplicas ?? 0;
    if (available < updated) return { done: false, why: `${available} of ${updated} updated replicas are available` };
    return { done: true, why: "" };
}

/** Reads the Deployment; rejects when it cannot (it may not exist yet). */
export type DeploymentReader = () => Promise<DeploymentObject>;

/** Reads until the verdict is done, within the bound, polling every `intervalMs`. Self-contained. */
export async function waitForDeployment(
    inputs: Pick<DeploymentReadyInputs, "namespace" | "name" | "timeoutSeconds">,
    read: DeploymentReader,
    context: { readonly report: (line: string) => void; readonly signal?: AbortSignal; readonly intervalMs?: number },
): Promise<void> {
    const started = Date.now();
    const deadline = started + inputs.timeoutSeconds * 1000;
    const key = `${inputs.namespace}/${inputs.name}`;
    const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    for (let attempt = 1; ; attempt++) {
        let verdict: ReturnType<typeof deploymentVerdict>;
        try {
            verdict = deploymentVerdict(await read());
        } catch (err) {
            verdict = { done: false, why: `could not be read: ${err instanceof Error ? err.message : String(err)}` };
        }
        if (verdict.done) {
            context.report(`gateway: Deployment ${key} rolled out after ${elapsed()}`);
            return;
        }
        if (context.signal?.aborted === true)
            throw new Error(`waiting for Deployment ${key} stopped: ${String(context.signal.reason ?? "cancelled")} after ${elapsed()}`);
        if (Date.now() >= deadline) {
            throw new Error(
                `Deployment ${key} did not roll out within ${inputs.timeoutSeconds} s: ${verdict.why}. ` +
                    `kubectl -n ${inputs.namespace} describe deployment ${inputs.name} says why (image pull, scheduling, sidecar injection).`,
            );
        }
        if (attempt % 10 === 0) context.report(`gateway: waiting for Deployment ${key} (${elapsed()} of ${inputs.timeoutSeconds} s): ${verdict.why}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(context.intervalMs ?? 500, Math.max(0, deadline - Date.now()))));
    }
}

function clusterReader(inputs: DeploymentReadyInputs): DeploymentReader {
    const k8s = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
    const api = loadKubeConfig(inputs).makeApiClient(k8s.AppsV1Api);
    return async () => await api.readNamespacedDeployment({ namespace: inputs.namespace, name: inputs.name });
}

async function run(inputs: DeploymentReadyInputs): Promise<DeploymentReadyInputs> {
    await waitForDeployment(inputs, clusterReader(inputs), { report: (line) => console.error(line), signal: engineSignal() });
    return inputs;
}

const provider: pulumi.dynamic.ResourceProvider<DeploymentReadyInputs, DeploymentReadyInputs> = {
    async check(_olds, news) {
        engineSignal();
        return Promise.resolve({ inputs: news });
    },
    async create(inputs) {
        return { id: `${inputs.namespace}/${inputs.name}`, outs: await run(inputs) };
    },
    async update(_id, _olds, news) {
        return { outs: await run(news) };
    },
};

export type DeploymentReadyArgs = { readonly [K in keyof DeploymentReadyInputs]: pulumi.Input<DeploymentReadyInputs[K]> };

/** Done when the Deployment has rolled out (every replica updated and available); waits again when `revision` changes. */
export class DeploymentReady extends pulumi.dynamic.Resource {
    constructor(name: string, args: DeploymentReadyArgs, opts?: pulumi.CustomResourceOptions) {
        // The kubeconfig text may hold credentials.
        super(provider, name, args, { ...opts, additionalSecretOutputs: ["kubeconfig"] }, "cowsay-bluegreen", "DeploymentReady");
    }
}
