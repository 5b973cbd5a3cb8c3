// The wiring: read the stack config once, decide what each version does, build the mesh, TLS, the
// blue-green app (with the routing API the config picks) and the mesh security beside it, and export
// what a user needs to watch the switch. Every refusal (bad config, an old Node.js, a removal of the
// live version) happens before the first resource is registered, as one message.
import * as pulumi from "@pulumi/pulumi";

import { gatewayAddressCommand } from "./lib/address";
import { BlueGreenApp } from "./components/app";
import { GATEWAY_NAME, SECRET_CAPABLE_KEYS, parseSettings, type LastRun, type RawConfig, type Settings } from "./config";
import type { GateSettings } from "./dynamic/gate";
import { GatewayApiCrds } from "./components/gateway-api-crds";
import { IstioMesh } from "./components/mesh";
import { APP_NAME } from "./lib/app-names";
import { decideRoles } from "./lib/version-roles";
import { ROUTING } from "./components/routing";
import type { RouteSettings } from "./components/routing/shape";
import { sdkIsConfigSecret } from "./components/sdk";
import { MeshSecurity } from "./components/security";
import { Refused } from "./lib/refusal";
import { sharedNamePrefix } from "./lib/shared-names";
import { projectConfig } from "./lib/stack-config";
import { GatewayTls } from "./components/tls";

const MIN_NODE_MAJOR = 22;
/** The TLS component, and the prefix of its Issuer's name. */
const TLS = "tls";

/**
 * Whether the stack stores a config key as a secret: the SDK's own answer (components/sdk.ts says
 * why it is a workaround); should the SDK lose it, every key that may be secret is treated as one.
 */
const isSecret: (fullKey: string) => boolean = sdkIsConfigSecret ?? ((key) => SECRET_CAPABLE_KEYS.some((k) => key.endsWith(`:${k}`)));

/** What this stack ran after its last successful `pulumi up`, read from its own outputs; undefined if never deployed. */
async function lastRun(): Promise<LastRun | undefined> {
    const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
    const split = (await self.getOutputDetails("trafficSplit")).value as Record<string, number> | undefined;
    const versions = (await self.getOutputDetails("versions")).value as LastRun["versions"] | string[] | undefined;
    const prefix = (await self.getOutputDetails("sharedNamePrefix")).value as string | undefined;
    if (split === undefined) return undefined;
    // Stacks deployed before the versions output carried images listed only the names.
    return { live: Object.keys(split), versions: Array.isArray(versions) || versions === undefined ? {} : versions, sharedNamePrefix: prefix };
}

/**
 * How long a switch waits for Istio's verdict on the HTTPRoutes, and on which cluster: the one the
 * stack's Kubernetes provider uses. No wait when the provider renders YAML instead (no cluster).
 */
function statusWait(settings: Settings): RouteSettings["statusWait"] {
    if (settings.routeStatusTimeout === 0 || new pulumi.Config("kubernetes").get("renderYamlToDirectory") !== undefined) return undefined;
    return { timeoutSeconds: settings.routeStatusTimeout, ...cluster() };
}

/** The cluster the stack's Kubernetes provider uses, for the resources that read it during an update. */
function cluster() {
    const kubernetes = new pulumi.Config("kubernetes");
    return { kubeconfig: kubernetes.getSecret("kubeconfig"), context: kubernetes.get("context") };
}

