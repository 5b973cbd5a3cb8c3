// A local control plane for one test file (or the demo): scripts/cluster.sh up in a temporary state
// directory (with the CRDs and namespaces the app expects, when asked), the environment that points
// kubectl and the Kubernetes provider at it (and, unless asked not to, at its Prometheus), and down. Needs the
// control plane built (`scripts/cluster.sh build`; `up` builds what is missing).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

import type { KubeObject } from "./gateway";
import { ROOT } from "./constants";
import { runCommand, runToEnd, type CommandResult } from "./processes";

/** scripts/cluster.sh, which builds and runs the control plane; the suites of the script itself call it too. */
export const SCRIPT = path.join(ROOT, "scripts", "cluster.sh");

/**
 * Where scripts/cluster.sh reserves a port of istiod's or Prometheus's: a link to the cluster's
 * directory, in the machine-wide directory COWSAY_CLUSTER_LOCKS (default /tmp/cowsay-bluegreen-<uid>,
 * the script's; the suites that read a reservation fail if the two disagree).
 */
export function portReservation(port: string | number): string {
    const locks = process.env.COWSAY_CLUSTER_LOCKS ?? path.join("/tmp", `cowsay-bluegreen-${process.getuid?.() ?? 0}`);
    return path.join(locks, "ports", String(port));
}

/** The cluster's Prometheus (scripts/prometheus.sh), from `cluster.sh env`. */
export interface LocalPrometheus {
    /** Its HTTP API's base URL, `http://127.0.0.1:<port>` (COWSAY_PROMETHEUS_URL). */
    readonly url: string;
    /** The directory it reads file_sd target files from, `*.json` (COWSAY_PROMETHEUS_TARGETS). */
    readonly targets: string;
}

export class LocalCluster {
    private constructor(
        readonly state: string,
        /** KUBECONFIG, a PATH whose kubectl matches the server, and COWSAY_PROMETHEUS_* when it runs one. */
        readonly env: NodeJS.ProcessEnv,
        /** Undefined when started with `prometheus: false`. */
        readonly prometheus: LocalPrometheus | undefined,
    ) {}

    /**
     * Starts a cluster of its own; returns once the API server, the nodes and the default
     * ServiceAccount are ready. With `crds`, Istio's, cert-manager's and the Gateway API's CRDs are
     * applied (as a cluster that runs a mesh has them), and `namespaces` are created. With `istiod`,
     * `up` applies the CRDs and starts istiod too (COWSAY_CLUSTER_ISTIOD=1), and `env` carries
     * COWSAY_XDS_ADDRESS, istiod's plaintext xDS address, which cowsay-xds (on the PATH) reads. With
     * `istiod: "chart"`, istiod is the one a program installs from Istio's charts (COWSAY_CLUSTER_ISTIOD=chart,
     * scripts/istiod.sh `chart`): nothing of Istio exists until then, not even its CRDs. A Prometheus
     * runs unless `prometheus` is false (COWSAY_CLUSTER_PROMETHEUS=0).
     */
    static async up(options: { crds?: boolean; istiod?: boolean | "chart"; prometheus?: boolean; namespaces?: readonly string[] } = {}): Promise<LocalCluster> {
        const istiod = options.istiod === "chart" ? "chart" : options.istiod === true ? "1" : "0";
        const cluster = await LocalCluster.start(istiod, options.prometheus ?? true);
        try {
            // With istiod, cluster.sh up has applied the CRDs already (istiod needs them at start).
            if (options.crds === true && istiod === "0") await cluster.script("apply-crds");
            for (const namespace of options.namespaces ?? []) await cluster.createNamespace(namespace);
        } catch (err) {
            await cluster.down();
            throw err;
        }
        return cluster;
    }

