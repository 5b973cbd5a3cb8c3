// Names of the objects a stack puts where another stack on the same cluster puts its own: the
// shared ingress namespace (the Issuer, the Gateway API's Gateway and redirect route) and the cluster
// scope (the IngressClass of the ACME solver). A second stack shares the mesh with an app namespace of
// its own, so these names carry that namespace. The stack in the default app namespace keeps the
// names it has always had: a new name is a new object to Pulumi, so renaming them would replace (delete
// and create) the Issuer, the Gateway and the redirect route that every existing stack runs.
import { DEFAULTS } from "./config";

/** The app namespace whose stacks keep the unprefixed names (the first stack on a cluster). */
export const DEFAULT_APP_NAMESPACE: string = (() => {
    const value = DEFAULTS.appNamespace;
    if (typeof value !== "string") throw new Error(`the default of appNamespace is not a string: ${JSON.stringify(value)}`);
    return value;
})();

/** `name` for the stack in the default app namespace, `<appNamespace>-<name>` for any other. */
export function sharedName(appNamespace: string, name: string): string {
    return appNamespace === DEFAULT_APP_NAMESPACE ? name : `${appNamespace}-${name}`;
}
