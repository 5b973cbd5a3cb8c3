// How the switch runner forwards a stop to the `pulumi` in flight (forwardCancel): a Ctrl-C after a
// grace (the terminal may have sent the process its own SIGINT), the fleet's own stop after a failure
// at once (nothing else told that `pulumi` to stop, and the rollback should not share the machine
// with it).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";

import { StoppedAfterFailure } from "../../fleet/plan";
import { forwardCancel } from "../../fleet/cancel";

const GRACE_MS = 50;

describe("forwardCancel", () => {
    it("a stop after another operation's failure reaches the operation at once", () => {
        const outer = new AbortController();
        const cancel = forwardCancel(outer.signal, { cancelling: false }, GRACE_MS);
        outer.abort(new StoppedAfterFailure());
        assert.equal(cancel.signal?.aborted, true);
        cancel.dispose();
    });

    it("Ctrl-C reaches it only after the grace, and not at all once its pulumi says it is cancelling", async () => {
        const ctrlC = new AbortController();
        const plain = forwardCancel(ctrlC.signal, { cancelling: false }, GRACE_MS);
        const listener = { cancelling: false };
        const cancelling = forwardCancel(ctrlC.signal, listener, GRACE_MS);
        ctrlC.abort();
        listener.cancelling = true;
        assert.equal(plain.signal?.aborted, false, "not before the grace");
        await sleep(GRACE_MS * 3);
        assert.equal(plain.signal?.aborted, true, "after the grace");
        assert.equal(cancelling.signal?.aborted, false, "its pulumi cancels on the terminal's SIGINT: a second one would terminate it");
        plain.dispose();
        cancelling.dispose();
    });
});
