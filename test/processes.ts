// Processes a test started, directly or through pulumi: which are still running, and waiting for
// them to go. Used to check that a cancelled or killed pulumi leaves no plugin behind.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

export interface ProcessInfo {
    readonly pid: number;
    readonly command: string;
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/** Every descendant of `pid` with its command line. */
export function descendants(pid: number): ProcessInfo[] {
    const table = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" })
        .split("\n")
        .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), command: m[3] }));
    const found: ProcessInfo[] = [];
    const walk = (parent: number) => {
        for (const row of table.filter((r) => r.ppid === parent)) {
            found.push({ pid: row.pid, command: row.command });
            walk(row.pid);
        }
    };
    walk(pid);
    return found;
}

/** Every running process whose command line contains `text` (zombies left out: they are already gone). */
export function processesMentioning(text: string): ProcessInfo[] {
    return execFileSync("ps", ["-eo", "pid=,stat=,args="], { encoding: "utf8" })
        .split("\n")
        .map((line) => /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null && !m[2].startsWith("Z") && m[3].includes(text))
        .map((m) => ({ pid: Number(m[1]), command: m[3] }));
}

/** Waits up to `ms` for every process to exit, then fails naming the ones still running. */
export async function waitUntilGone(processes: readonly ProcessInfo[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (processes.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(processes.filter((p) => alive(p.pid)).map((p) => p.command), [], "processes outlived the pulumi that started them");
}