function deploy(settings: Settings, last: LastRun | undefined) {
    const mesh = settings.installIstio
        ? new IstioMesh("istio", {
              ingressNamespace: settings.ingressNamespace,
              charts: settings.istioCharts,
              gatewayServiceType: settings.gatewayServiceType,
              cluster: cluster(),
          })
        : undefined;
    const gatewayApi = settings.gatewayApiCrds === undefined ? undefined : new GatewayApiCrds("gateway-api", { source: settings.gatewayApiCrds });
    const secret = (key: string, value: string): pulumi.Input<string> => (settings.secretKeys.has(key) ? pulumi.secret(value) : value);
    const routing = ROUTING[settings.routingApi];
    const acme = settings.issuer.kind === "acme";
    // Names in the ingress namespace and the cluster scope, which other stacks on the cluster share.
    const prefix = sharedNamePrefix(settings.appNamespace, last);

    const tls = new GatewayTls(TLS, {
        hostname: settings.hostname,
        namespace: mesh?.ingressNamespace ?? settings.ingressNamespace,
        issuer:
            settings.issuer.kind === "acme"
                ? {
                      ...settings.issuer,
                      email: secret("acmeEmail", settings.issuer.email),
                      // The solver names the routing objects the app creates below, by their names.
                      http01: routing.http01Solver({
                          appName: APP_NAME,
                          namespace: settings.appNamespace,
                          ingressNamespace: settings.ingressNamespace,
                          sharedNamePrefix: prefix,
                      }),
                  }
                : settings.issuer,
        issuerName: `${prefix}${TLS}-${settings.issuer.kind}`,
        installCertManager: settings.installCertManager,
        // cert-manager with its Gateway API support waits for the Gateway API's CRDs.
        prerequisites: [...(mesh === undefined ? [] : [mesh]), ...(acme && gatewayApi !== undefined ? [gatewayApi] : [])],
    });

    if (settings.smokeCheck && settings.gatewayUrl === undefined) {
        void pulumi.log.warn(
            "smokeCheck is on but gatewayUrl is empty, so only Deployment readiness gates the route: " +
                "once the gateway has an address, run `pulumi config set gatewayUrl https://<address>`.",
        );
    }

    const roles = decideRoles(settings);
    // The routing objects need their CRDs (Istio's, the Gateway API's) and a running gateway; the Gateway needs the Secret.
    const prerequisites = [...(mesh === undefined ? [] : [mesh]), ...(gatewayApi === undefined ? [] : [gatewayApi]), tls];
    const app = new BlueGreenApp("cowsay", {
        namespace: settings.appNamespace,
        appName: APP_NAME,
        roles,
        routing: routing.component,
        route: {
            hostname: settings.hostname,
            testRouteHeader: settings.testRouteHeader,
            gatewaySelector: settings.gatewaySelector,
            ingressNamespace: settings.ingressNamespace,
            tlsSecretName: tls.secretName,
            httpsRedirect: settings.httpsRedirect,
            acmeHttp01: acme,
            sharedNamePrefix: prefix,
            statusWait: statusWait(settings),
        },
        gate:
            settings.smokeCheck && settings.gatewayUrl !== undefined
                ? {
                      gatewayUrl: secret("gatewayUrl", settings.gatewayUrl),
                      timeoutSeconds: settings.smokeCheckTimeout,
                      analysis: preSwitchAnalysis(settings, last, secret),
                  }
                : undefined,
        readOnlyRootFilesystem: settings.readOnlyRootFilesystem,
        prerequisites,
    });
    new MeshSecurity("cowsay", {
        namespace: settings.appNamespace,
        appName: APP_NAME,
        podSelector: app.podSelector,
        allowedPrincipals: [`cluster.local/ns/${settings.ingressNamespace}/sa/${GATEWAY_NAME}`, ...settings.meshClients],
        prerequisites: [...prerequisites, app.namespace],
        // Until they had a component of their own, these objects were the app's children.
        formerParent: app,
    });

    // How to reach the gateway from a shell: its address (known once gatewayUrl is set) with the
    // host name the Gateway serves, so TLS and routing see the right host.
    const gateway = settings.gatewayUrl === undefined ? undefined : new URL(settings.gatewayUrl);
    const scheme = gateway?.protocol.replace(":", "") ?? (settings.httpsRedirect ? "https" : "http");
    const port = gateway?.port || (scheme === "https" ? "443" : "80");
    const target = gateway === undefined ? "$GATEWAY_ADDRESS" : `${gateway.hostname}:${port}`;
    const curl = `curl -sk --connect-to ::${target} ${scheme}://${settings.hostname}/`;
    // What the live route says, once the route has been updated: after a failed gate the outputs
    // keep describing the route that is really live.
    const whenRouted = <T>(value: T): pulumi.Output<T> => app.route.urn.apply(() => value);

    return {
        activeVersion: whenRouted(roles.active),
        trafficSplit: whenRouted(Object.fromEntries(roles.serving.map((v) => [v.name, v.weight]))),
        versions: Object.fromEntries(roles.versions.map((v) => [v.name, v.expect === undefined ? { image: v.image } : { image: v.image, expect: v.expect }])),
        gatewayHost: settings.hostname,
        // Read back by the next update (lastRun), so that the names of this stack's shared objects never change.
        sharedNamePrefix: prefix,
        gatewayUrl: secret("gatewayUrl", settings.gatewayUrl ?? ""),
        gatewayAddressCommand: gatewayAddressCommand({ type: settings.gatewayServiceType, namespace: settings.ingressNamespace, service: GATEWAY_NAME }),
        // Commands built from gatewayUrl carry whatever it carries, so they are as secret as it is.
        watchCommand: secret("gatewayUrl", `watch -n1 ${curl}`),
        testRouteCommand:
            settings.testRouteHeader === undefined
                ? ""
                : secret("gatewayUrl", curl.replace("curl -sk", `curl -sk -H '${settings.testRouteHeader}: <version>'`)),
    };
}

/** The gate's analysis before a switch, when the stack has a Prometheus and asks for it. */
function preSwitchAnalysis(
    settings: Settings,
    last: LastRun | undefined,
    secret: (key: string, value: string) => pulumi.Input<string>,
): GateSettings["analysis"] {
    const analysis = settings.analysis;
    if (analysis === undefined || !analysis.preSwitch) return undefined;
    return {
        prometheusUrl: secret("prometheusUrl", analysis.provider.url),
        ...(analysis.provider.token === undefined ? {} : { prometheusToken: secret("prometheusToken", analysis.provider.token) }),
        trafficPerSecond: analysis.trafficPerSecond,
        settings: analysis,
        // What vsLive compares with: the version that took the live traffic before this update.
        liveBefore: last?.live.find((v) => v === settings.activeVersion) ?? last?.live[0],
    };
}

export = async () => {
    const node = Number(process.versions.node.split(".")[0]);
    if (node < MIN_NODE_MAJOR) {
        throw new pulumi.RunError(
            `This program needs Node.js ${MIN_NODE_MAJOR} or newer (@pulumi/pulumi requires it), but pulumi started node ${process.version}, the first on PATH. ` +
                `npm ci installs Node 24 into node_modules/.bin: run export PATH="$PWD/node_modules/.bin:$PATH" and try again.`,
        );
    }
    // This project's config keys and values, without the `<project>:` prefix, and which are secrets.
    const { raw, secretKeys }: { raw: RawConfig; secretKeys: ReadonlySet<string> } = projectConfig(
        pulumi.getProject(),
        Object.entries(pulumi.runtime.allConfig()),
        isSecret,
    );
    const last = await lastRun();
    let settings: Settings;
    try {
        settings = parseSettings(raw, secretKeys, last);
    } catch (err) {
        // A refusal is the user's to fix: one line from the CLI, without the stack trace of a failure.
        if (err instanceof Refused) throw new pulumi.RunError(`${err.message} Nothing was changed.`);
        throw err;
    }
    return deploy(settings, last);
};
