// The one rule for container image references, read by the program (config: versions.<name>.image)
// and by the policy pack (images-pinned on every container of a Deployment), so that both give every
// reference the same verdict in the same words. test/image.test.ts runs one table of cases through
// both.
//
// The grammar is Docker's own (distribution/reference), through @swimlane/docker-reference, a port of
// it: `app@sha256:abc` is a malformed digest, not a tag "abc" of an image named "app@sha256", and a
// registry port (`registry:5000/app`) is not a tag. On top of the grammar, one rule of this project:
// a reference is pinned, by a tag other than `latest` or by a digest.
//
// The policy pack loads this file too: keep it free of Pulumi and of syntax newer than TypeScript 3.8
// (see policy/policies.ts).
import { parseFamiliarName } from "@swimlane/docker-reference";

/** What a reference looks like, for messages. */
export const IMAGE_EXAMPLE = "dougbtv/nginx-cowsay:v1";

/**
 * Why `image` is not a pinned image reference, as what was expected instead ("a pinned tag or
 * digest (...)"), or undefined when it is one.
 */
export function imageProblem(image: string): string | undefined {
    if (image === "" || /\s/.test(image)) {
        return "an image reference without spaces";
    }
    let tag: string | undefined;
    let digest: string | undefined;
    try {
        const reference = parseFamiliarName(image);
        tag = reference.tag;
        digest = reference.digest;
    } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        return `a valid image reference, [registry[:port]/]name[:tag][@sha256:<64 hex digits>] (${reason})`;
    }
    // The reference grammar allows A-F in any digest; the OCI image spec's grammar for sha256 (and
    // go-digest, which registries use) is lower-case hex only, so a registry would refuse the pull.
    if (digest !== undefined && digest.startsWith("sha256:") && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
        return "a sha256 digest in lower-case hex, as the OCI image spec writes it (sha256:<64 of 0-9 a-f>)";
    }
    if (tag === "latest") {
        // The digest alone would pin it, but a reader of the object sees "latest" and believes it.
        return digest === undefined ? "a pinned tag other than latest, or a digest" : "a digest without the tag latest beside it";
    }
    if (tag === undefined && digest === undefined) {
        return `a pinned tag or digest (for example ${IMAGE_EXAMPLE})`;
    }
    return undefined;
}
