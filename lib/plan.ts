// What each version does in this update, decided once from the settings: its image and expected
// text, its share of the live traffic, whether it serves or idles, and how many pods it runs. The
// app (Deployments and their order), each routing API (subsets, backends, weights), the gate (which
// versions it fetches) and the stack outputs all read this plan; none of them decides it again.
import type { Settings } from "../config";

/** The app's Service, and the prefix of its Deployments and routing objects. */
export const APP_NAME = "cowsay-nginx";

/**
 * The Deployment (Istio's destination_workload) of one version: what the program creates and what
 * the fleet's analysis queries Prometheus about, so both read the one rule.
 */
export function workloadName(version: string, appName: string = APP_NAME): string {
    return `${appName}-${version}`;
}

export interface VersionPlan {
    readonly name: string;
    readonly image: string;
    /** Text only this version's page contains: what the gate requires. Undefined with the gate off. */
    readonly expect: string | undefined;
    /** Share of the live traffic, in percent; 0 while idle. */
    readonly weight: number;
    /** Takes live traffic once this update's route is in place (its weight is above 0). */
    readonly serving: boolean;
    /** Pods it runs: its own replicas while serving; idleReplicas, when set, while idle. */
    readonly replicas: number;
}

export interface Plan {
    /** The version that owns the live route. */
    readonly active: string;
    /** Every version, in declaration order. */
    readonly versions: readonly VersionPlan[];
    /** The versions that take live traffic, in declaration order. */
    readonly serving: readonly VersionPlan[];
    /** The versions that take none, in declaration order. */
    readonly idle: readonly VersionPlan[];
}

/** The plan of every declared version, from the settings' versions, traffic split and idle capacity. */
export function planVersions(settings: Pick<Settings, "versions" | "trafficSplit" | "idleReplicas" | "activeVersion">): Plan {
    const versions = [...settings.versions].map(([name, spec]): VersionPlan => {
        const weight = settings.trafficSplit.get(name) ?? 0;
        const serving = weight > 0;
        return {
            name,
            image: spec.image,
            expect: spec.expect,
            weight,
            serving,
            replicas: serving ? spec.replicas : (settings.idleReplicas ?? spec.replicas),
        };
    });
    return {
        active: settings.activeVersion,
        versions,
        serving: versions.filter((v) => v.serving),
        idle: versions.filter((v) => !v.serving),
    };
}
