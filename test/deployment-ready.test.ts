// The wait for the ingress gateway's pods (dynamic/deployment-ready.ts): which Deployment status
// means rolled out (kubectl rollout status's rule), and how the wait ends: done, the bound with what
// is missing, a Deployment that cannot be read yet, or a cancelled update.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { deploymentVerdict, waitForDeployment, type DeploymentObject } from "../dynamic/deployment-ready";

function deployment(generation: number, replicas: number, status: NonNullable<DeploymentObject["status"]>): DeploymentObject {
    return { metadata: { generation }, spec: { replicas }, status };
}
const rolledOut = deployment(2, 1, { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
const INPUTS = { namespace: "istio-ingress", name: "istio-ingressgateway", timeoutSeconds: 1 };

describe("deployment ready: the verdict on one Deployment", () => {
    it("is done when the latest generation is observed and every replica is updated and available", () => {
        assert.deepEqual(deploymentVerdict(rolledOut), { done: true, why: "" });
        assert.equal(deploymentVerdict(deployment(5, 3, { observedGeneration: 5, replicas: 3, updatedReplicas: 3, availableReplicas: 3 })).done, true);
    });

    it("is not done, and says why, at each step of a rollout", () => {
        assert.deepEqual(deploymentVerdict(deployment(3, 1, { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 })), {
            done: false,
            why: "the controller has not seen generation 3 yet",
        });
        assert.equal(
            deploymentVerdict(deployment(1, 2, { observedGeneration: 1, replicas: 2, updatedReplicas: 1, availableReplicas: 1 })).why,
            "1 of 2 replicas run the latest template",
        );
        assert.equal(
            deploymentVerdict(deployment(1, 1, { observedGeneration: 1, replicas: 2, updatedReplicas: 1, availableReplicas: 1 })).why,
            "1 old replicas are still terminating",
        );
        assert.equal(
            deploymentVerdict(deployment(1, 1, { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 0 })).why,
            "0 of 1 updated replicas are available",
        );
        // A Deployment the controller has never looked at (no status at all) is not done either.
        assert.equal(deploymentVerdict({ metadata: { generation: 1 }, spec: { replicas: 1 } }).done, false);
    });

    it("is not done, with the controller's message, once the rollout exceeded its progress deadline", () => {
        const stuck = deployment(1, 1, {
            observedGeneration: 1,
            replicas: 1,
            updatedReplicas: 1,
            availableReplicas: 0,
            conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded", message: 'ReplicaSet "gw-1" has timed out progressing.' }],
        });
        assert.deepEqual(deploymentVerdict(stuck), {
            done: false,
            why: 'its rollout exceeded its progress deadline: ReplicaSet "gw-1" has timed out progressing.',
        });
    });
});

describe("deployment ready: the wait", () => {
    it("reads until the Deployment has rolled out, past reads that fail (not created yet), and reports it", async () => {
        const reads: DeploymentObject[] = [deployment(1, 1, { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 0 }), rolledOut];
        let calls = 0;
        const lines: string[] = [];
        await waitForDeployment(
            { ...INPUTS, timeoutSeconds: 10 },
            () => {
                calls++;
                if (calls === 1) return Promise.reject(new Error('deployments.apps "istio-ingressgateway" not found'));
                return Promise.resolve(reads.shift() ?? rolledOut);
            },
            { report: (line) => lines.push(line), intervalMs: 1 },
        );
        assert.equal(calls, 3);
        assert.match(lines.at(-1) ?? "", /^gateway: Deployment istio-ingress\/istio-ingressgateway rolled out after \d+\.\d s$/);
    });

    it("fails at the bound with what is still missing and where to look", async () => {
        const stuck = deployment(1, 2, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1 });
        await assert.rejects(
            waitForDeployment({ ...INPUTS, timeoutSeconds: 0.05 }, () => Promise.resolve(stuck), { report: () => undefined, intervalMs: 5 }),
            {
                message:
                    "Deployment istio-ingress/istio-ingressgateway did not roll out within 0.05 s: 1 of 2 updated replicas are available. " +
                    "kubectl -n istio-ingress describe deployment istio-ingressgateway says why (image pull, scheduling, sidecar injection).",
            },
        );
    });

    it("fails at the bound with the read error when the Deployment never appears", async () => {
        await assert.rejects(
            waitForDeployment({ ...INPUTS, timeoutSeconds: 0.02 }, () => Promise.reject(new Error("not found")), { report: () => undefined, intervalMs: 5 }),
            /did not roll out within 0\.02 s: could not be read: not found\./,
        );
    });

    it("stops when the update is cancelled, without waiting for the bound", async () => {
        const controller = new AbortController();
        controller.abort("pulumi cancel");
        await assert.rejects(
            waitForDeployment({ ...INPUTS, timeoutSeconds: 60 }, () => Promise.resolve(deployment(1, 1, {})), {
                report: () => undefined,
                signal: controller.signal,
            }),
            /^Error: waiting for Deployment istio-ingress\/istio-ingressgateway stopped: pulumi cancel after/,
        );
    });
});
