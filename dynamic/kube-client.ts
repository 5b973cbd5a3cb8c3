// The cluster a dynamic resource talks to: the one the stack's Kubernetes provider uses
// (`kubernetes:kubeconfig`, a path or the file's text, and `kubernetes:context`), or the default
// (KUBECONFIG, ~/.kube/config) when the stack sets none. Shared by the resources that read the
// cluster during an update (route-status.ts, deployment-ready.ts); required lazily, because Pulumi
// serializes these functions into the dynamic providers.
import type { KubeConfig } from "@kubernetes/client-node";

export interface ClusterAccess {
    /** The stack's `kubernetes:kubeconfig` (a path or the file's text), if set; else the default (KUBECONFIG). */
    readonly kubeconfig?: string;
    /** The stack's `kubernetes:context`, if set. */
    readonly context?: string;
}

export function loadKubeConfig(access: ClusterAccess): KubeConfig {
    const k8s = require("@kubernetes/client-node") as typeof import("@kubernetes/client-node");
    const config = new k8s.KubeConfig();
    const given = access.kubeconfig;
    if (given === undefined || given === "") config.loadFromDefault();
    else if (given.includes("\n") || given.trimStart().startsWith("{")) config.loadFromString(given);
    else config.loadFromFile(given.replace(/^~(?=\/)/, process.env.HOME ?? "~"));
    if (access.context !== undefined && access.context !== "") config.setCurrentContext(access.context);
    return config;
}
