// What a bad release does to the stand-in gateway's versions, for the tests of metric analysis: a
// share of its pods' answers are 5xx, or every answer comes late. Deterministic, not random: a test
// that sends 25 requests to a version failing 20% gets exactly 5 errors, every time, so a verdict
// drawn from Prometheus can be asserted exactly. And what a Prometheus that is down looks like: a
// loopback port nothing listens on.
import { createServer, type AddressInfo } from "node:net";

/** How a version misbehaves. */
export interface Fault {
    /** Share of its pods' answers that are 503, in percent (0 to 100). Default: 0. */
    readonly errorPercent?: number;
    /** Time its pods take before each answer, in milliseconds (0 to 600000). Default: 0. */
    readonly delayMs?: number;
}

/** What a version's pod does with one request. */
export interface FaultDecision {
    /** Answer 503 instead of the page. */
    readonly fail: boolean;
    /** Wait this long before answering. */
    readonly delayMs: number;
}

const MAX_DELAY_MS = 600_000;

/** Faults per version. Setting a version's fault (again) starts its count afresh. */
export class Faults {
    private readonly faults = new Map<string, { fault: Fault; served: number }>();

    /** Breaks `version` as `fault` says; refuses values outside the allowed ranges with one line. */
    set(version: string, fault: Fault): this {
        const errorPercent = fault.errorPercent ?? 0;
        const delayMs = fault.delayMs ?? 0;
        if (!Number.isFinite(errorPercent) || errorPercent < 0 || errorPercent > 100) {
            throw new Error(`fault for ${version}: errorPercent is ${JSON.stringify(fault.errorPercent)}; allowed: a number from 0 to 100`);
        }
        if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
            throw new Error(`fault for ${version}: delayMs is ${JSON.stringify(fault.delayMs)}; allowed: a number of milliseconds from 0 to ${MAX_DELAY_MS}`);
        }
        this.faults.set(version, { fault: { errorPercent, delayMs }, served: 0 });
        return this;
    }

    get(version: string): Fault | undefined {
        return this.faults.get(version)?.fault;
    }

    /** Heals `version`; true if it had a fault. */
    delete(version: string): boolean {
        return this.faults.delete(version);
    }

    /** Heals every version. */
    clear(): void {
        this.faults.clear();
    }

    /**
     * What `version`'s pod does with its next request. The n-th answer since set() fails when
     * floor(n × errorPercent / 100) grows at n: 20% fails the 5th, 10th, 15th, ...; 50% every 2nd.
     */
    next(version: string): FaultDecision {
        const entry = this.faults.get(version);
        if (entry === undefined) return { fail: false, delayMs: 0 };
        entry.served++;
        const share = entry.fault.errorPercent ?? 0;
        // The small addend keeps a share like 14.3% from missing a whole number by a rounding error.
        const due = (n: number) => Math.floor((n * share) / 100 + 1e-9);
        return { fail: due(entry.served) > due(entry.served - 1), delayMs: entry.fault.delayMs ?? 0 };
    }
}

/** A loopback port nothing listens on: connecting is refused, as with a Prometheus that is down. */
export async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}
