// The `versions` key's map, from version name to what the version runs: the fields of one version,
// the rule for its name, and the rules across versions (at least one, an image per version). Every
// refusal names the version or its field, so the user knows which line of the map to fix.
import * as z from "zod";

import { IMAGE_EXAMPLE, imageProblem } from "../lib/image";
import { addIssue, notAllowed, show } from "./messages";
import { DNS_LABEL, MAX_REPLICAS, integer } from "./values";

// Leaves room for the longest name derived from a version (`<app>-<version>` Deployments).
const MAX_VERSION_NAME = 40;
const VERSION_FIELDS = ["image", "replicas", "expect"];

/** One version as the user declares it under `versions`. */
const versionSpec = z.strictObject(
    {
        image: z.string({ error: notAllowed(`an image reference such as ${IMAGE_EXAMPLE}`) }).superRefine((image, ctx) => {
            const problem = imageProblem(image);
            if (problem !== undefined) addIssue(ctx, image, `${show(image)} is not allowed; expected ${problem}.`);
        }),
        /** Pods this version runs while it takes traffic; default: the replicas key. */
        replicas: z.unknown().transform(integer(1, MAX_REPLICAS)).optional(),
        /** Text only this version's page contains: the gate requires it. */
        expect: z
            .string({ error: notAllowed("non-empty text that only this version's page contains") })
            .refine((text) => text.trim() !== "", { error: notAllowed("non-empty text that only this version's page contains") })
            .optional(),
    },
    {
        error: (issue) =>
            issue.code === "unrecognized_keys"
                ? `unknown field ${show(issue.keys[0])}; allowed fields: ${VERSION_FIELDS.join(", ")}.`
                : notAllowed("{ image, replicas?, expect? }")(issue),
    },
);

const badVersionName = (issue: { readonly input?: unknown }) =>
    `version name ${show(issue.input)} is not allowed; names are lower-case letters, digits and '-', start and end alphanumeric, at most ${MAX_VERSION_NAME} characters.`;
const versionName = z.string().regex(DNS_LABEL, { error: badVersionName }).max(MAX_VERSION_NAME, { error: badVersionName });

/** The whole map (once parsed from its JSON text): at least one version, each with its own image. */
export const versionMap = z
    .record(versionName, versionSpec, {
        // A bad name is reported by the name's own check; the map reports only what is not a map.
        error: (issue) =>
            issue.code === "invalid_key" ? issue.issues[0]?.message : notAllowed("an object from version name to { image, replicas?, expect? }")(issue),
    })
    .superRefine((versions, ctx) => {
        const names = Object.keys(versions);
        if (names.length === 0) {
            addIssue(ctx, versions, '{} is not allowed; declare at least one version, for example { "v1": { "image": "dougbtv/nginx-cowsay:v1" } }.');
        }
        const byImage = new Map<string, string>();
        for (const name of names) {
            const image = versions[name].image;
            const twin = byImage.get(image);
            if (twin !== undefined) {
                ctx.issues.push({
                    code: "custom",
                    input: image,
                    path: [name, "image"],
                    message: `${show(image)} is already version ${show(twin)}; each version needs its own image.`,
                });
            }
            byImage.set(image, name);
        }
    });
