/**
 * The client side of `nydus-ts serve` (serve.ts): `nydus-ts mount SOURCE MNT --server SOCKET`.
 * Light on purpose: main.ts calls it before the command-line parser loads (for a `mount` line
 * with `--server`, not a help request). It sends the mount's arguments as they are, with its
 * working directory; the server parses and checks them with the same definitions as the
 * command line (mount_command.ts). So a mount through a server costs one small Node process
 * and the server's work, no daemon start.
 */
import net from "node:net";
import path from "node:path";
import { InvalidInputError } from "../internal/errors.ts";
import { emit, reportError } from "./output.ts";

/** A request on the socket: `mount`'s arguments after the command name, without `--server`. */
export interface ServeRequest {
  op: "mount";
  args: string[];
  /** The client's working directory: relative paths in `args` are resolved against it. */
  cwd: string;
}

/** The answer to a {@link ServeRequest}. */
export type ServeReply =
  | { ok: true; mountpoint: string; stateFile: string; pid: number }
  | { ok: false; error: { code: string; message: string } };

/** The options part of `args` (before a `--`). */
const optionsOf = (args: readonly string[]) => (args.includes("--") ? args.slice(0, args.indexOf("--")) : args);

/** Splits `--server SOCKET` / `--server=SOCKET` out of `mount`'s arguments. */
function takeServer(args: readonly string[]): { socket: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let socket: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (a === "--server") socket = args[++i];
    else if (a.startsWith("--server=")) socket = a.slice("--server=".length);
    else rest.push(a);
  }
  return { socket, rest };
}

/**
 * Runs `nydus-ts ARGS` (a `mount … --server SOCKET` command line, without the program name)
 * through the server; exits non-zero with the server's error.
 */
export async function runMountViaServer(args: readonly string[]): Promise<void> {
  const flags = { json: optionsOf(args).includes("--json") };
  try {
    const { socket: socketArg, rest } = takeServer(args.slice(1));
    if (!socketArg) throw new InvalidInputError("Cannot mount through a server: --server needs the socket path");
    if (optionsOf(rest).includes("--daemon")) throw new InvalidInputError("Cannot mount: --daemon and --server exclude each other (a server is a daemon already)");
    const socket = path.resolve(socketArg);
    const reply = await ask(socket, { op: "mount", args: rest, cwd: process.cwd() });
    if (!reply.ok) throw new InvalidInputError(`Cannot mount through the server: ${reply.error.message}`);
    emit(flags, { mountpoint: reply.mountpoint, pid: reply.pid, stateFile: reply.stateFile, server: socket }, () => `mounted ${reply.mountpoint} (server pid ${reply.pid} on ${socket})`);
  } catch (err) {
    reportError(err, flags);
  }
  // Nothing is left to do (stdout and stderr are synchronous for files and pipes on Linux):
  // exit now rather than after the event loop winds down, since a cold start waits on this.
  process.exit(process.exitCode ?? 0);
}

/** One request, one reply line. */
function ask(socket: string, request: ServeRequest): Promise<ServeReply> {
  return new Promise<ServeReply>((resolve, reject) => {
    const conn = net.connect(socket);
    let got = "";
    conn.setEncoding("utf8");
    conn.once("connect", () => conn.write(JSON.stringify(request) + "\n"));
    conn.on("data", (d: string) => (got += d));
    conn.once("error", (err: NodeJS.ErrnoException) => {
      const nobody = err.code === "ENOENT" || err.code === "ECONNREFUSED";
      reject(new InvalidInputError(`Cannot reach the nydus-ts server at "${socket}": ${nobody ? `nothing serves there (start one with nydus-ts serve --socket ${socket})` : err.message}`));
    });
    conn.once("end", () => {
      try {
        resolve(JSON.parse(got) as ServeReply);
      } catch {
        reject(new InvalidInputError(`Cannot mount through "${socket}": the server gave no answer`));
      }
    });
  });
}
