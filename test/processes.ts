// Processes the tests (and the demo) start: running a command for its output, and which processes
// are still running afterwards, and waiting for them to go. Used to check that a cancelled or killed
// pulumi, or a stopped control plane, leaves nothing behind.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";

export interface CommandResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

/** Runs `file args...` to the end; resolves with its exit code and output, never rejects. */
export function runCommand(file: string, args: readonly string[], options: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<CommandResult> {
    return new Promise((resolve) => {
        execFile(file, args, { ...options, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
            resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
        });
    });
}

export interface ProcessInfo {
    readonly pid: number;
    readonly command: string;
}

/** Every process now, from ps: its parent, its state (Z: a zombie) and its command line. */
function processTable(): (ProcessInfo & { ppid: number; stat: string })[] {
    return execFileSync("ps", ["-eo", "pid=,ppid=,stat=,args="], { encoding: "utf8" })
        .split("\n")
        .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), stat: m[3], command: m[4] }));
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
    const table = processTable();
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
    return processTable()
        .filter((p) => !p.stat.startsWith("Z") && p.command.includes(text))
        .map(({ pid, command }) => ({ pid, command }));
}

/** Waits up to `ms` for every process to exit, then fails naming the ones still running. */
export async function waitUntilGone(processes: readonly ProcessInfo[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (processes.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(processes.filter((p) => alive(p.pid)).map((p) => p.command), [], "processes outlived the pulumi that started them");
}
