// Stack config: every bad value is refused with one message that names the key, the value and
// what is allowed, before any resource is registered; Pulumi.yaml declares what the code defaults.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";

import { CONFIG_KEYS, DEFAULTS, parseSettings, type LastRun } from "../config";
import { decideRoles } from "../lib/version-roles";
import { ROOT } from "./support/constants";
import { runProgram } from "./support/helpers";

const versions = (v: Record<string, unknown>) => JSON.stringify(v);
const cow = { image: "dougbtv/nginx-cowsay:v1", expect: "^__^" };
const hotdog = { image: "dougbtv/nginx-cowsay:v2", expect: "O___O" };

// [what, config, exact message]
const BAD: [string, Record<string, string>, string][] = [
    ["unknown version", { activeVersion: "v3" }, 'Invalid config activeVersion: "v3" is not a deployed version; allowed: v1, v2.'],
    ["wrong case", { activeVersion: "V2" }, 'Invalid config activeVersion: "V2" is not a deployed version (did you mean "v2"?); allowed: v1, v2.'],
    ["empty active version", { activeVersion: "" }, 'Invalid config activeVersion: "" is not a deployed version; allowed: v1, v2.'],
    ["malformed versions map", { versions: "{v1: cow}" }, 'Invalid config versions: "{v1: cow}" is not valid JSON; expected an object.'],
    [
        "versions not an object",
        { versions: '["v1","v2"]' },
        'Invalid config versions: ["v1","v2"] is not allowed; expected an object from version name to { image, replicas?, expect? }.',
    ],
    [
        "empty versions map",
        { versions: "{}" },
        'Invalid config versions: {} is not allowed; declare at least one version, for example { "v1": { "image": "dougbtv/nginx-cowsay:v1" } }.',
    ],
    [
        "malformed version name",
        { versions: versions({ V1: cow }), activeVersion: "V1" },
        `Invalid config versions: version name "V1" is not allowed; names are lower-case letters, digits and '-', start and end alphanumeric, at most 40 characters.`,
    ],
    [
        "duplicate version name",
        {
            versions:
                '{"v1":{"image":"dougbtv/nginx-cowsay:v1","expect":"a"},"v2":{"image":"dougbtv/nginx-cowsay:v2","expect":"b"},"v1":{"image":"x:1","expect":"c"}}',
        },
        'Invalid config versions: version name "v1" is declared twice; each version name must be unique.',
    ],
    [
        "duplicate version (same image twice)",
        { versions: versions({ v1: cow, blue: cow }) },
        'Invalid config versions.blue.image: "dougbtv/nginx-cowsay:v1" is already version "v1"; each version needs its own image.',
    ],
    [
        "image without a tag",
        { versions: versions({ v1: { image: "dougbtv/nginx-cowsay" }, v2: hotdog }) },
        'Invalid config versions.v1.image: "dougbtv/nginx-cowsay" is not allowed; expected a pinned tag or digest (for example dougbtv/nginx-cowsay:v1).',
    ],
    [
        "registry port is not a tag",
        { versions: versions({ v1: { image: "registry:5000/cowsay" }, v2: hotdog }) },
        'Invalid config versions.v1.image: "registry:5000/cowsay" is not allowed; expected a pinned tag or digest (for example dougbtv/nginx-cowsay:v1).',
    ],
    [
        "image with latest",
        { versions: versions({ v1: { image: "dougbtv/nginx-cowsay:latest" }, v2: hotdog }) },
        'Invalid config versions.v1.image: "dougbtv/nginx-cowsay:latest" is not allowed; expected a pinned tag other than latest, or a digest.',
    ],
    [
        "negative replicas",
        { versions: versions({ v1: { ...cow, replicas: -1 }, v2: hotdog }) },
        "Invalid config versions.v1.replicas: -1 is not allowed; expected an integer from 1 to 1000.",
    ],
    [
        "non-integer replicas",
        { versions: versions({ v1: { ...cow, replicas: 1.5 }, v2: hotdog }) },
        "Invalid config versions.v1.replicas: 1.5 is not allowed; expected an integer from 1 to 1000.",
    ],
    ["replicas as text", { replicas: "two" }, 'Invalid config replicas: "two" is not allowed; expected an integer from 1 to 1000.'],
    ["replicas past int32", { replicas: "3000000000" }, 'Invalid config replicas: "3000000000" is not allowed; expected an integer from 1 to 1000.'],
    ["replicas past int64", { replicas: "99999999999" }, 'Invalid config replicas: "99999999999" is not allowed; expected an integer from 1 to 1000.'],
    [
        "a billion pods in a version",
        { versions: versions({ v1: { ...cow, replicas: 1e9 }, v2: hotdog }) },
        "Invalid config versions.v1.replicas: 1000000000 is not allowed; expected an integer from 1 to 1000.",
    ],
    ["idle replicas past the bound", { idleReplicas: "1001" }, 'Invalid config idleReplicas: "1001" is not allowed; expected an integer from 0 to 1000.'],
    [
        "a smoke check that could run for hours",
        { smokeCheckTimeout: "36000" },
        'Invalid config smokeCheckTimeout: "36000" is not allowed; expected an integer from 5 to 600.',
    ],
    [
        "a smoke check with no time at all",
        { smokeCheckTimeout: "0" },
        'Invalid config smokeCheckTimeout: "0" is not allowed; expected an integer from 5 to 600.',
    ],
    [
        "a wait for Istio's route status that could run for hours",
        { routeStatusTimeout: "3600" },
        'Invalid config routeStatusTimeout: "3600" is not allowed; expected an integer from 0 to 600.',
    ],
    [
        "a negative wait for Istio's route status",
        { routeStatusTimeout: "-1" },
        'Invalid config routeStatusTimeout: "-1" is not allowed; expected an integer from 0 to 600.',
    ],
    [
        "an Istio chart source that is neither a repository nor a directory",
        { istioCharts: "ftp://charts.example.com" },
        'Invalid config istioCharts: "ftp://charts.example.com" is not allowed; expected a chart repository URL (https://, http:// or oci://) or the path of a directory holding the base, istiod and gateway charts.',
    ],
    [
        "unknown field in a version",
        { versions: versions({ v1: { ...cow, replica: 2 }, v2: hotdog }) },
        'Invalid config versions.v1: unknown field "replica"; allowed fields: image, replicas, expect.',
    ],
    ["unknown key", { activeVersoin: "v2" }, `Invalid config activeVersoin: unknown key; allowed keys: ${CONFIG_KEYS.join(", ")}.`],
    [
        "weights that do not sum to 100",
        { trafficSplit: '{"v1":90,"v2":20}' },
        'Invalid config trafficSplit: {"v1":90,"v2":20} sums to 110; the weights must sum to 100.',
    ],
    ["weight for an unknown version", { trafficSplit: '{"v1":90,"v3":10}' }, 'Invalid config trafficSplit: "v3" is not a deployed version; allowed: v1, v2.'],
    [
        "fractional weight",
        { trafficSplit: '{"v1":90.5,"v2":9.5}' },
        "Invalid config trafficSplit.v1: 90.5 is not allowed; expected an integer percent from 0 to 100.",
    ],
    [
        "split that starves the active version",
        { trafficSplit: '{"v1":0,"v2":100}' },
        'Invalid config trafficSplit: {"v1":0,"v2":100} gives activeVersion "v1" no traffic; the active version must keep a share > 0 (set activeVersion to the version you are moving to once it takes all traffic).',
    ],
    ["negative idle replicas", { idleReplicas: "-1" }, 'Invalid config idleReplicas: "-1" is not allowed; expected an integer from 0 to 1000.'],
    ["boolean as text", { installIstio: "yes" }, 'Invalid config installIstio: "yes" is not a boolean; allowed: true or false.'],
    ["unknown issuer", { issuer: "letsencrypt" }, 'Invalid config issuer: "letsencrypt" is not allowed; allowed: selfsigned, acme.'],
    [
        "a gateway Service type Kubernetes has but the gateway cannot use",
        { gatewayServiceType: "ExternalName" },
        'Invalid config gatewayServiceType: "ExternalName" is not allowed; allowed: LoadBalancer, NodePort, ClusterIP.',
    ],
    [
        "a gateway Service type in the wrong case",
        { gatewayServiceType: "nodeport" },
        'Invalid config gatewayServiceType: "nodeport" is not allowed; allowed: LoadBalancer, NodePort, ClusterIP.',
    ],
    ["acme without an e-mail", { issuer: "acme" }, 'Invalid config acmeEmail: "" is not allowed; issuer acme needs the e-mail address of the account.'],
    [
        "header with upper case",
        { testRouteHeader: "X-Version" },
        `Invalid config testRouteHeader: "X-Version" is not allowed; expected a lower-case HTTP header name (letters, digits, '-'), or "" to turn test routes off.`,
    ],
    [
        "smoke check without test routes",
        { testRouteHeader: "" },
        'Invalid config smokeCheck: true needs the test routes (testRouteHeader is ""); set a header name or set smokeCheck to false.',
    ],
    [
        "smoke check without expected text",
        { versions: versions({ v1: cow, v2: { image: "dougbtv/nginx-cowsay:v2" } }) },
        "Invalid config versions.v2.expect: is missing; the gate needs text that only this version's page contains, or set smokeCheck to false.",
    ],
    [
        "gateway URL that is not a URL",
        { gatewayUrl: "203.0.113.10" },
        'Invalid config gatewayUrl: "203.0.113.10" is not a URL; expected for example http://203.0.113.10 or http://localhost:8080.',
    ],
    [
        "unknown routing API",
        { routingApi: "Gateway-API" },
        'Invalid config routingApi: "Gateway-API" is not allowed (did you mean "gateway-api"?); allowed: istio, gateway-api.',
    ],
    [
        "Gateway API CRDs from nowhere known",
        { routingApi: "gateway-api", gatewayApiCrds: "latest" },
        'Invalid config gatewayApiCrds: "latest" is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.',
    ],
    [
        "Gateway API CRDs from a file:// URL",
        { routingApi: "gateway-api", gatewayApiCrds: "file:///srv/standard-install.yaml" },
        'Invalid config gatewayApiCrds: "file:///srv/standard-install.yaml" is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.',
    ],
    [
        "Gateway API CRDs from a file that is not YAML",
        { routingApi: "gateway-api", gatewayApiCrds: "crds.tar.gz" },
        'Invalid config gatewayApiCrds: "crds.tar.gz" is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.',
    ],
    [
        "Gateway API CRDs set but empty",
        { gatewayApiCrds: "" },
        'Invalid config gatewayApiCrds: "" is not allowed; allowed: auto, release, none, an http:// or https:// URL of the manifest, or the path of a local .yaml file.',
    ],
    [
        "host name with upper case",
        { hostname: "Cowsay.example.com" },
        `Invalid config hostname: "Cowsay.example.com" is not allowed; expected a lower-case DNS host name such as cowsay.example.com.`,
    ],
];

