// How Pulumi names a stack's config: every key namespaced by the project that reads it
// (`<project>:<key>`; other namespaces, such as `kubernetes:`, belong to providers), in the stack
// settings file `Pulumi.<stack>.yaml` beside Pulumi.yaml. The program (index.ts) reads its own
// stack's keys this way and the fleet (fleet/workspace.ts, fleet/target.ts) reads and writes many
// stacks' keys and files this way: one rule, so that both see the same keys in the same files.

/** `<project>:<key>`, the key as the stack file and `pulumi config` name it. */
export const namespacedKey = (project: string, key: string): string => `${project}:${key}`;

/** The key of `<project>:<key>` without its project; undefined for a key of another namespace. */
export function projectKey(project: string, fullKey: string): string | undefined {
    const prefix = namespacedKey(project, "");
    return fullKey.startsWith(prefix) ? fullKey.slice(prefix.length) : undefined;
}

/**
 * The project's keys and values without the `<project>:` prefix, and which of them are secrets
 * (`isSecret` is asked with the full key, and only for the project's keys); other namespaces are left out.
 */
export function projectConfig(
    project: string,
    config: Iterable<readonly [fullKey: string, value: string]>,
    isSecret: (fullKey: string) => boolean,
): { raw: Record<string, string>; secretKeys: Set<string> } {
    const raw: Record<string, string> = {};
    const secretKeys = new Set<string>();
    for (const [fullKey, value] of config) {
        const key = projectKey(project, fullKey);
        if (key === undefined) continue;
        raw[key] = value;
        if (isSecret(fullKey)) secretKeys.add(key);
    }
    return { raw, secretKeys };
}

/**
 * The name of the stack settings file of `stack`, in the project's directory. Pulumi names it after
 * the stack's own name: of a fully qualified `org/project/stack` (or `org/stack`), the last part.
 */
export const stackSettingsFile = (stack: string): string => `Pulumi.${stack.split("/").pop() ?? stack}.yaml`;
