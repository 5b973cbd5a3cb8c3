// Calls the policy pack's validators the way @pulumi/policy's analyzer server does, with a spy
// for reportViolation. Shared by the policy unit tests and the program-vs-policy test.
import type { imagesPinned, routeTargetsExistingSubsets } from "../../policy/policies";

export type ResourceArgs = Parameters<typeof imagesPinned.validateResource>[0];
export type ReportViolation = Parameters<typeof imagesPinned.validateResource>[1];
export type StackArgs = Parameters<typeof routeTargetsExistingSubsets.validateStack>[0];
export type StackResource = StackArgs["resources"][number];
export type Props = Record<string, unknown>;

export interface Violation {
    readonly message: string;
    readonly urn?: string;
}

export function urnOf(type: string, name: string): string {
    return `urn:pulumi:dev::cowsay-bluegreen::${type}::${name}`;
}

export const resourceOptions: ResourceArgs["opts"] = {
    protect: false,
    ignoreChanges: [],
    aliases: [],
    customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
    additionalSecretOutputs: [],
};

export function notApplicable(reason?: string): never {
    throw new Error(`unexpected notApplicable: ${reason ?? ""}`);
}

/** Resource arguments as the analyzer builds them for `validateResource`. */
export function resourceArgs(type: string, name: string, props: Props): ResourceArgs {
    return {
        type,
        props,
        urn: urnOf(type, name),
        name,
        opts: resourceOptions,
        stackTags: new Map<string, string>(),
        isType: () => false,
        asType: () => undefined,
        getConfig: <T extends object>() => ({}) as T,
        notApplicable,
    };
}

export function stackResource(type: string, name: string, props: Props): StackResource {
    return {
        type,
        props,
        urn: urnOf(type, name),
        name,
        opts: resourceOptions,
        dependencies: [],
        propertyDependencies: {},
        isType: () => false,
        asType: () => undefined,
    };
}

export function stackArgs(resources: StackResource[]): StackArgs {
    return { resources, stackTags: new Map<string, string>(), getConfig: <T extends object>() => ({}) as T, notApplicable };
}

/** Runs a validator with a reportViolation spy and returns what it reported, in order. */
export async function violationsOf(run: (report: ReportViolation) => void | Promise<void>): Promise<Violation[]> {
    const seen: Violation[] = [];
    await run((message, urn) => {
        seen.push(urn === undefined ? { message } : { message, urn });
    });
    return seen;
}

export function messagesOfResource(policy: typeof imagesPinned, args: ResourceArgs): Promise<string[]> {
    return violationsOf((report) => policy.validateResource(args, report)).then((vs) => vs.map((v) => v.message));
}

export function violationsOfStack(policy: typeof routeTargetsExistingSubsets, resources: StackResource[]): Promise<Violation[]> {
    return violationsOf((report) => policy.validateStack(stackArgs(resources), report));
}