describe("bad stack config", () => {
    for (const [what, config, message] of BAD) {
        it(`refuses ${what}`, () => {
            assert.throws(() => parseSettings(config), { name: "Refused", message });
        });
    }

    it("fails the program with one line (a RunError: no stack trace) before any resource is registered", async () => {
        for (const [what, config, message] of BAD) {
            const run = await runProgram(config);
            assert.equal(run.error?.message, `${message} Nothing was changed.`, what);
            assert.ok(pulumi.RunError.isInstance(run.error), what);
            assert.deepEqual(run.resources, [], `${what}: nothing may be registered`);
        }
    });

    it("refuses a secret in a key that is written into objects in plain text, naming the keys that may be secret", () => {
        assert.throws(() => parseSettings({ hostname: "cowsay.example.com" }, new Set(["hostname"])), {
            name: "Refused",
            message:
                "Invalid config hostname: is stored as a secret, but its value is written in plain text into Kubernetes objects and stack outputs; only gatewayUrl, prometheusUrl, prometheusToken and acmeEmail can be kept secret. Set it again without --secret.",
        });
        assert.deepEqual([...parseSettings({ gatewayUrl: "https://u:p@203.0.113.10" }, new Set(["gatewayUrl"])).secretKeys], ["gatewayUrl"]);
    });
});

