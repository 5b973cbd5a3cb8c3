// The gate before a switch: a dynamic resource whose create/update fetches each version that is
// about to take traffic through the gateway's test route and fails unless the page is that
// version's own. The live route depends on it, so a failed check fails `pulumi up` before the
// route changes: traffic stays where it was.
import * as pulumi from "@pulumi/pulumi";

/** One version the route is about to send traffic to. */
export interface VersionCheck {
    readonly version: string;
    /** Part of the inputs so that a new image under the same name is checked again. */
    readonly image: string;
    /** Text only this version's page contains. */
    readonly expect: string;
}

export interface SmokeCheckInputs {
    /** Gateway base URL as seen from where `pulumi up` runs (http:// or https://). */
    readonly gatewayUrl: string;
    /** Host the gateway serves; sent as Host header and TLS server name. */
    readonly host: string;
    /** Test-route header that pins a request to one version. */
    readonly header: string;
    readonly checks: readonly VersionCheck[];
    /** Tries per version before giving up (the pods may still be warming up). */
    readonly attempts: number;
    /** Pause between tries, in milliseconds. */
    readonly intervalMs: number;
}

export interface SmokeCheckOutcome extends SmokeCheckInputs {
    /** When the last check passed (ISO time). */
    readonly checkedAt: string;
}

/**
 * Fetches every version once per try until its page contains its text. Self-contained (requires
 * inside) because Pulumi serializes it into the dynamic provider.
 */
export async function runSmokeChecks(inputs: SmokeCheckInputs): Promise<SmokeCheckOutcome> {
    const http = require("node:http") as typeof import("node:http");
    const https = require("node:https") as typeof import("node:https");
    const base = new URL(inputs.gatewayUrl);
    const get = (version: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
            const secure = base.protocol === "https:";
            const request = (secure ? https : http).request(
                {
                    hostname: base.hostname,
                    port: base.port === "" ? undefined : Number(base.port),
                    path: "/",
                    method: "GET",
                    headers: { host: inputs.host, [inputs.header]: version },
                    timeout: 10_000,
                    // The gate checks which version answers, not who signed the certificate: the
                    // default issuer is self-signed and the gateway is addressed by IP.
                    ...(secure ? { servername: inputs.host, rejectUnauthorized: false } : {}),
                },
                (response) => {
                    let body = "";
                    response.setEncoding("utf8");
                    response.on("data", (chunk: string) => (body += chunk));
                    response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
                },
            );
            request.on("timeout", () => request.destroy(new Error("no answer within 10s")));
            request.on("error", reject);
            request.end();
        });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    for (const check of inputs.checks) {
        let last = "";
        for (let attempt = 1; attempt <= inputs.attempts; attempt++) {
            try {
                const { status, body } = await get(check.version);
                if (status === 200 && body.includes(check.expect)) {
                    last = "";
                    break;
                }
                const hint = status >= 300 && status < 400 ? " (a redirect: with httpsRedirect on, use an https:// gatewayUrl)" : "";
                last = `answered ${status}${hint} with a page that does not contain ${JSON.stringify(check.expect)}: ${JSON.stringify(body.slice(0, 120))}`;
            } catch (err) {
                last = `could not be fetched: ${err instanceof Error ? err.message : String(err)}`;
            }
            if (attempt < inputs.attempts) await pause(inputs.intervalMs);
        }
        if (last !== "") {
            throw new Error(
                `smoke check failed: version ${check.version} (${check.image}) at ${inputs.gatewayUrl} with ${inputs.header}: ${check.version} ${last}; ` +
                    `the route was not changed and traffic stays where it was`,
            );
        }
    }
    return { ...inputs, checkedAt: new Date().toISOString() };
}

const provider: pulumi.dynamic.ResourceProvider<SmokeCheckInputs, SmokeCheckOutcome> = {
    async create(inputs) {
        return { id: `smoke-${Date.now()}`, outs: await runSmokeChecks(inputs) };
    },
    async update(_id, _olds, news) {
        return { outs: await runSmokeChecks(news) };
    },
};

export type SmokeCheckArgs = { readonly [K in keyof SmokeCheckInputs]: pulumi.Input<SmokeCheckInputs[K]> };

/** Passes only when every version about to take traffic answers with its own page. */
export class SmokeCheck extends pulumi.dynamic.Resource {
    declare readonly checkedAt: pulumi.Output<string>;

    constructor(name: string, args: SmokeCheckArgs, opts?: pulumi.CustomResourceOptions) {
        super(provider, name, { ...args, checkedAt: undefined }, opts, "cowsay-bluegreen", "SmokeCheck");
    }
}
