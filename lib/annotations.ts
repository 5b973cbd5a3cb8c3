// Annotations the program writes: those the policy pack reads too (one name for each, imported by both:
// components/app.ts, policy/policies.ts), and one for Pulumi's Kubernetes provider. Free of Pulumi, like
// lib/image.ts, so the pack can load it.

/** On a version's Deployment: it may run no pods (idleReplicas 0). The pack's versions-keep-a-replica honours it. */
export const ALLOW_ZERO_REPLICAS = "cowsay-bluegreen.io/allow-zero-replicas";

/**
 * On every Service the program writes: no await by the Kubernetes provider. Its Service await waits a
 * fixed 10 s after the last change to the Service's Endpoints before it reports the Service ready
 * (pulumi-kubernetes pkg/await/service.go, "settled"), which made every first deploy, and every
 * version added with the Gateway API, 10 s slower, and proves nothing the program needs: the
 * Deployment's own await proves the pods Ready, the selectors are the program's (test/program.test.ts),
 * and nothing goes live before the gate has fetched the version through the gateway.
 */
export const NO_SERVICE_AWAIT = { "pulumi.com/skipAwait": "true" } as const;
