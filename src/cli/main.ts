/**
 * nydus-ts entry point. `mount … --daemon` goes straight to its light parent (mount_daemon.ts),
 * which spawns the daemon before anything else loads, and `mount … --server SOCKET` to its light
 * client (serve_client.ts): both are on the path of every cold start. Every other command line
 * goes to the full parser (commands.ts).
 */
/** Commands that build and exit (see the inlining note below). */
const BATCH_COMMANDS = new Set(["create", "merge", "convert", "export"]);

const args = process.argv.slice(2);
// One-shot builds run each worker's code for a second or two: TurboFan's inlining then costs
// more to compile (in every worker's isolate, on the same two cores) than it saves. Without it
// the bench image converts ~0.1 s faster (CPU 4.00 -> 3.81 s, 10 interleaved runs); `create`
// is unchanged or a little faster. Long-running commands (mount, serve) keep V8's default, as
// does NYDUS_TS_V8_INLINING=1 (for measuring). V8 flags are per process: the workers share it.
if (BATCH_COMMANDS.has(args[0] ?? "") && !process.env.NYDUS_TS_V8_INLINING) (await import("node:v8")).default.setFlagsFromString("--no-turbo-inlining");
const end = args.indexOf("--");
const opts = end < 0 ? args : args.slice(0, end);
// A `mount` line with --server or --daemon takes its light path (a help request goes to the
// full parser, which answers it); only the module that path needs is loaded.
const light = args[0] === "mount" && !opts.includes("--help") && !opts.includes("-h");
if (light && opts.some((a) => a === "--server" || a.startsWith("--server="))) await (await import("./serve_client.ts")).runMountViaServer(args);
else if (light && opts.includes("--daemon")) await (await import("./mount_daemon.ts")).runMountDaemon(args);
else await import("./commands.ts");
