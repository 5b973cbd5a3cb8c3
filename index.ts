// The wiring: read the stack config once, build the mesh, TLS and the blue-green app from it, and
// export what a user needs to watch the switch.
import * as path from "node:path";

import * as pulumi from "@pulumi/pulumi";

import { BlueGreenApp } from "./components/app";
import { parseSettings, replicasOf, type RawConfig } from "./components/config";
import { assertBuildIsCurrent } from "./components/freshness";
import { IstioMesh } from "./components/mesh";
import { GatewayTls } from "./components/tls";

/** This project's config keys and values, without the `<project>:` prefix. */
function projectConfig(): RawConfig {
    const prefix = `${pulumi.getProject()}:`;
    const raw: Record<string, string> = {};
    for (const [key, value] of Object.entries(pulumi.runtime.allConfig())) {
        if (key.startsWith(prefix)) raw[key.slice(prefix.length)] = value;
    }
    return raw;
}

// Pulumi runs the JavaScript in bin/ (Pulumi.yaml `main`); refuse to deploy it if it is stale.
assertBuildIsCurrent(__dirname, path.join(__dirname, ".."));

// Throws a ConfigError naming the key, the value and what is allowed, before any resource exists.
const settings = parseSettings(projectConfig());

const mesh = settings.installIstio
    ? new IstioMesh("istio", { ingressNamespace: settings.ingressNamespace })
    : undefined;

const tls = new GatewayTls(
    "tls",
    {
        hostname: settings.hostname,
        namespace: mesh?.ingressNamespace ?? settings.ingressNamespace,
        issuer: settings.issuer,
        installCertManager: settings.installCertManager,
        prerequisites: mesh === undefined ? [] : [mesh],
    },
);

if (settings.smokeCheck && settings.gatewayUrl === undefined) {
    void pulumi.log.warn(
        "smokeCheck is on but gatewayUrl is empty, so only Deployment readiness gates the route: " +
            "once the gateway has an address, run `pulumi config set gatewayUrl https://<address>`.",
    );
}

new BlueGreenApp(
    "cowsay",
    {
        namespace: settings.appNamespace,
        versions: [...settings.versions].map(([name, spec]) => ({
            name,
            image: spec.image,
            replicas: replicasOf(settings, name),
            expect: spec.expect,
        })),
        weights: settings.weights,
        hostname: settings.hostname,
        gatewaySelector: settings.gatewaySelector,
        tlsSecretName: tls.secretName,
        httpsRedirect: settings.httpsRedirect,
        testRouteHeader: settings.testRouteHeader,
        smokeCheck:
            settings.smokeCheck && settings.gatewayUrl !== undefined ? { gatewayUrl: settings.gatewayUrl } : undefined,
        allowedPrincipals: [
            `cluster.local/ns/${settings.ingressNamespace}/sa/istio-ingressgateway`,
            ...settings.meshClients,
        ],
        readOnlyRootFilesystem: settings.readOnlyRootFilesystem,
        // The Istio objects need Istio's CRDs and a running gateway; the Gateway needs the Secret.
        prerequisites: [...(mesh === undefined ? [] : [mesh]), tls],
    },
);

// How to reach the gateway from a shell: the gateway's address (known once gatewayUrl is set) with
// the host name the Gateway serves, so TLS and routing see the right host.
const gateway = settings.gatewayUrl === undefined ? undefined : new URL(settings.gatewayUrl);
const scheme = gateway?.protocol.replace(":", "") ?? (settings.httpsRedirect ? "https" : "http");
const port = gateway?.port || (scheme === "https" ? "443" : "80");
const curl = `curl -sk --connect-to ::${gateway?.hostname ?? "$GATEWAY_IP"}:${port} ${scheme}://${settings.hostname}/`;

export const activeVersion = settings.activeVersion;
export const trafficSplit = Object.fromEntries(settings.weights);
export const gatewayHost = settings.hostname;
export const gatewayUrl = settings.gatewayUrl ?? "";
export const gatewayAddressCommand = `kubectl -n ${settings.ingressNamespace} get service istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}'`;
export const watchCommand = `watch -n1 ${curl}`;
export const testRouteCommand =
    settings.testRouteHeader === undefined ? "" : curl.replace("curl -sk", `curl -sk -H '${settings.testRouteHeader}: <version>'`);
