/**
 * nydus-ts entry point. `mount … --daemon` goes straight to its light parent (mount_daemon.ts),
 * which spawns the daemon before anything else loads, and `mount … --server SOCKET` to its light
 * client (serve_client.ts): both are on the path of every cold start. Every other command line
 * goes to the full parser (commands.ts).
 */
const args = process.argv.slice(2);
const has = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
// Only the module a command line needs is loaded.
if (args[0] === "mount" && has("--server")) {
  const client = await import("./serve_client.ts");
  if (client.wantsServerMount(args)) await client.runMountViaServer(args);
  else await import("./commands.ts");
} else if (args[0] === "mount" && has("--daemon")) {
  const daemon = await import("./mount_daemon.ts");
  if (daemon.wantsDaemonMount(args)) await daemon.runMountDaemon(args);
  else await import("./commands.ts");
} else await import("./commands.ts");
