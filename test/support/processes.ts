// Processes the tests (and the demo) start: running a command for its output, running one until a
// line appears (to interrupt it there), which processes are still running afterwards, and waiting for
// them to go. Used to check that a cancelled or killed pulumi, or a stopped control plane, leaves
// nothing behind.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { constants } from "node:os";

export interface CommandResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface CommandOptions {
    readonly cwd?: string;
    readonly env: NodeJS.ProcessEnv;
    /** In a process group of its own (runUntil), so that a test can signal the whole group as a terminal does. */
    readonly detached?: boolean;
}

/** Runs `file args...` to the end; resolves with its exit code and output, never rejects. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
    return new Promise((resolve) => {
        execFile(file, args, { ...options, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
            resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
        });
    });
}

/**
 * Runs `file args...` to the end with its output shown (this process's stdout and stderr) or
 * dropped; resolves with its exit code. `detached` runs it in a session of its own, out of reach of
 * a terminal's Ctrl-C (a teardown that a second Ctrl-C must not cut short).
 */
export function runToEnd(
    file: string,
    args: readonly string[],
    options: CommandOptions & { output: "inherit" | "ignore"; detached?: boolean },
): Promise<number> {
    return new Promise((resolve) => {
        const child = spawn(file, args, { cwd: options.cwd, env: options.env, detached: options.detached, stdio: ["ignore", options.output, options.output] });
        child.on("close", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
    });
}

/** A command started by runUntil, still running when its line appeared. */
export interface RunningCommand {
    readonly child: ChildProcess;
    readonly pid: number;
    /** stdout and stderr so far, interleaved as a terminal shows them. */
    output(): string;
    /** Its exit code once it ends (128 + the signal's number when a signal ended it). */
    readonly exited: Promise<number>;
    /** Whether it has ended. */
    ended(): boolean;
    /**
     * Sends `signal`, then waits up to `ms` for it to end: its exit code, or undefined if it was still
     * running (it is then killed with SIGKILL, so that nothing outlives the test).
     */
    stop(signal: NodeJS.Signals, ms?: number): Promise<number | undefined>;
}

/**
 * Starts `file args...` and resolves once its output (stdout or stderr) matches `line`, with the
 * command still running; rejects with everything it printed if it ends first, or if `line` does not
 * appear within `ms`.
 */
export function runUntil(file: string, args: readonly string[], options: CommandOptions, line: RegExp, ms = 300_000): Promise<RunningCommand> {
    const child = spawn(file, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let done = false;
    const exited = new Promise<number>((resolve) => {
        child.on("close", (code, signal) => {
            done = true;
            resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
        });
    });
    const running: RunningCommand = {
        child,
        pid: child.pid as number,
        output: () => output,
        exited,
        ended: () => done,
        async stop(signal, within = 60_000) {
            if (!done) child.kill(signal);
            let timer: NodeJS.Timeout | undefined;
            const code = await Promise.race([exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), within)))]);
            clearTimeout(timer);
            if (code === undefined) {
                child.kill("SIGKILL");
                await exited;
            }
            return code;
        },
    };
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            child.kill("SIGKILL");
            reject(new Error(`${file} ${args.join(" ")}: no line matching ${String(line)} within ${ms / 1000} s:\n${output}`));
        }, ms);
        const onData = (chunk: Buffer) => {
            output += chunk.toString();
            if (line.test(output)) {
                clearTimeout(timer);
                resolve(running);
            }
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
        void exited.then((code) => {
            clearTimeout(timer);
            reject(new Error(`${file} ${args.join(" ")} exited ${code} before printing a line matching ${String(line)}:\n${output}`));
        });
    });
}

export interface ProcessInfo {
    readonly pid: number;
    readonly command: string;
}

const PS_ARGS = ["-eo", "pid=,ppid=,pgid=,stat=,args="];

/** Every process now, from ps (the ps that reads it aside): its parent, its process group, its state (Z: a zombie) and its command line. */
function processTable(): (ProcessInfo & { ppid: number; pgid: number; stat: string })[] {
    return execFileSync("ps", PS_ARGS, { encoding: "utf8" })
        .split("\n")
        .map((line) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), pgid: Number(m[3]), stat: m[4], command: m[5] }))
        .filter((p) => !(p.ppid === process.pid && p.command === ["ps", ...PS_ARGS].join(" ")));
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/**
 * Every descendant of `pid` with its command line; with `sameGroup`, only those in `pid`'s own process
 * group (what a terminal's Ctrl-C reaches when `pid` runs in the foreground).
 */
export function descendants(pid: number, options: { sameGroup?: boolean } = {}): ProcessInfo[] {
    const table = processTable();
    const group = table.find((r) => r.pid === pid)?.pgid;
    const found: ProcessInfo[] = [];
    const walk = (parent: number) => {
        for (const row of table.filter((r) => r.ppid === parent)) {
            if (options.sameGroup !== true || row.pgid === group) found.push({ pid: row.pid, command: row.command });
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

/**
 * Every process (this one aside) whose working directory is `dir` or below: the plugins a pulumi
 * started in a project directory, which their command lines do not name. Read from /proc, the only
 * place that says (ps has no column for it); Linux only, like the rest of the harness.
 */
export function processesIn(dir: string): ProcessInfo[] {
    const found: ProcessInfo[] = [];
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
        try {
            const cwd = readlinkSync(`/proc/${entry}/cwd`);
            if (cwd !== dir && !cwd.startsWith(`${dir}/`)) continue;
            // A zombie, or a process in the middle of exiting, is already gone (as processesMentioning
            // has it): its state says Z or X, and it has no command line left to show.
            const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
            const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
            if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2)) || command === "") continue;
            found.push({ pid: Number(entry), command });
        } catch {
            // gone meanwhile, or not ours to read
        }
    }
    return found;
}

/** Sends `signal` to each process that still runs. */
export function signalAll(processes: readonly ProcessInfo[], signal: NodeJS.Signals): void {
    for (const p of processes) {
        try {
            process.kill(p.pid, signal);
        } catch {
            // already gone
        }
    }
}

/** Waits up to `ms` for every process to exit, then fails naming the ones still running. */
export async function waitUntilGone(processes: readonly ProcessInfo[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (processes.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
        processes.filter((p) => alive(p.pid)).map((p) => p.command),
        [],
        "processes outlived the pulumi that started them",
    );
}
