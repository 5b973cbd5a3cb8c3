// One table of image references, run through the program (the config's versions.<name>.image) and
// through the policy pack (images-pinned): both must give each reference the verdict the table says,
// in the same words, because both import lib/image.ts. Before they shared it, the program took
// `app@sha256:abc` for a tag "abc" of an image named "app@sha256" and deployed it; the pack refused it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseSettings } from "../config";
import { deploymentType, imagesPinned } from "../policy/policies";
import { messagesOfResource, resourceArgs } from "./policy/harness";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;
const MALFORMED = "a valid image reference, [registry[:port]/]name[:tag][@sha256:<64 hex digits>]";

// [image, what was expected instead (undefined: the reference is pinned)]
const CASES: [string, string | undefined][] = [
    ["dougbtv/nginx-cowsay:v1", undefined],
    ["nginx:1.27.3", undefined],
    ["registry:5000/app:1.0", undefined],
    ["localhost:5000/team/app:v2", undefined],
    [`ghcr.io/org/app@${DIGEST}`, undefined],
    [`registry.example.com:5000/cowsay@${DIGEST}`, undefined],
    [`app:1.2@${DIGEST}`, undefined],
    ["app@sha256:abc", `${MALFORMED} (invalid reference format)`],
    [`app@sha256:${"0123456789ABCDEF".repeat(4)}`, "a sha256 digest in lower-case hex, as the OCI image spec writes it (sha256:<64 of 0-9 a-f>)"],
    [`app:v1@sha256:${"0123456789abcdeF".repeat(4)}`, "a sha256 digest in lower-case hex, as the OCI image spec writes it (sha256:<64 of 0-9 a-f>)"],
    ["app@", `${MALFORMED} (invalid reference format)`],
    ["app:", `${MALFORMED} (invalid reference format)`],
    [`app@md5:${"a".repeat(32)}`, `${MALFORMED} (unsupported digest algorithm)`],
    ["Dougbtv/nginx-cowsay:v1", `${MALFORMED} (invalid reference format: repository name must be lowercase)`],
    ["app:-v1", `${MALFORMED} (invalid reference format)`],
    ["dougbtv/nginx-cowsay", "a pinned tag or digest (for example dougbtv/nginx-cowsay:v1)"],
    ["registry:5000/cowsay", "a pinned tag or digest (for example dougbtv/nginx-cowsay:v1)"],
    ["registry:5000/team/app", "a pinned tag or digest (for example dougbtv/nginx-cowsay:v1)"],
    ["dougbtv/nginx-cowsay:latest", "a pinned tag other than latest, or a digest"],
    ["registry:5000/app:latest", "a pinned tag other than latest, or a digest"],
    [`app:latest@${DIGEST}`, "a digest without the tag latest beside it"],
    ["dougbtv/nginx-cowsay: v1", "an image reference without spaces"],
    ["", "an image reference without spaces"],
];

/** The program's verdict: the refusal of a stack whose one version runs `image`. */
function programVerdict(image: string): string | undefined {
    try {
        parseSettings({ versions: JSON.stringify({ v1: { image, expect: "cow" } }) });
        return undefined;
    } catch (err) {
        return (err as Error).message;
    }
}

/** The pack's verdict: what images-pinned reports for a Deployment whose one container runs `image`. */
async function packVerdict(image: string): Promise<string[]> {
    const props = { spec: { template: { spec: { containers: [{ name: "app", image }] } } } };
    return messagesOfResource(imagesPinned, resourceArgs(deploymentType, "cowsay-v1", props));
}

describe("one image rule for the program and the policy pack", () => {
    for (const [image, expected] of CASES) {
        it(`${JSON.stringify(image)}: ${expected === undefined ? "pinned, for both" : "refused by both, with the same reason"}`, async () => {
            const program = programVerdict(image);
            const pack = await packVerdict(image);
            if (expected === undefined) {
                assert.equal(program, undefined);
                assert.deepEqual(pack, []);
                return;
            }
            assert.equal(program, `Invalid config versions.v1.image: ${JSON.stringify(image)} is not allowed; expected ${expected}.`);
            const empty = image === "";
            assert.deepEqual(pack, [
                empty
                    ? 'Deployment "cowsay-v1": spec.template.spec.containers[0] ("app") image is ""; set an image pinned to a version tag or digest.'
                    : `Deployment "cowsay-v1": spec.template.spec.containers[0] ("app") image ${JSON.stringify(image)} is not pinned; expected ${expected}.`,
            ]);
        });
    }
});
