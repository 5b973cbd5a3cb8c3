// Loaded before the program by Pulumi.yaml's `nodeargs` (--require), so before Pulumi's runtime, ts-node
// and TypeScript: Node's on-disk compile cache (in the system's temporary directory; Node keys it by its
// version and each file's contents) spares every later `pulumi preview` and `pulumi up` recompiling
// the same few megabytes of JavaScript, about an eighth of a command's CPU (npm run bench:pulumi-cpu).
// A rollback is that much sooner. Plain JavaScript: it runs before ts-node can compile anything. Node
// < 22.1 has no such cache, and the program itself refuses it with a clearer message.
require("node:module").enableCompileCache?.();
