// The stack output gatewayAddressCommand (lib/address.ts), run by a shell as a user runs it,
// against a stand-in kubectl that answers like the real one: host:port for each Service type, and a
// failure that says why instead of half an address.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { gatewayAddressCommand } from "../lib/address";
import type { GatewayServiceType } from "../config";

const GATEWAY = { namespace: "istio-ingress", service: "istio-ingressgateway" };

/**
 * Runs the command with a `kubectl` on PATH that logs its arguments and prints the answer for the
 * first key of `answers` found in its arguments (the JSONPath asked for), or nothing.
 */
function run(type: GatewayServiceType, answers: Record<string, string>) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "address-"));
    const log = path.join(dir, "calls");
    const cases = Object.entries(answers)
        .map(
            ([key, value]) =>
                `  *${JSON.stringify(key)
                    .slice(1, -1)
                    .replace(/[[\]?*()]/g, "\\$&")}*) printf '%s' '${value}' ;;`,
        )
        .join("\n");
    fs.writeFileSync(path.join(dir, "kubectl"), `#!/bin/sh\necho "$*" >> '${log}'\ncase "$*" in\n${cases}\nesac\n`, { mode: 0o755 });
    const result = spawnSync("sh", ["-c", gatewayAddressCommand({ type, ...GATEWAY })], {
        env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ""}` },
        encoding: "utf8",
    });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
    fs.rmSync(dir, { recursive: true });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls };
}

describe("gatewayAddressCommand", () => {
    it("LoadBalancer: prints the load balancer's IP or host name with port 443", () => {
        const ip = run("LoadBalancer", { "loadBalancer.ingress[0].ip": "203.0.113.10" });
        assert.deepEqual([ip.status, ip.stdout], [0, "203.0.113.10:443\n"]);
        assert.deepEqual(
            ip.calls.map((c) => c.split(" ").slice(0, 5).join(" ")),
            ["-n istio-ingress get service istio-ingressgateway"],
        );
    });

    it("LoadBalancer without an address (no load-balancer controller, kind's case): fails and names the key that fixes it", () => {
        const none = run("LoadBalancer", {});
        assert.equal(none.status, 1);
        assert.equal(none.stdout, "");
        assert.match(none.stderr, /istio-ingress\/istio-ingressgateway has no load-balancer address yet .*pulumi config set gatewayServiceType NodePort/);
    });

    it("NodePort: prints a node's internal IP and the node port behind the Service's port 443", () => {
        const nodePort = run("NodePort", { InternalIP: "172.18.0.2", "port==443": "31443" });
        assert.deepEqual([nodePort.status, nodePort.stdout], [0, "172.18.0.2:31443\n"]);
        assert.equal(nodePort.calls.length, 2);
        assert.match(nodePort.calls[0], /^get nodes /);
        assert.match(nodePort.calls[1], /^-n istio-ingress get service istio-ingressgateway /);
    });

    it("NodePort without a node port: fails and says so", () => {
        const missing = run("NodePort", { InternalIP: "172.18.0.2" });
        assert.equal(missing.status, 1);
        assert.equal(missing.stdout, "");
        assert.match(missing.stderr, /no node address or node port for service istio-ingress\/istio-ingressgateway/);
    });

    it("ClusterIP: prints the local end of the port-forward it tells the user to run, and asks the cluster nothing", () => {
        const forwarded = run("ClusterIP", {});
        assert.deepEqual([forwarded.status, forwarded.stdout, forwarded.calls], [0, "127.0.0.1:8443\n", []]);
        assert.match(forwarded.stderr, /kubectl -n istio-ingress port-forward service\/istio-ingressgateway 8443:443/);
    });
});
