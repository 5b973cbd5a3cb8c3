// A fleet to test on: local control planes (test/cluster.ts), one copy of the project with one stack
// per cluster in one file backend (test/engine.ts), each stack reaching its cluster only through its
// own kubernetes:kubeconfig config, and a stand-in gateway per cluster (test/gateway.ts). Used by the
// fleet's end-to-end suite and by bench/fleet.ts. Needs `pulumi` on PATH and the control plane built.
import { cpSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";

import { LocalCluster } from "../cluster";
import { APP_NAMESPACE, INGRESS_NAMESPACE, NO_INSTALLS, SHORT_GATE, URN, configKey } from "../constants";
import { EngineStack, ROOT, liveWeights } from "../engine";
import { StandInGateway, type KubeObject } from "../gateway";
import { renderedRoutes } from "../rendered-routes";
import { runCommand, runUntil, type CommandResult, type RunningCommand } from "../processes";

const APP_KINDS = "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io";
/** The compiled fleet command (npm run test:e2e and the benchmark build it first). */
const FLEET_CLI = path.join(ROOT, "bin", "fleet", "cli.js");

export interface Member {
    readonly stack: string;
    readonly cluster: LocalCluster;
    readonly gateway: StandInGateway;
}

export class FleetOfClusters {
    private constructor(
        /** The project copy: its directory holds fleet.yaml and the stack files; its env reaches the backend. */
        readonly project: EngineStack,
        readonly members: readonly Member[],
    ) {}

    /**
     * Starts one control plane per stack name (with the CRDs the program needs, as a cluster with a
     * mesh has them), creates the stacks, and deploys v1 on each. `config` goes to every stack.
     */
    static async create(stacks: readonly string[], config: Record<string, string> = {}): Promise<FleetOfClusters> {
        const clusters: LocalCluster[] = [];
        const gateways: StandInGateway[] = [];
        let project: EngineStack | undefined;
        try {
            // Every cluster that came up is torn down below, also when another one failed.
            const started = await Promise.allSettled(stacks.map(() => LocalCluster.up()));
            for (const result of started) if (result.status === "fulfilled") clusters.push(result.value);
            const failed = started.find((r) => r.status === "rejected");
            if (failed !== undefined) throw failed.reason;
            await Promise.all(
                clusters.map(async (cluster) => {
                    await cluster.script("apply-crds");
                    const ns = await cluster.kubectl("create", "namespace", INGRESS_NAMESPACE);
                    if (ns.code !== 0) throw new Error(`kubectl create namespace ${INGRESS_NAMESPACE}: ${ns.stderr}`);
                }),
            );
            for (const cluster of clusters) gateways.push(await StandInGateway.start(renderedRoutes(() => cluster.get(APP_KINDS, APP_NAMESPACE))));
            // No KUBECONFIG in the environment: each stack must reach its cluster through its own config.
            project = EngineStack.project({ config: {}, target: "cluster", env: { KUBECONFIG: undefined } });
            // `npm run fleet` in the copy builds and runs the copy's own fleet, as in a checkout.
            cpSync(path.join(ROOT, "fleet"), path.join(project.dir, "fleet"), { recursive: true });
            const members = stacks.map((stack, i) => ({ stack, cluster: clusters[i], gateway: gateways[i] }));
            const fleet = new FleetOfClusters(project, members);
            for (const m of members) {
                await project.pulumi("stack", "init", m.stack);
                const settings = {
                    activeVersion: "v1",
                    ...NO_INSTALLS,
                    smokeCheckTimeout: SHORT_GATE,
                    gatewayUrl: `https://${m.gateway.address}`,
                    ...config,
                };
                await project.pulumi(
                    "config", "set-all", "--stack", m.stack,
                    "--plaintext", `kubernetes:kubeconfig=${m.cluster.env.KUBECONFIG ?? ""}`,
                    ...Object.entries(settings).flatMap(([k, v]) => ["--plaintext", `${configKey(k)}=${v}`]),
                );
            }
            await Promise.all(members.map((m) => fleet.pulumi(m.stack, "up", "--yes", "--skip-preview")));
            return fleet;
        } catch (err) {
            await Promise.all(gateways.map((g) => g.stop().catch(() => undefined)));
            project?.dispose();
            await Promise.all(clusters.map((c) => c.down()));
            throw err;
        }
    }

    get dir(): string {
        return this.project.dir;
    }

    member(stack: string): Member {
        const found = this.members.find((m) => m.stack === stack);
        if (found === undefined) throw new Error(`no stack ${stack}`);
        return found;
    }

    /** `pulumi args... --stack stack` in the project; rejects unless it exits 0. */
    pulumi(stack: string, ...args: string[]): Promise<CommandResult> {
        return this.project.pulumi(...args, "--stack", stack);
    }

    /** The stack's outputs. */
    async outputs(stack: string): Promise<Record<string, unknown>> {
        return JSON.parse((await this.pulumi(stack, "stack", "output", "--json")).stdout) as Record<string, unknown>;
    }

    /** The app's objects on the stack's API server. */
    objects(stack: string): Promise<KubeObject[]> {
        return this.member(stack).cluster.get(APP_KINDS, APP_NAMESPACE);
    }

    /** The live VirtualService's weights, as the stack's API server has them. */
    async liveRoute(stack: string): Promise<Record<string, number>> {
        return liveWeights(await this.objects(stack));
    }

    stackFile(stack: string): string {
        return readFileSync(path.join(this.dir, `Pulumi.${stack}.yaml`), "utf8");
    }

    /** Runs the compiled fleet command in the project to its end. */
    fleet(...args: string[]): Promise<CommandResult> {
        return runCommand(process.execPath, [FLEET_CLI, ...args], { cwd: this.dir, env: this.project.env });
    }

    /**
     * Starts the fleet command and resolves once its output matches `line`, with the command still
     * running, in a process group of its own as a terminal runs a foreground job: a test can then send
     * the group what a terminal's Ctrl-C (or a closed laptop) sends, with signalGroup.
     */
    startFleet(line: RegExp, ...args: string[]): Promise<RunningCommand> {
        return runUntil(process.execPath, [FLEET_CLI, ...args], { cwd: this.dir, env: this.project.env, detached: true }, line);
    }

    /**
     * Every stack on v1 with its config saying so, unlocked, every gateway serving, no fleet record:
     * what each test starts from. Only stacks that are not there already are updated.
     */
    async reset(): Promise<void> {
        for (const m of this.members) {
            m.gateway.mode = "serving";
            m.gateway.overrides.clear();
        }
        rmSync(path.join(this.dir, ".fleet"), { recursive: true, force: true });
        if (this.project.locks().length > 0) for (const m of this.members) await this.project.run("cancel", "--yes", "--stack", m.stack);
        await Promise.all(
            this.members.map(async (m) => {
                const outputs = await this.outputs(m.stack);
                const file = this.stackFile(m.stack);
                const onV1 = JSON.stringify(outputs.trafficSplit) === '{"v1":100}' && /:activeVersion: v1$/m.test(file) && !/:trafficSplit:/.test(file);
                if (!onV1) {
                    await this.pulumi(m.stack, "config", "set", configKey("activeVersion"), "v1");
                    await this.project.run("config", "rm", configKey("trafficSplit"), "--stack", m.stack);
                    await this.pulumi(m.stack, "up", "--yes", "--skip-preview");
                }
                // The program's gate trusts a version that took traffic just before the current one
                // (a switch back to it is a rollback, not fetched). A stack whose v2 was live before
                // v1 came back (not by a rollback) would switch to v2 unchecked; undoing that takes
                // several updates, so say so instead of letting a gate test pass for the wrong reason.
                const trusted = await this.gateTrusts(m.stack);
                if (trusted.includes("v2")) {
                    throw new Error(`${m.stack}: its gate trusts v2 (v2 was live before v1 came back), so a switch to v2 would not be fetched; start from new stacks`);
                }
            }),
        );
    }

    /** Versions the stack's gate would not fetch on a switch to them (its rollbackTargets). */
    async gateTrusts(stack: string): Promise<string[]> {
        const exported = JSON.parse((await this.pulumi(stack, "stack", "export")).stdout) as { deployment: { resources: { urn: string; outputs?: { rollbackTargets?: { version: string }[] } }[] } };
        const gate = exported.deployment.resources.find((r) => URN.gate.test(r.urn));
        return (gate?.outputs?.rollbackTargets ?? []).map((t) => t.version);
    }

    async dispose(): Promise<void> {
        await Promise.all(this.members.map((m) => m.gateway.stop().catch(() => undefined)));
        this.project.dispose();
        await Promise.all(this.members.map((m) => m.cluster.down()));
    }
}
