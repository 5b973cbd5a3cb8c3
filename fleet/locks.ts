// Stack locks, as a self-managed (DIY) backend keeps them: one JSON file per running update, naming
// the process that holds it. A `pulumi up` killed with the fleet (SIGKILL, a closed laptop) leaves
// its lock behind, and every later update of that stack fails until `pulumi cancel` removes it. The
// rollback removes such a lock itself, but only one whose holder is gone: a process of this machine
// that no longer runs. Anything else (another machine, a live process) is someone's running update.
import { readFileSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export interface LockHolder {
    readonly user: string;
    readonly host: string;
    readonly pid: number;
}

/** The holders a "the stack is currently locked" error names; undefined if `message` is not one. */
export function lockHolders(message: string): LockHolder[] | undefined {
    if (!message.includes("the stack is currently locked")) return undefined;
    // The CLI's error can reach us twice (its stdout and its stderr); one holder per lock file.
    const holders = new Map<string, LockHolder>();
    for (const m of message.matchAll(/(\S+): created by (.*)@(\S+) \(pid (\d+)\)/g)) holders.set(m[1], { user: m[2], host: m[3], pid: Number(m[4]) });
    return [...holders.values()];
}

/** Whether every holder is a process of `host` that no longer runs (so the locks are left-overs). */
export function allStale(holders: readonly LockHolder[], host: string, isAlive: (pid: number) => boolean): boolean {
    return holders.length > 0 && holders.every((h) => h.host === host && !isAlive(h.pid));
}

/**
 * The locks of a stack in a file:// backend, read from the backend's own directory (the DIY backend
 * has no call that lists them); undefined for any other backend, where this cannot be seen cheaply.
 */
export function fileBackendLocks(backendUrl: string | undefined, project: string, stack: string): LockHolder[] | undefined {
    if (backendUrl === undefined || !backendUrl.startsWith("file://")) return undefined;
    // `pulumi login --local` is file://~, the home directory.
    const url = backendUrl.replace(/\?.*$/, "");
    const base = /^file:\/\/~(\/|$)/.test(url) ? path.join(homedir(), url.slice("file://~".length)) : fileURLToPath(url);
    const root = path.join(base, ".pulumi", "locks");
    // Project-scoped layout (organization/<project>/<stack>), and the legacy one (<stack>).
    const dirs = [path.join(root, "organization", project, stack), path.join(root, stack)];
    const holders: LockHolder[] = [];
    for (const dir of dirs) {
        let files: string[];
        try {
            files = readdirSync(dir).filter((f) => f.endsWith(".json"));
        } catch {
            continue;
        }
        for (const file of files) {
            try {
                const lock = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as { username?: string; hostname?: string; pid?: number };
                holders.push({ user: lock.username ?? "", host: lock.hostname ?? "", pid: lock.pid ?? 0 });
            } catch {
                holders.push({ user: "", host: "", pid: 0 }); // a lock being written: locked all the same
            }
        }
    }
    return holders;
}
