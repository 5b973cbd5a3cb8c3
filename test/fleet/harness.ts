// A fleet to test on: local control planes with istiod (test/support/cluster.ts), one copy of the project with
// one stack per cluster in one file backend (test/support/engine.ts), each stack reaching its cluster only
// through its own kubernetes:kubeconfig config, and a stand-in gateway per cluster that routes by what
// that cluster's istiod pushes to its ingress gateway (test/support/istio-routes.ts): where traffic goes after
// a fleet step is Istio's answer, per cluster. Used by the fleet's end-to-end suite and by
// bench/fleet.ts. Needs `pulumi` on PATH and the control plane built.
import { cpSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";

import { stackSettingsFile } from "../../lib/stack-config";
import { LocalCluster } from "../support/cluster";
import { APP_NAMESPACE, GATEWAY_SELECTOR, HOST, INGRESS_NAMESPACE, NO_INSTALLS, SHORT_GATE, URN, configKey } from "../support/constants";
import { EngineStack, ROOT } from "../support/engine";
import type { StandInGateway, KubeObject } from "../support/gateway";
import { createGatewayService, createTlsSecret, IstioRoutes, istioTable } from "../support/istio-routes";
import { runCommand, runUntil, type CommandResult, type RunningCommand } from "../support/processes";

const APP_KINDS = "deployments.apps,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io";
/** The compiled fleet command (npm run test:e2e and the benchmark build it first). */
const FLEET_CLI = path.join(ROOT, "bin", "fleet", "cli.js");

export interface Member {
    readonly stack: string;
    readonly cluster: LocalCluster;
    /** The cluster's ingress gateway as istiod sees it (the program's gatewaySelector in its ingressNamespace). */
    readonly istio: IstioRoutes;
    /** Routes each request (the gate's, curl's) by `istio`'s push. */
    readonly gateway: StandInGateway;
}

/** A live route's weights (`{ v1: 90, v2: 10 }`) in routeTable's words for its catch-all line (`v1:90 v2:10`; one version alone: `v1`). */
export function liveLine(weights: Readonly<Record<string, number>>): string {
    const entries = Object.entries(weights);
    return entries.length === 1 ? entries[0][0] : entries.map(([version, weight]) => `${version}:${weight}`).join(" ");
}

interface ExportedState {
    readonly deployment: { readonly resources: readonly { readonly urn: string; readonly type: string; readonly outputs?: Record<string, unknown> }[] };
}

/** The stack's outputs in its exported state (its Stack resource's). */
function stackOutputs(state: ExportedState): Record<string, unknown> {
    return state.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack")?.outputs ?? {};
}

/** Versions the stack's gate would not fetch on a switch to them (its rollbackTargets). */
function gateTrusts(state: ExportedState): string[] {
    const gate = state.deployment.resources.find((r) => URN.gate.test(r.urn));
    return ((gate?.outputs?.rollbackTargets ?? []) as { version: string }[]).map((t) => t.version);
}

export class FleetOfClusters {
    private constructor(
        /** The project copy: its directory holds fleet.yaml and the stack files; its env reaches the backend. */
        readonly project: EngineStack,
        readonly members: readonly Member[],
    ) {}

    /**
     * Starts one control plane per stack name, all at once, each with the CRDs the program needs and
     * istiod, and in the ingress namespace what a cluster with the gateway chart and cert-manager has
     * (the gateway's Service, the host's TLS Secret: the installs are off here); creates the stacks,
     * and deploys v1 on each. `config` goes to every stack; `routeCacheMs` to each stand-in gateway
     * (IstioRoutes.startGateway).
     */
    static async create(stacks: readonly string[], config: Record<string, string> = {}, options: { routeCacheMs?: number } = {}): Promise<FleetOfClusters> {
        const clusters: LocalCluster[] = [];
        const members: Member[] = [];
        let project: EngineStack | undefined;
        try {
            // Every cluster that came up is torn down below, also when another one failed.
            const started = await Promise.allSettled(stacks.map(() => LocalCluster.up({ crds: true, istiod: true })));
            for (const result of started) if (result.status === "fulfilled") clusters.push(result.value);
            const failed = started.find((r) => r.status === "rejected");
            if (failed !== undefined) throw failed.reason;
            for (const [i, stack] of stacks.entries()) {
                const cluster = clusters[i];
                await createGatewayService(cluster, INGRESS_NAMESPACE, GATEWAY_SELECTOR);
                await createTlsSecret(cluster, INGRESS_NAMESPACE, HOST);
                const istio = new IstioRoutes(cluster, { ingressNamespace: INGRESS_NAMESPACE, selector: GATEWAY_SELECTOR });
                members.push({ stack, cluster, istio, gateway: await istio.startGateway({ routeCacheMs: options.routeCacheMs }) });
            }
            // No KUBECONFIG in the environment: each stack must reach its cluster through its own config.
            project = EngineStack.project({ config: {}, target: "cluster", env: { KUBECONFIG: undefined } });
            // `npm run fleet` in the copy builds and runs the copy's own fleet, as in a checkout.
            cpSync(path.join(ROOT, "fleet"), path.join(project.dir, "fleet"), { recursive: true });
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
                    "config",
                    "set-all",
                    "--stack",
                    m.stack,
                    "--plaintext",
                    `kubernetes:kubeconfig=${m.cluster.env.KUBECONFIG ?? ""}`,
                    ...Object.entries(settings).flatMap(([k, v]) => ["--plaintext", `${configKey(k)}=${v}`]),
                );
            }
            await Promise.all(members.map((m) => fleet.pulumi(m.stack, "up", "--yes", "--skip-preview")));
            return fleet;
        } catch (err) {
            await Promise.all(members.map((m) => m.gateway.stop().catch(() => undefined)));
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

    /**
     * Waits (bounded, every cluster at once) until the istiod of each stack named in `expected` pushes
     * its ingress gateway the program's HTTPS route table for the host with that live route: the test
     * routes first, then the catch-all with these weights. Fails naming the stack and istiod's last push.
     */
    async expectPushed(expected: Readonly<Record<string, Readonly<Record<string, number>>>>, timeoutSeconds = 15): Promise<void> {
        await Promise.all(
            Object.entries(expected).map(async ([stack, weights]) => {
                try {
                    await this.member(stack).istio.expectGateway(istioTable(liveLine(weights)), timeoutSeconds);
                } catch (err) {
                    throw new Error(`${stack}: ${(err as Error).message}`);
                }
            }),
        );
    }

    stackFile(stack: string): string {
        return readFileSync(path.join(this.dir, stackSettingsFile(stack)), "utf8");
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
        return this.startFleetWith({}, line, ...args);
    }

    /** As startFleet, with `env` on top of the project's (e.g. a TMPDIR of the test's own). */
    startFleetWith(env: Readonly<Record<string, string>>, line: RegExp, ...args: string[]): Promise<RunningCommand> {
        return runUntil(process.execPath, [FLEET_CLI, ...args], { cwd: this.dir, env: { ...this.project.env, ...env }, detached: true }, line);
    }

    /**
     * Every stack on v1 with its config saying so, unlocked, every gateway serving, no fleet record:
     * what each test starts from. Only stacks that are not there already are updated.
     */
    async reset(): Promise<void> {
        await Promise.all(this.members.map((m) => m.gateway.reset()));
        rmSync(path.join(this.dir, ".fleet"), { recursive: true, force: true });
        if (this.project.locks().length > 0) for (const m of this.members) await this.project.run("cancel", "--yes", "--stack", m.stack);
        await Promise.all(
            this.members.map(async (m) => {
                // One read of the state for both questions (each `pulumi` run costs its start).
                let state = await this.exported(m.stack);
                const file = this.stackFile(m.stack);
                const onV1 =
                    JSON.stringify(stackOutputs(state).trafficSplit) === '{"v1":100}' && /:activeVersion: v1$/m.test(file) && !/:trafficSplit:/.test(file);
                if (!onV1) {
                    await this.pulumi(m.stack, "config", "set", configKey("activeVersion"), "v1");
                    await this.project.run("config", "rm", configKey("trafficSplit"), "--stack", m.stack);
                    await this.pulumi(m.stack, "up", "--yes", "--skip-preview");
                    state = await this.exported(m.stack);
                }
                // The program's gate trusts a version that took traffic just before the current one
                // (a switch back to it is a rollback, not fetched). A stack whose v2 was live before
                // v1 came back (not by a rollback) would switch to v2 unchecked; undoing that takes
                // several updates, so say so instead of letting a gate test pass for the wrong reason.
                const trusted = gateTrusts(state);
                if (trusted.includes("v2")) {
                    throw new Error(
                        `${m.stack}: its gate trusts v2 (v2 was live before v1 came back), so a switch to v2 would not be fetched; start from new stacks`,
                    );
                }
            }),
        );
    }

    /** The stack's state, as `pulumi stack export` gives it. */
    private async exported(stack: string): Promise<ExportedState> {
        return JSON.parse((await this.pulumi(stack, "stack", "export")).stdout) as ExportedState;
    }

    async dispose(): Promise<void> {
        await Promise.all(this.members.map((m) => m.gateway.stop().catch(() => undefined)));
        this.project.dispose();
        await Promise.all(this.members.map((m) => m.cluster.down()));
    }
}
