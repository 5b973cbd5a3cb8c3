// Each version's role in this update, decided once from the settings: its image and expected text,
// its share of the live traffic, whether it serves or idles, and how many pods it runs. The app
// (Deployments and their order), each routing API (subsets, backends, weights), the gate (which
// versions it fetches) and the stack outputs all read these roles; none of them decides them again.
// (Not "the plan": that is the fleet's wave plan, fleet/plan.ts.)
import type { Settings } from "../config";

/** What one version does in this update. */
export interface VersionRole {
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

/** Every version's role, and the versions grouped by it. */
export interface VersionRoles {
    /** The version that owns the live route. */
    readonly active: string;
    /** Every version, in declaration order. */
    readonly versions: readonly VersionRole[];
    /** The versions that take live traffic, in declaration order. */
    readonly serving: readonly VersionRole[];
    /** The versions that take none, in declaration order. */
    readonly idle: readonly VersionRole[];
}

/** The role of every declared version, from the settings' versions, traffic split and idle capacity. */
export function decideRoles(settings: Pick<Settings, "versions" | "trafficSplit" | "idleReplicas" | "activeVersion">): VersionRoles {
    const versions = [...settings.versions].map(([name, spec]): VersionRole => {
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
