// Annotations the program writes and the policy pack reads: one name for each, imported by both
// (components/app.ts, policy/policies.ts). Free of Pulumi, like components/image.ts, so the pack can load it.

/** On a version's Deployment: it may run no pods (idleReplicas 0). The pack's versions-keep-a-replica honours it. */
export const ALLOW_ZERO_REPLICAS = "cowsay-bluegreen.io/allow-zero-replicas";
