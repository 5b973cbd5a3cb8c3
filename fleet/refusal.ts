// Why a stack cannot take a switch, read before the first stack is touched: the program's own config
// rules applied to the config the switch would give it, and a stack that renders YAML (no cluster
// for the bake to read). Each is one line naming the stack, which the command throws as a Refused.
import { parseSettings } from "../config";
import { Refused } from "../lib/refusal";
import { switchConfig, type Target } from "./target";
import { RENDER_YAML_KEY, type StackView } from "./workspace";

/**
 * The program's own refusal (config/, the rules `pulumi up` applies) of the config a
 * switch to `target` would give this stack, if any: an unknown version, weights that do not sum to
 * 100, ... Checked for every stack before the first one is touched.
 */
export function switchRefusal(view: StackView, target: Target): string | undefined {
    if (view.live === undefined) return `stack ${view.name} has never been deployed (no outputs); run pulumi up on it first`;
    const next = switchConfig(target, view.config);
    try {
        parseSettings({ ...view.raw, activeVersion: next.activeVersion, trafficSplit: next.trafficSplit }, view.secretKeys, {
            live: Object.keys(view.live),
            versions: view.versions,
        });
    } catch (err) {
        if (err instanceof Refused) return programRefusal(view, err);
        throw err;
    }
    return undefined;
}

/** The program's refusal of this stack's config, as the fleet says it: the same line `pulumi up` prints, naming the stack. */
export function programRefusal(view: StackView, refused: Refused): string {
    return `stack ${view.name}: ${refused.message} Nothing was changed.`;
}

/**
 * Why the fleet cannot switch or roll out this stack at all, if it renders YAML: the bake (and a
 * rollout's checks after each step) reads each switched stack's live route on its cluster, and a
 * stack whose provider renders YAML has none. `bake: 0` does not turn that off (every switched stack
 * is checked once after its wave), so no fleet file lets such a stack through.
 */
export function renderRefusal(view: StackView): string | undefined {
    if (view.renderYamlTo === undefined) return undefined;
    return (
        `stack ${view.name}: ${RENDER_YAML_KEY} is ${JSON.stringify(view.renderYamlTo)}, so its provider renders YAML and reaches no cluster; ` +
        `the fleet's bake reads every switched stack's live route on its cluster (also with bake 0) and would find none. ` +
        `Allowed: a stack on a cluster (pulumi config rm ${RENDER_YAML_KEY} --stack ${view.name}). Nothing was changed.`
    );
}
