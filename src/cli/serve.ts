/**
 * `nydus-ts serve --socket PATH`: one resident process that serves many FUSE mounts (like
 * nydusd's shared daemon mode under nydus-snapshotter). `nydus-ts mount SOURCE MNT --server
 * PATH` asks it for a mount over the Unix socket: no process start-up per mount, and a FUSE
 * serving thread kept ready for the next one. Each mount has its usual state file (pid = this
 * server), so `stats` and `umount` work as for any mount; an external `umount` ends one mount.
 * SIGINT/SIGTERM unmount them all and end the server.
 *
 * Protocol (serve_client.ts): one JSON line per connection each way.
 *   → {"op":"mount","args":[mount's arguments, as typed],"cwd":the client's working directory}
 *   ← {"ok":true,"mountpoint":ABS,"stateFile":F,"pid":N} | {"ok":false,"error":{"code","message"}}
 */
import fs from "node:fs";
import net from "node:net";
import { Command } from "commander";
import path from "node:path";
import { startFuseServer, type FuseServer } from "../fs/index.ts";
import { InvalidInputError, NydusError } from "../internal/errors.ts";
import { log, startMountSession, type MountFlags, type MountSession } from "./mount.ts";
import { checkMountpoint } from "./mount_daemon.ts";
import { lazyFlags, mountArguments, MOUNT_CACHE_HELP } from "./mount_command.ts";
import { emit } from "./output.ts";
import type { ServeReply, ServeRequest } from "./serve_client.ts";

/**
 * `mount`'s arguments parsed with the command line's own definitions (mount_command.ts), paths
 * on the client's side resolved against its working directory.
 * @throws InvalidInputError with commander's message for a usage error
 */
export function parseMountArgs(args: readonly string[], cwd: string): { source: string; mountpoint: string; flags: MountFlags } {
  let parsed: { source: string; mountpoint: string; flags: MountFlags & { daemon?: boolean; server?: string } } | undefined;
  let said = "";
  const cmd = mountArguments(lazyFlags(new Command("mount"), MOUNT_CACHE_HELP))
    .exitOverride()
    .configureOutput({ writeOut: (t) => (said += t), writeErr: (t) => (said += t) })
    .action((source: string, mountpoint: string, flags: MountFlags) => {
      parsed = { source, mountpoint, flags };
    });
  try {
    cmd.parse([...args], { from: "user" });
  } catch (err) {
    throw new InvalidInputError(`Cannot mount: ${said.trim().split("\n")[0] || (err as Error).message}`);
  }
  if (!parsed) throw new InvalidInputError("Cannot mount: no source and mountpoint given");
  const { daemon, server, json, ...flags } = parsed.flags;
  if (daemon || server) throw new InvalidInputError("Cannot mount: --daemon and --server make no sense inside a server");
  void json; // the client prints its own result
  const abs = (p: string) => path.resolve(cwd, p);
  return {
    // oci:DIR[:TAG] with a relative DIR: resolved on the client's side (":TAG" stays a suffix).
    source: parsed.source.startsWith("oci:") ? `oci:${abs(parsed.source.slice("oci:".length))}` : parsed.source,
    mountpoint: abs(parsed.mountpoint),
    flags: { ...flags, ...(flags.cacheDir ? { cacheDir: abs(flags.cacheDir) } : {}), ...(flags.ca ? { ca: flags.ca.map(abs) } : {}) },
  };
}

/** Longest request line accepted. */
const MAX_REQUEST = 64 * 1024;

