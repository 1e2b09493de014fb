/**
 * nydus-ts entry point. `mount … --daemon` goes straight to its light parent (mount_daemon.ts),
 * which spawns the daemon before anything else loads, and `mount … --server SOCKET` to its light
 * client (serve_client.ts): both are on the path of every cold start. Every other command line
 * goes to the full parser (commands.ts).
 */
const args = process.argv.slice(2);
const end = args.indexOf("--");
const opts = end < 0 ? args : args.slice(0, end);
// A `mount` line with --server or --daemon takes its light path (a help request goes to the
// full parser, which answers it); only the module that path needs is loaded.
const light = args[0] === "mount" && !opts.includes("--help") && !opts.includes("-h");
if (light && opts.some((a) => a === "--server" || a.startsWith("--server="))) await (await import("./serve_client.ts")).runMountViaServer(args);
else if (light && opts.includes("--daemon")) await (await import("./mount_daemon.ts")).runMountDaemon(args);
else await import("./commands.ts");