describe("removing a version", () => {
    const onlyV3 = { versions: versions({ v3: { image: "registry.example.com/cowsay:v3", expect: "v3" } }), activeVersion: "v3" };
    // What a stack that ran the Pulumi.yaml default (v1 live) says about its last update.
    const defaultsRan: LastRun = { live: ["v1"], versions: { v1: cow, v2: hotdog } };
    const V1_IS_LIVE =
        "Invalid config versions: v1 takes live traffic now, but versions declares only v3; this update would delete it. Declare it again (pulumi config set --path 'versions.v1.image' 'dougbtv/nginx-cowsay:v1' && pulumi config set --path 'versions.v1.expect' '^__^'), move the traffic away first, and remove a version once it is idle.";

    it("is refused while the version takes live traffic, whatever else the config says", () => {
        assert.throws(() => parseSettings(onlyV3, new Set(), defaultsRan), { name: "Refused", message: V1_IS_LIVE });
        assert.throws(
            () => parseSettings(onlyV3, new Set(), { live: ["v1", "v2"], versions: {} }),
            /^Refused: Invalid config versions: v1, v2 take live traffic now/,
        );
    });

    it("is refused as such when a first `--path` starts a new map on a stack that ran the Pulumi.yaml default, not as an unknown activeVersion", () => {
        // `pulumi config set --path 'versions.v3.image' ...` on a stack without versions of its own:
        // the map holds v3 alone, activeVersion still defaults to v1, v3 has no expect text yet.
        const firstPath = { versions: versions({ v3: { image: "registry.example.com/cowsay:v3" } }) };
        assert.throws(() => parseSettings(firstPath, new Set(), defaultsRan), { name: "Refused", message: V1_IS_LIVE });
        // Never deployed: nothing is live, so the map is judged on its own.
        assert.throws(() => parseSettings(firstPath), { message: 'Invalid config activeVersion: "v1" is not a deployed version; allowed: v3.' });
    });

    it("is allowed once the version is idle, and on a stack never deployed", () => {
        const v2Live: LastRun = { live: ["v2"], versions: { v1: cow, v2: hotdog } };
        assert.deepEqual([...parseSettings({ versions: versions({ v2: hotdog }), activeVersion: "v2" }, new Set(), v2Live).versions.keys()], ["v2"]);
        assert.deepEqual([...parseSettings(onlyV3).versions.keys()], ["v3"]);
    });

    it("refuses through the program, reading the stack's last trafficSplit, before anything is registered but that read", async () => {
        const run = await runProgram(onlyV3, { previousOutputs: { trafficSplit: { v1: 90, v2: 10 } } });
        assert.match(
            run.error?.message ?? "",
            /^Invalid config versions: v1, v2 take live traffic now, but versions declares only v3; .* Nothing was changed\.$/,
        );
        assert.deepEqual(
            run.resources.filter((r) => r.type !== "pulumi:pulumi:StackReference"),
            [],
        );
    });

    it("refuses the first `--path` on a stack that ran the default through the program with the README's message", async () => {
        const run = await runProgram(
            { versions: versions({ v3: { image: "registry.example.com/cowsay:v3" } }) },
            { previousOutputs: { trafficSplit: { v1: 100 }, versions: { v1: cow, v2: hotdog } } },
        );
        assert.equal(run.error?.message, `${V1_IS_LIVE} Nothing was changed.`);
        assert.deepEqual(
            run.resources.filter((r) => r.type !== "pulumi:pulumi:StackReference"),
            [],
        );
    });
});

