// Names of the objects a stack puts where another stack on the same cluster puts its own: the
// shared ingress namespace (the Issuer, the Gateway API's Gateway and redirect route) and the cluster
// scope (the IngressClass of the ACME solver). A second stack shares the mesh with an app namespace of
// its own, so these names carry that namespace as a prefix. No running stack gets new names: a new
// name is a new object to Pulumi, so a rename would replace (delete and create) the Issuer, the
// Gateway and the redirect route the stack runs. So the stack in the default app namespace keeps the
// names it has always had, a stack deployed before the prefix existed keeps its own (unprefixed) names
// whatever its app namespace, and a stack keeps the prefix its first update chose (the
// sharedNamePrefix output) even if its app namespace changes later.
import { DEFAULTS, type LastRun } from "../config";

/** The app namespace whose stacks keep the unprefixed names (the first stack on a cluster). */
export const DEFAULT_APP_NAMESPACE: string = (() => {
    const value = DEFAULTS.appNamespace;
    if (typeof value !== "string") throw new Error(`the default of appNamespace is not a string: ${JSON.stringify(value)}`);
    return value;
})();

/**
 * The prefix of the stack's shared names: the one it ran with (`last`, its last update); none for a
 * stack deployed before the prefix existed; for a new stack none in the default app namespace and
 * `<appNamespace>-` in any other.
 */
export function sharedNamePrefix(appNamespace: string, last: LastRun | undefined): string {
    if (last !== undefined) return last.sharedNamePrefix ?? "";
    return appNamespace === DEFAULT_APP_NAMESPACE ? "" : `${appNamespace}-`;
}