/** Whether a server answers on `socket` (connect succeeds). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export async function runServe(flags: { socket: string; json?: boolean }): Promise<void> {
  const socket = path.resolve(flags.socket);
  if (fs.existsSync(socket)) {
    if (await answers(socket)) throw new InvalidInputError(`Cannot serve on "${socket}": a server answers there already`);
    fs.rmSync(socket, { force: true }); // left by a server that died
  }
  const sessions = new Map<string, MountSession>();
  /** Mountpoints whose mount is being set up. */
  const settingUp = new Set<string>();
  /** A serving thread started ahead for the next mount (its start-up is then off the mount's path). */
  let spare: FuseServer | undefined = startFuseServer();
  let closing = false;
  /** Mount requests being served (a shutdown waits for them, then unmounts them too). */
  const inflight = new Set<Promise<ServeReply>>();

  const mount = async (req: ServeRequest): Promise<ServeReply> => {
    if (closing) throw new InvalidInputError("Cannot mount: the server is shutting down");
    if (req?.op !== "mount" || !Array.isArray(req.args) || !req.args.every((a) => typeof a === "string") || typeof req.cwd !== "string" || !path.isAbsolute(req.cwd)) {
      throw new InvalidInputError(`Cannot serve the request: expected {"op":"mount","args":[…],"cwd":ABSOLUTE}`);
    }
    const { source, mountpoint, flags } = parseMountArgs(req.args, req.cwd);
    const at = checkMountpoint(mountpoint);
    if (sessions.has(at.mp) || settingUp.has(at.mp)) throw new InvalidInputError(`Cannot mount on "${at.mp}": this server serves it already`);
    const fuse = spare;
    spare = closing ? undefined : startFuseServer();
    const mlog = (line: string) => log(`${at.mp}: ${line}`);
    // Reserved while it is set up, so that a second request for it cannot mount it twice.
    settingUp.add(at.mp);
    let session: MountSession;
    try {
      session = await startMountSession(source, at, flags, { server: fuse, log: mlog, serverSocket: socket });
    } finally {
      settingUp.delete(at.mp);
    }
    sessions.set(at.mp, session);
    mlog(`serving ${source} (cache ${session.cacheDir}, state ${session.stateFile})`);
    void session.done.then(
      () => {
        sessions.delete(at.mp);
        mlog("unmounted");
      },
      (err: Error) => {
        sessions.delete(at.mp);
        mlog(`ended with an error: ${err.message}`);
      },
    );
    return { ok: true, mountpoint: at.mp, stateFile: at.sf, pid: process.pid };
  };

  const server = net.createServer((conn) => {
    let buf = "";
    conn.setEncoding("utf8");
    conn.on("error", () => {}); // a client that went away
    conn.on("data", (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) return conn.destroy();
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      conn.pause();
      let req: ServeRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ServeRequest;
      } catch {
        conn.end(JSON.stringify({ ok: false, error: { code: "ERR_NYDUS_INVALID_INPUT", message: "Cannot serve the request: not one JSON line" } } satisfies ServeReply) + "\n");
        return;
      }
      const pending = mount(req);
      inflight.add(pending);
      void pending.catch(() => undefined).finally(() => inflight.delete(pending));
      pending.then(
        (reply) => conn.end(JSON.stringify(reply) + "\n"),
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          const code = err instanceof NydusError ? err.code : "ERR_UNKNOWN";
          log(`mount ${JSON.stringify(req?.args ?? [])} failed: ${message}`);
          conn.end(JSON.stringify({ ok: false, error: { code, message } } satisfies ServeReply) + "\n");
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolve());
  });
  fs.chmodSync(socket, 0o600); // mounts as root on behalf of whoever can connect: root only

  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    log(`${why}: unmounting ${sessions.size} mount(s) and stopping`);
    server.close();
    spare?.cancel();
    spare = undefined;
    // Mounts being set up finish first (then they are stopped like the others).
    void Promise.allSettled([...inflight])
      .then(() =>
        Promise.all(
          [...sessions.values()].map((s) => {
            s.stop(why);
            return s.done.catch(() => undefined);
          }),
        ),
      )
      .then(() => {
        fs.rmSync(socket, { force: true });
        process.exit(process.exitCode ?? 0);
      });
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  emit(flags, { socket, pid: process.pid }, () => `serving mounts on ${socket} (pid ${process.pid}); mount with: nydus-ts mount SOURCE MOUNTPOINT --server ${socket}`);
}
