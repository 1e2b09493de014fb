/**
 * A FUSE server over `/dev/fuse` with no native addon, serving a {@link RafsFs}.
 *
 * - `/dev/fuse` is opened here and util-linux `mount -i -t fuse.<type>` does the mount(2) with
 *   the fd passed as its fd 3 (`-i`: never run a mount.fuse helper).
 * - A `worker_thread` loops on a **blocking** `fs.readSync` of the fd and posts each request to
 *   the main thread. (An async read loop would pin a libuv pool thread, and the pool could then
 *   be filled by fs calls that wait on this very mount: a deadlock.)
 * - The main thread decodes and answers requests; reads are async and many may be in flight.
 *   Each reply is one `fs.writeSync` on the same fd (fds are process-wide; replies may go out of
 *   order).
 * - The server ends when the worker's read fails with ENODEV: after {@link FuseMount.unmount}
 *   or an external `umount`. `closed` then resolves.
 *
 * Caller duties: unmount before the process exits (a worker blocked in read(2) keeps the
 * process from exiting, and a dead server leaves a mount answering ENOTCONN); install any
 * SIGINT/SIGTERM handler yourself and call `unmount()` from it. Do not access the mountpoint
 * with synchronous fs calls from the serving process (the main thread answers the requests),
 * and keep async fs calls on the mount fewer than UV_THREADPOOL_SIZE if the data reader itself
 * needs the pool (local blob files do).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawn } from "node:child_process";
import { Worker } from "node:worker_threads";
import { Errno, type RafsFs } from "../rafs_fs.ts";
import {
  Body,
  ENTRY_OUT_SIZE,
  IN_HEADER_SIZE,
  InitFlag,
  OUT_HEADER_SIZE,
  Opcode,
  WRITE_OPCODES,
  attrOut,
  decodeInHeader,
  direntSize,
  entryOut,
  initOut,
  reply,
  statfsOut,
  writeDirent,
  writeEntryOut,
  xattrSizeOut,
} from "./protocol.ts";

/** Options of {@link mountFuse}. */
export interface MountFuseOptions {
  /** The mount's source (first column of /proc/mounts). @default "nydus-ts" */
  source?: string;
  /** Filesystem subtype: the mount shows as `fuse.<subtype>`. @default "nydus-ts" */
  subtype?: string;
  /** Receives one line per notable event (failed reads, unexpected errors, server end). */
  log?: (line: string) => void;
  /** Seconds the kernel may cache lookups and attributes (the image is immutable). @default 60 */
  cacheSeconds?: number;
  /** Largest READ in bytes (mount `max_read`, and max_pages of INIT). @default 1048576 */
  maxRead?: number;
  /** Kernel background requests (async reads in flight). @default 64 */
  maxBackground?: number;
}