    private static async start(istiod: "0" | "1" | "chart", prometheus: boolean): Promise<LocalCluster> {
        const state = mkdtempSync(path.join(tmpdir(), "cowsay-cluster-"));
        const base: NodeJS.ProcessEnv = {
            ...process.env,
            COWSAY_CLUSTER_STATE: state,
            COWSAY_CLUSTER_ISTIOD: istiod,
            COWSAY_CLUSTER_PROMETHEUS: prometheus ? "1" : "0",
        };
        // Not the Prometheus of another cluster, which the caller's shell may point at (an eval'd `env`).
        delete base.COWSAY_PROMETHEUS_URL;
        delete base.COWSAY_PROMETHEUS_TARGETS;
        // The cluster's processes outlive this one; if this process ends without down() (a failed
        // hook, Ctrl-C, a test runner's SIGTERM), stop them on the way out.
        const downOnExit = () => {
            try {
                execFileSync(SCRIPT, ["down"], { env: base, stdio: "ignore" });
                rmSync(state, { recursive: true, force: true });
            } catch {
                // nothing more can be done while exiting
            }
        };
        process.once("exit", downOnExit);
        // A signal ends a process without its exit hooks, unless someone listens: a program that
        // handles Ctrl-C itself (the demo, the benchmark) keeps its way; anything else exits at once.
        for (const signal of ["SIGINT", "SIGTERM"] as const) {
            if (process.listenerCount(signal) === 0) process.once(signal, () => process.exit(128 + (signal === "SIGINT" ? 2 : 15)));
        }
        const up = await runCommand(SCRIPT, ["up"], { env: base });
        if (up.code !== 0) {
            await runCommand(SCRIPT, ["down"], { env: base });
            rmSync(state, { recursive: true, force: true });
            throw new Error(`scripts/cluster.sh up failed:\n${up.stdout}\n${up.stderr}`);
        }
        const envOutput = (await runCommand(SCRIPT, ["env"], { env: base })).stdout;
        const value = (name: string) => (new RegExp(`^export ${name}=(\\S+?)(?:"\\$\\{PATH:\\+:\\$PATH\\}")?$`, "m").exec(envOutput) ?? [])[1];
        const kubeconfig = value("KUBECONFIG");
        const bin = value("PATH");
        const xds = value("COWSAY_XDS_ADDRESS");
        const url = value("COWSAY_PROMETHEUS_URL");
        const targets = value("COWSAY_PROMETHEUS_TARGETS");
        if (
            kubeconfig === undefined ||
            bin === undefined ||
            (istiod !== "0") !== (xds !== undefined) ||
            prometheus !== (url !== undefined) ||
            prometheus !== (targets !== undefined)
        ) {
            throw new Error(`unexpected output of scripts/cluster.sh env:\n${envOutput}`);
        }
        const env = {
            ...base,
            KUBECONFIG: kubeconfig,
            PATH: [bin, process.env.PATH ?? ""].join(path.delimiter),
            ...(xds === undefined ? {} : { COWSAY_XDS_ADDRESS: xds }),
            ...(url === undefined || targets === undefined ? {} : { COWSAY_PROMETHEUS_URL: url, COWSAY_PROMETHEUS_TARGETS: targets }),
        };
        return new LocalCluster(state, env, url === undefined || targets === undefined ? undefined : { url, targets });
    }

    /** Runs scripts/cluster.sh with this cluster's state directory. */
    async script(...args: string[]): Promise<CommandResult> {
        const result = await runCommand(SCRIPT, args, { env: this.env });
        if (result.code !== 0) throw new Error(`scripts/cluster.sh ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
        return result;
    }

    /** Runs kubectl against this cluster; resolves with the result, never rejects. */
    kubectl(...args: string[]): Promise<CommandResult> {
        return runCommand("kubectl", args, { env: this.env });
    }

    /** Objects of the given kinds (comma-separated, as kubectl takes them) in a namespace; none if it is gone. */
    async get(kinds: string, namespace: string): Promise<KubeObject[]> {
        const result = await this.kubectl("get", kinds, "-n", namespace, "-o", "json", "--ignore-not-found");
        if (result.code !== 0) throw new Error(`kubectl get ${kinds} -n ${namespace} failed: ${result.stderr}`);
        if (result.stdout.trim() === "") return [];
        return (JSON.parse(result.stdout) as { items: KubeObject[] }).items;
    }

    /** Creates a namespace unless it exists. */
    async createNamespace(namespace: string): Promise<void> {
        if ((await this.kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name")).stdout.trim() !== "") return;
        const created = await this.kubectl("create", "namespace", namespace);
        if (created.code !== 0) throw new Error(`kubectl create namespace ${namespace} failed: ${created.stderr}`);
    }

    /**
     * Stops every process `up` started and removes the state directory; resolves with the script's
     * exit code. `cluster.sh down` runs in a session of its own, so that a second Ctrl-C in the
     * terminal cannot cut it short and leave the control plane running.
     */
    async down(options: { output?: "inherit" } = {}): Promise<number> {
        const code = await runToEnd(SCRIPT, ["down"], { env: this.env, output: options.output ?? "ignore", detached: true });
        rmSync(this.state, { recursive: true, force: true });
        return code;
    }
}
