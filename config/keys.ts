// The key table: every key of the stack config, declared once, in the order the reference lists
// them: its documentation (config/docs.ts) and the schema that parses the text Pulumi hands the
// program. The structure (unknown keys, maps, fields, defaults, paths in messages) is zod's; the
// kinds of value come from config/values.ts, the versions map from config/versions.ts. What is
// derived from the table (every key's name, default, secret capability) is derived here, once.
import * as z from "zod";

import { docOf, key, type ConfigValue, type KeyDoc } from "./docs";
import { duplicateTopLevelKey, json } from "./json";
import { notAllowed, show, suggestion } from "./messages";
import {
    DNS_LABEL,
    DNS_NAME,
    GATEWAY_NAME,
    HEADER_NAME,
    HOSTNAME,
    ISTIO_CHART_REPOSITORY,
    MAX_REPLICAS,
    PRINCIPAL,
    ROUTING_APIS,
    bool,
    chartSource,
    gatewayApiCrds,
    integer,
    orNone,
    url,
} from "./values";
import { versionMap } from "./versions";

/** Every key of the stack config, in the order the reference lists them. */
export const configSchema = z.strictObject({
    routingApi: key(
        {
            default: "istio",
            allowed: "`istio` or `gateway-api`",
            description:
                "How traffic reaches the versions: istio (Istio's Gateway, DestinationRule and VirtualService) or gateway-api " +
                "(the Kubernetes Gateway API: Gateway, HTTPRoute, a Service per version).",
        },
        z.enum(ROUTING_APIS, {
            error: (issue) => `${show(issue.input)} is not allowed${suggestion(String(issue.input), ROUTING_APIS)}; allowed: ${ROUTING_APIS.join(", ")}.`,
        }),
    ),
    gatewayApiCrds: key(
        {
            default: "auto",
            allowed: "`auto`, `release`, `none`, an `http(s)://` URL of the manifest, or the path of a local `.yaml` file",
            description:
                "With routingApi gateway-api, where the Gateway API CRDs (standard channel) are installed from: auto is the release " +
                "pinned in versions.json when installIstio is true and none otherwise; none: the cluster has them; a URL or a file: a " +
                "mirror or an air-gapped copy. Turning the install off leaves the CRDs in the cluster.",
        },
        z.string().transform(gatewayApiCrds),
    ),
    activeVersion: key(
        {
            default: "v1",
            allowed: "a name declared in `versions`",
            description: "The version that takes the live traffic.",
        },
        z.string(),
    ),
    versions: key(
        {
            default: {
                v1: { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" },
                v2: { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" },
            },
            allowed:
                "name → `{ image, replicas?, expect? }`; names are DNS labels of at most 40 characters; each image is pinned by a " +
                "tag other than `latest` or by a digest, and belongs to one version; `replicas` 1 to 1000",
            description:
                "Every version to run, idle or not. replicas defaults to the replicas key; expect is text only this version's page " +
                "contains, which the gate requires. A version that takes live traffic cannot be removed: remove it once it is idle.",
        },
        json("an object", versionMap, (text) => {
            const twice = duplicateTopLevelKey(text);
            return twice === undefined ? undefined : `version name ${show(twice)} is declared twice; each version name must be unique.`;
        }),
    ),
    replicas: key(
        {
            default: 2,
            allowed: `1 to ${MAX_REPLICAS}`,
            description: "Pods per version, unless the version sets its own replicas.",
        },
        z.string().transform(integer(1, MAX_REPLICAS)),
    ),
    trafficSplit: key(
        {
            default: {},
            allowed: "name → integer percent; the percents sum to 100 and give activeVersion a share",
            description: "Optional weighted split of the live traffic; {} sends 100% to activeVersion.",
        },
        z
            .string()
            .transform((text) => (text.trim() === "" ? "{}" : text))
            .pipe(
                json(
                    "an object",
                    z.record(
                        z.string(),
                        z
                            .int({ error: notAllowed("an integer percent from 0 to 100") })
                            .min(0, { error: notAllowed("an integer percent from 0 to 100") })
                            .max(100, { error: notAllowed("an integer percent from 0 to 100") }),
                        { error: notAllowed('an object from version name to percent, for example { "v1": 90, "v2": 10 }') },
                    ),
                ),
            ),
    ),
    idleReplicas: key(
        {
            default: "",
            allowed: `\`""\` or 0 to ${MAX_REPLICAS}`,
            description:
                "Pods a version keeps while it takes no traffic. Empty keeps its own replicas, so a rollback needs no scale-up; 0 " +
                "stops idle versions (the preview warns that a rollback is then not instant).",
        },
        z.string().transform(orNone(integer(0, MAX_REPLICAS))),
    ),
    testRouteHeader: key(
        {
            default: "x-cowsay-version",
            allowed: '`""` (off) or a lower-case header name',
            description: "Request header that reaches the named version through the gateway, whatever the live route says.",
        },
        z
            .string()
            .refine((text) => text === "" || HEADER_NAME.test(text), {
                error: (issue) =>
                    `${show(issue.input)} is not allowed; expected a lower-case HTTP header name (letters, digits, '-'), or "" to turn test routes off.`,
            })
            .transform((text) => (text === "" ? undefined : text)),
    ),
    smokeCheck: key(
        {
            default: true,
            allowed: "`true` or `false`",
            description:
                "The gate: before the live route sends traffic to a version, fetch its page through its test route and require its " +
                "expect text. It needs testRouteHeader, and runs once gatewayUrl is set.",
        },
        bool,
    ),
    smokeCheckTimeout: key(
        {
            default: 60,
            allowed: "5 to 600",
            description: "The most seconds one pulumi up spends in the gate; then it fails and the route stays.",
        },
        z.string().transform(integer(5, 600)),
    ),
    routeStatusTimeout: key(
        {
            default: 60,
            allowed: "0 to 600",
            description:
                "With routingApi gateway-api, the most seconds one pulumi up waits for Istio to accept the HTTPRoutes it wrote and " +
                "resolve their backends (the routes' status); then it fails and idle versions keep their pods. 0: do not wait " +
                "(for a mesh that writes no route status).",
        },
        z.string().transform(integer(0, 600)),
    ),
    gatewayUrl: key(
        {
            default: "",
            allowed: '`""` or an `http://` or `https://` URL',
            secret: true,
            description:
                "Address of the ingress gateway as seen from where pulumi runs (for example https://203.0.113.10); the gate fetches " +
                "through it. It may carry credentials (https://user:token@host, ?token=).",
        },
        z.string().transform(orNone(url)),
    ),
    prometheusUrl: key(
        {
            default: "",
            allowed: '`""` or an `http://` or `https://` URL',
            secret: true,
            description:
                "Prometheus's HTTP API as seen from where pulumi runs (for example http://prometheus.example:9090); once set, the " +
                "metric analysis runs (docs/analysis.md). It may carry basic-auth credentials (https://user:password@host).",
        },
        z.string().transform(orNone(url)),
    ),
    prometheusToken: key(
        {
            default: "",
            allowed: 'a bearer token, or `""` for none',
            secret: true,
            description: "Sent to prometheusUrl as Authorization: Bearer; set it with --secret.",
        },
        z.string().transform((text) => (text.trim() === "" ? undefined : text.trim())),
    ),
    analysis: key(
        {
            default: {},
            allowed: "an object: `preSwitch`, `trafficPerSecond`, `checks` (docs/analysis.md)",
            description:
                "With prometheusUrl set: the checks a version must pass on Istio's metrics, before the switch (in the gate, on " +
                "synthetic traffic) and at each step of npm run fleet -- rollout. {} runs the built-in success-rate (min 99) and " +
                "request-duration (p99, max 500 ms) checks.",
        },
        json("an object", z.unknown()),
    ),
    hostname: key(
        {
            default: "cowsay.example.com",
            allowed: "a lower-case DNS host name",
            description: "Host name the gateway serves and the certificate names.",
        },
        z.string().regex(HOSTNAME, { error: notAllowed("a lower-case DNS host name such as cowsay.example.com") }),
    ),
    appNamespace: key(
        {
            default: "cowsay",
            allowed: "a DNS label",
            description: "Namespace created for the app (sidecar injection on, mTLS STRICT).",
        },
        z.string().regex(DNS_LABEL, { error: notAllowed(DNS_NAME) }),
    ),
    installIstio: key(
        {
            default: true,
            allowed: "`true` or `false`",
            description: "Install Istio (the base, istiod and gateway charts); false for clusters that already run a mesh.",
        },
        bool,
    ),
    istioCharts: key(
        {
            default: ISTIO_CHART_REPOSITORY,
            allowed: "a chart repository URL (`https://`, `http://`, `oci://`) or a local directory with `base/`, `istiod/` and `gateway/`",
            description:
                "Where installIstio takes the charts from: Istio's repository, a mirror, or a directory of charts from helm pull " +
                "--untar (clusters without internet).",
        },
        z.string().transform(chartSource),
    ),
    gatewayServiceType: key(
        {
            default: "LoadBalancer",
            allowed: "`LoadBalancer`, `NodePort` or `ClusterIP`",
            description:
                "Type of the ingress gateway's Service: as installed with installIstio (pulumi up waits for the gateway's pods, never " +
                "for a load-balancer address), or the existing gateway's without it. gatewayAddressCommand says how to reach each type.",
        },
        z.enum(["LoadBalancer", "NodePort", "ClusterIP"], {
            error: (issue) => `${show(issue.input)} is not allowed; allowed: LoadBalancer, NodePort, ClusterIP.`,
        }),
    ),
    installCertManager: key(
        {
            default: true,
            allowed: "`true` or `false`",
            description: "Install cert-manager with its CRDs; false for clusters that already have it (the Issuer and Certificate stay).",
        },
        bool,
    ),
    issuer: key(
        {
            default: "selfsigned",
            allowed: "`selfsigned` or `acme`",
            description: "Where the gateway certificate comes from: a self-signed Issuer, or ACME (HTTP-01 through the gateway).",
        },
        z.enum(["selfsigned", "acme"], { error: (issue) => `${show(issue.input)} is not allowed; allowed: selfsigned, acme.` }),
    ),
    acmeEmail: key(
        {
            default: "",
            allowed: "an e-mail address; required with issuer `acme`",
            secret: true,
            description: "E-mail of the ACME account (personal data).",
        },
        z.string(),
    ),
    acmeServer: key(
        {
            default: "https://acme-v02.api.letsencrypt.org/directory",
            allowed: "an `https://` URL",
            description: "ACME directory URL (with issuer acme).",
        },
        z.string().refine((text) => /^https:\/\/[^\s/]+\S*$/.test(text) && URL.canParse(text), {
            error: notAllowed("the https:// directory URL of the ACME server"),
        }),
    ),
    httpsRedirect: key(
        {
            default: true,
            allowed: "`true` or `false`",
            description: "Redirect plain HTTP to HTTPS at the gateway; false keeps plain HTTP (local clusters).",
        },
        bool,
    ),
    readOnlyRootFilesystem: key(
        {
            default: true,
            allowed: "`true` or `false`",
            description: "Mount the app containers' root filesystem read-only (nginx writes only to emptyDirs).",
        },
        bool,
    ),
    ingressNamespace: key(
        {
            default: "istio-ingress",
            allowed: "a DNS label",
            description: "Namespace of the ingress gateway; the TLS Secret is written there.",
        },
        z.string().regex(DNS_LABEL, { error: notAllowed(DNS_NAME) }),
    ),
    gatewaySelector: key(
        {
            // The label the gateway chart gives the pods of the release mesh.ts installs.
            default: { istio: GATEWAY_NAME.replace(/^istio-/, "") },
            allowed: "a non-empty object of label names to values",
            description: "Labels of the ingress gateway pods the Istio Gateway binds to.",
        },
        json(
            "an object of strings",
            z
                .record(z.string(), z.string({ error: notAllowed("a label value (text)") }), {
                    error: notAllowed("a non-empty object of label names to string values"),
                })
                .refine((labels) => Object.keys(labels).length > 0, { error: notAllowed("a non-empty object of label names to string values") }),
        ),
    ),
    meshClients: key(
        {
            default: [],
            allowed: "an array of SPIFFE principals (`cluster.local/ns/<ns>/sa/<sa>`)",
            description: "Principals, besides the ingress gateway, allowed to call the app.",
        },
        json(
            "an array",
            z.array(z.string().regex(PRINCIPAL, { error: notAllowed('a SPIFFE principal such as "cluster.local/ns/shop/sa/frontend"') }), {
                error: notAllowed('an array of SPIFFE principals such as "cluster.local/ns/shop/sa/frontend"'),
            }),
        ),
    ),
});

export type ConfigKey = keyof typeof configSchema.shape;
export const CONFIG_KEYS = Object.keys(configSchema.shape) as readonly ConfigKey[];

/** The documentation of `key`, as declared in the schema. */
export function keyDoc(key: ConfigKey): KeyDoc {
    const doc = docOf(configSchema.shape[key] as z.ZodType);
    if (doc === undefined) throw new Error(`config key ${key} has no documentation`);
    return doc;
}

/** The default of every key, as Pulumi.yaml declares it. */
export const DEFAULTS = Object.fromEntries(CONFIG_KEYS.map((k) => [k, keyDoc(k).default])) as Readonly<Record<ConfigKey, ConfigValue>>;

/** Keys that may hold credentials or personal data, and so may be set with `pulumi config set --secret`. */
export const SECRET_CAPABLE_KEYS: readonly ConfigKey[] = CONFIG_KEYS.filter((k) => keyDoc(k).secret === true);