describe("good stack config", () => {
    it("defaults to v1 live, both versions running with the same replicas", () => {
        const settings = parseSettings({});
        assert.equal(settings.activeVersion, "v1");
        assert.deepEqual([...settings.trafficSplit], [["v1", 100]]);
        assert.deepEqual([...settings.versions.keys()], ["v1", "v2"]);
        assert.deepEqual(
            decideRoles(settings).versions.map((v) => [v.name, v.replicas, v.serving]),
            [
                ["v1", 2, true],
                ["v2", 2, false],
            ],
        );
    });

    it("keeps a valid 0 idle replicas and scales only idle versions", () => {
        const settings = parseSettings({
            idleReplicas: "0",
            trafficSplit: '{"v1":90,"v2":10}',
            versions: versions({ v1: cow, v2: hotdog, v3: { image: "cowsay:v3", expect: "3" } }),
        });
        const roles = decideRoles(settings);
        assert.deepEqual(
            roles.versions.map((v) => [v.name, v.replicas, v.weight]),
            [
                ["v1", 2, 90],
                ["v2", 2, 10],
                ["v3", 0, 0],
            ],
        );
        assert.deepEqual([roles.serving.map((v) => v.name), roles.idle.map((v) => v.name)], [["v1", "v2"], ["v3"]]);
    });

    it("does not mistake a repeated name inside a version, or inside a string, for a duplicate version", () => {
        const text = '{"v1":{"image":"dougbtv/nginx-cowsay:v1","expect":"\\"v1\\": {"},"v2":{"image":"dougbtv/nginx-cowsay:v2","expect":"image"}}';
        assert.deepEqual([...parseSettings({ versions: text }).versions.keys()], ["v1", "v2"]);
    });

    it("installs the Gateway API CRDs only for routingApi gateway-api: the pinned release with Istio, or where told", () => {
        const ga = { routingApi: "gateway-api" };
        assert.deepEqual(parseSettings(ga).gatewayApiCrds, { kind: "release" });
        assert.equal(parseSettings({ ...ga, installIstio: "false" }).gatewayApiCrds, undefined, "a cluster with its own mesh");
        assert.deepEqual(parseSettings({ ...ga, installIstio: "false", gatewayApiCrds: "release" }).gatewayApiCrds, { kind: "release" });
        assert.equal(parseSettings({ ...ga, gatewayApiCrds: "none" }).gatewayApiCrds, undefined);
        const mirror = "http://mirror.internal/gateway-api/v1.6.3/standard-install.yaml";
        assert.deepEqual(parseSettings({ ...ga, gatewayApiCrds: mirror }).gatewayApiCrds, { kind: "url", location: mirror });
        assert.deepEqual(parseSettings({ ...ga, gatewayApiCrds: "vendor/standard-install.yml" }).gatewayApiCrds, {
            kind: "file",
            location: "vendor/standard-install.yml",
        });
        assert.equal(parseSettings({ gatewayApiCrds: mirror }).gatewayApiCrds, undefined, "routingApi istio needs none");
    });

    it("accepts a digest-pinned image from a registry with a port", () => {
        const digest = `registry.example.com:5000/cowsay@sha256:${"0".repeat(64)}`;
        const settings = parseSettings({ versions: versions({ v1: { image: digest, expect: "x" } }) });
        assert.equal(settings.versions.get("v1")?.image, digest);
    });
});

describe("Pulumi.yaml", () => {
    const project = parse(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as {
        name: string;
        main?: string;
        runtime: { name: string; options: { typescript?: boolean } };
    };

    it("runs index.ts itself, as Pulumi's TypeScript convention has it: no main, no pre-built JavaScript", () => {
        assert.equal(project.main, undefined);
        assert.notEqual(project.runtime.options.typescript, false);
        const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { main: string };
        assert.equal(pkg.main, "index.ts");
    });

    it("has an example stack that the program accepts, with its versions written out", () => {
        const stack = parse(readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
        const raw = Object.fromEntries(
            Object.entries(stack.config).map(([k, v]) => [k.replace("cowsay-bluegreen:", ""), typeof v === "string" ? v : JSON.stringify(v)]),
        );
        assert.equal(parseSettings(raw).activeVersion, "v1");
        // So that `pulumi config set --path 'versions.v3.image' ...` adds to them.
        assert.deepEqual(JSON.parse(raw.versions ?? "null"), DEFAULTS.versions);
    });
});