/** A mounted filesystem. */
export interface FuseMount {
  readonly mountpoint: string;
  /** Runs `umount` (`umount -l` with lazy) and resolves once the server has ended. */
  unmount(options?: { lazy?: boolean }): Promise<void>;
  /** Resolves when the server has ended (after unmount or an external umount). */
  readonly closed: Promise<void>;
}

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const fs = require("node:fs");
const buf = Buffer.allocUnsafe(workerData.bufSize);
const go = new Int32Array(workerData.go);
parentPort.postMessage({ type: "ready" });
// Reading before mount(2) has attached the fd fails with EPERM: wait for the main thread's go (1) or stop (2).
while (Atomics.load(go, 0) === 0) Atomics.wait(go, 0, 0);
for (;;) {
  if (Atomics.load(go, 0) === 2) { parentPort.postMessage({ type: "end", code: "ENODEV", message: "not mounted" }); break; }
  let n;
  try {
    n = fs.readSync(workerData.fd, buf, 0, buf.length, null);
  } catch (e) {
    if (e.code === "EINTR" || e.code === "EAGAIN") continue;
    parentPort.postMessage({ type: "end", code: e.code, message: e.message });
    break;
  }
  if (n === 0) { parentPort.postMessage({ type: "end", code: "EOF", message: "end of file" }); break; }
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(buf.subarray(0, n));
  parentPort.postMessage(ab, [ab]);
}
`;

/** Kernel read-ahead for the mount, in KiB: a few maximum-size READs in flight. */
const READAHEAD_KB = 4096;

/**
 * Raises the mount's read-ahead (its backing device's `read_ahead_kb`, 128 KiB by default) so
 * that sequential reads arrive as READs of `maxRead` bytes, several at a time: 270 → 440 MB/s
 * for large cached files on the bench image. Found through /proc/self/mountinfo, never by a
 * stat of the mountpoint (this process serves it: a synchronous call on it would deadlock).
 * A failure only costs speed, so it is logged, not thrown.
 */
async function raiseReadahead(mountpoint: string, maxRead: number, log: (line: string) => void): Promise<void> {
  try {
    const target = path.resolve(mountpoint);
    const info = await fsp.readFile("/proc/self/mountinfo", "utf8");
    // Fields: id parent major:minor root mountpoint … (octal escapes for spaces and the like).
    const line = info.split("\n").reverse().find((l) => l.split(" ")[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target);
    const dev = line?.split(" ")[2];
    if (!dev || !/^\d+:\d+$/.test(dev)) return log(`nydus-ts fuse: cannot find ${target} in /proc/self/mountinfo; read-ahead left as is`);
    await fsp.writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(Math.max(READAHEAD_KB, Math.ceil(maxRead / 1024))));
  } catch (e) {
    log(`nydus-ts fuse: cannot raise the read-ahead of ${mountpoint}: ${(e as Error).message}`);
  }
}

/**
 * Mounts `fs` at `mountpoint` (needs root and /dev/fuse) and serves it until unmounted.
 * Resolves after the kernel's INIT has been answered, so the mount is usable at once.
 *
 * @example
 * const m = await mountFuse(new RafsFs(image, reader, { log: console.error }), "/mnt/img", { log: console.error });
 * process.once("SIGINT", () => void m.unmount());
 * await m.closed;
 */
export async function mountFuse(rfs: RafsFs, mountpoint: string, options: MountFuseOptions = {}): Promise<FuseMount> {
  const log = options.log ?? (() => {});
  const maxRead = options.maxRead ?? 0x100000;
  const cache = options.cacheSeconds ?? 60;
  const maxPages = Math.max(1, Math.min(256, Math.ceil(maxRead / 4096)));
  const fd = fs.openSync("/dev/fuse", "r+");
  let fdOpen = true;
  let ended = false;

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  let resolveInit!: () => void;
  let rejectInit!: (e: Error) => void;
  const initDone = new Promise<void>((res, rej) => {
    resolveInit = res;
    rejectInit = rej;
  });

  const send = (buf: Uint8Array): void => {
    if (!fdOpen) return;
    try {
      fs.writeSync(fd, buf);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted/aborted meanwhile; ENODEV: unmounted.
      if (code !== "ENOENT" && code !== "ENODEV") log(`nydus-ts fuse: cannot write reply: ${(e as Error).message}`);
    }
  };

  const handle = async (buf: Uint8Array): Promise<void> => {
    const h = decodeInHeader(buf);
    const body = new Body(buf.subarray(IN_HEADER_SIZE, Math.min(h.len, buf.length)));
    const nodeId = Number(h.nodeid);
    const answer = (payload?: Uint8Array): void => send(reply(h.unique, 0, payload));
    const fail = (errno: number): void => send(reply(h.unique, errno < 0 ? errno : -errno));
    try {
      switch (h.opcode) {
        case Opcode.INIT: {
          const major = body.u32(0);
          const kernelReadahead = body.u32(8);
          const kernelFlags = body.u32(12);
          if (major !== 7) {
            fail(-Errno.EPROTO);
            rejectInit(new Error(`Cannot mount: kernel FUSE protocol ${major}, want 7`));
            return;
          }
          const want =
            InitFlag.ASYNC_READ | InitFlag.BIG_WRITES | InitFlag.MAX_PAGES | InitFlag.DO_READDIRPLUS | InitFlag.READDIRPLUS_AUTO | InitFlag.PARALLEL_DIROPS | InitFlag.CACHE_SYMLINKS;
          const bg = options.maxBackground ?? 64;
          answer(
            initOut({
              maxReadahead: Math.min(kernelReadahead, maxRead),
              flags: (want & kernelFlags) >>> 0,
              maxBackground: bg,
              congestionThreshold: Math.max(1, Math.floor((bg * 3) / 4)),
              maxWrite: 0x100000,
              timeGran: 1,
              maxPages,
            }),
          );
          resolveInit();
          return;
        }
        case Opcode.FORGET:
        case Opcode.BATCH_FORGET:
        case Opcode.INTERRUPT:
          return; // no reply
        case Opcode.DESTROY:
          answer();
          return;
        case Opcode.LOOKUP: {
          const r = rfs.lookup(nodeId, body.cstr(0));
          if (typeof r === "number") return fail(r);
          return answer(entryOut(r.nodeId, r.attr, cache, cache));
        }
        case Opcode.GETATTR: {
          const r = rfs.getattr(nodeId);
          if (typeof r === "number") return fail(r);
          return answer(attrOut(r, cache));
        }
        case Opcode.READLINK: {
          const r = rfs.readlink(nodeId);
          if (typeof r === "number") return fail(r);
          return answer(r);
        }
        case Opcode.OPEN:
        case Opcode.OPENDIR:
        case Opcode.FLUSH:
          // ENOSYS makes the kernel stop sending these (no_open, no_opendir, no_flush): files and
          // directories then open with KEEP_CACHE / CACHE_DIR and no handle, READ and READDIR
          // come with node ids, and RELEASE/RELEASEDIR/FLUSH never come. A read-only image needs
          // no per-open state, and a small file costs 2 round trips (LOOKUP, READ) instead of 5:
          // the /usr tree of the bench image reads 2x as fast.
          return fail(-Errno.ENOSYS);
        case Opcode.READ: {
          const r = await rfs.read(nodeId, body.u64(8), Math.min(body.u32(16), maxRead));
          if (typeof r === "number") return fail(r);
          return answer(r);
        }
        case Opcode.RELEASE: // not sent once OPEN has answered ENOSYS
        case Opcode.RELEASEDIR:
          return answer();
        case Opcode.FSYNC:
        case Opcode.FSYNCDIR:
          return answer();
        case Opcode.ACCESS: {
          const r = rfs.getattr(nodeId);
          return typeof r === "number" ? fail(r) : answer();
        }
        case Opcode.STATFS:
          return answer(statfsOut(rfs.statfs()));
        case Opcode.GETXATTR: {
          const size = body.u32(0);
          const r = rfs.getxattr(nodeId, body.cstr(8), size);
          if (typeof r !== "number") return answer(r);
          if (r < 0) return fail(r);
          return answer(xattrSizeOut(r));
        }
        case Opcode.LISTXATTR: {
          const r = rfs.listxattr(nodeId, body.u32(0));
          if (typeof r !== "number") return answer(r);
          if (r < 0) return fail(r);
          return answer(xattrSizeOut(r));
        }
        case Opcode.READDIR:
        case Opcode.READDIRPLUS: {
          const plus = h.opcode === Opcode.READDIRPLUS;
          const entries = rfs.readdir(nodeId, body.u64(8));
          if (typeof entries === "number") return fail(entries);
          const size = body.u32(16);
          const out = new Uint8Array(size);
          const v = new DataView(out.buffer);
          let off = 0;
          for (const e of entries) {
            const need = (plus ? ENTRY_OUT_SIZE : 0) + direntSize(e.name.length);
            if (off + need > size) break;
            if (plus) {
              const ent = rfs.entryOf(e);
              if (ent) writeEntryOut(v, off, ent.nodeId, ent.attr, cache, cache);
              off += ENTRY_OUT_SIZE;
            }
            off += writeDirent(out, v, off, e.nodeId, e.next, e.type, e.name);
          }
          return answer(out.subarray(0, off));
        }
        default:
          return fail(WRITE_OPCODES.has(h.opcode) ? -Errno.EROFS : -Errno.ENOSYS);
      }
    } catch (e) {
      log(`nydus-ts fuse: opcode ${h.opcode} on node ${nodeId} failed, answering EIO: ${(e as Error).message}`);
      fail(-Errno.EIO);
    }
  };

  initDone.catch(() => {});
  const goBuf = new SharedArrayBuffer(4);
  const go = new Int32Array(goBuf);
  const start = (value: 1 | 2): void => {
    Atomics.store(go, 0, value);
    Atomics.notify(go, 0);
  };
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, go: goBuf, bufSize: maxRead + 0x10000 + OUT_HEADER_SIZE } });
  const ready = new Promise<void>((res, rej) => {
    worker.once("message", () => res());
    worker.once("error", rej);
  });
  worker.on("message", (m: unknown) => {
    if (m instanceof ArrayBuffer) {
      handle(new Uint8Array(m)).catch((e: Error) => log(`nydus-ts fuse: dropped a malformed request: ${e.message}`));
      return;
    }
    const msg = m as { type: string; code?: string; message?: string };
    if (msg.type === "end") {
      ended = true;
      if (msg.code !== "ENODEV") log(`nydus-ts fuse: server for "${mountpoint}" ended: ${msg.code} ${msg.message ?? ""}`.trimEnd());
      rejectInit(new Error(`Cannot mount "${mountpoint}": /dev/fuse read failed with ${msg.code}`));
    }
  });
  worker.on("error", (e) => log(`nydus-ts fuse: worker failed: ${e.message}`));
  worker.on("exit", () => {
    ended = true;
    if (fdOpen) {
      fdOpen = false;
      fs.closeSync(fd);
    }
    rejectInit(new Error(`Cannot mount "${mountpoint}": the FUSE server ended`));
    resolveClosed();
  });

  try {
    await ready;
    const opts = `fd=3,rootmode=40000,user_id=0,group_id=0,ro,allow_other,default_permissions,max_read=${maxRead}`;
    let mounted = false;
    try {
      await run("mount", ["-i", "-t", `fuse.${options.subtype ?? "nydus-ts"}`, options.source ?? "nydus-ts", mountpoint, "-o", opts], [fd]);
      mounted = true;
    } finally {
      start(mounted ? 1 : 2);
    }
    await initDone;
    await raiseReadahead(mountpoint, maxRead, log);
  } catch (e) {
    // Mounted but INIT failed: unmounting makes the worker's read fail with ENODEV.
    if (!ended) await run("umount", [mountpoint], []).catch(() => {});
    await closed;
    throw e;
  }

  return {
    mountpoint,
    closed,
    async unmount(o: { lazy?: boolean } = {}): Promise<void> {
      if (!ended) await run("umount", o.lazy ? ["-l", mountpoint] : [mountpoint], []);
      await closed;
    },
  };
}

/** Runs a program; rejects with its stderr when it exits non-zero. Extra fds become fd 3, 4… */
function run(cmd: string, args: string[], fds: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe", ...fds] });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`Cannot run ${cmd} ${args.join(" ")}: exit ${code}: ${err.trim()}`));
    });
  });
}
