/**
 * nydus-ts entry point. `mount … --daemon` goes straight to its light parent (mount_daemon.ts),
 * which spawns the daemon before anything else loads, and `mount … --server SOCKET` to its light
 * client (serve_client.ts): both are on the path of every cold start. Every other command line
 * goes to the full parser (commands.ts).
 */
import { runMountDaemon, wantsDaemonMount } from "./mount_daemon.ts";
import { runMountViaServer, wantsServerMount } from "./serve_client.ts";

const args = process.argv.slice(2);
if (wantsDaemonMount(args)) await runMountDaemon(args);
else if (wantsServerMount(args)) await runMountViaServer(args);
else await import("./commands.ts");
