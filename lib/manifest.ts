// The arguments of a custom resource as the components build them: apiVersion, kind, the metadata the
// program sets, and a spec whose type comes from the upstream model (@kubernetes-models/*), so that a
// misspelt or mistyped field fails `tsc`, not the API server.

export interface Manifest<Spec> {
    readonly apiVersion: string;
    readonly kind: string;
    readonly metadata: { readonly name: string; readonly namespace: string; readonly annotations?: Readonly<Record<string, string>> };
    readonly spec: Spec;
}
