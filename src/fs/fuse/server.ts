/**
 * A FUSE server over `/dev/fuse` with no native addon, serving a {@link RafsFs}.
 *
 * - `/dev/fuse` is opened here and util-linux `mount -i -t fuse.<type>` does the mount(2) with
 *   the fd passed as its fd 3 (`-i`: never run a mount.fuse helper).
 * - A `worker_thread` (fuse/worker.ts) loops on a **blocking** `fs.readSync` of the fd and posts
 *   each request to the main thread. (An async read loop would pin a libuv pool thread, and the
 *   pool could then be filled by fs calls that wait on this very mount: a deadlock.)
 * - With {@link MountFuseOptions.fastPath} the worker answers metadata requests itself, and
 *   READs whose chunks the blob cache holds (synchronous reads of the cache files); the main
 *   thread then sees only INIT, DESTROY and READs that need a fetch (see worker.ts).
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
import path from "node:path";
import { spawn } from "node:child_process";
import { Errno, type RafsFs } from "../rafs_fs.ts";
import { answerSync } from "./dispatch.ts";
import { Body, IN_HEADER_SIZE, InitFlag, OUT_HEADER_SIZE, Opcode, decodeInHeader, initOut, reply } from "./protocol.ts";
import { startFuseServer, type FuseServer } from "./start.ts";
import { Stat, type ToWorker } from "./worker_data.ts";

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
  /**
   * Lets the serving thread answer by itself what it can (see worker.ts): metadata from its own
   * copy of the image, and READs of cached chunks from the blob cache's files. Without it every
   * request goes to the main thread. The fs passed to {@link mountFuse} must serve the same image
   * (and, for READs, read through the cache that owns `cacheDir`).
   */
  fastPath?: {
    /** The image's bootstrap bytes (the thread opens its own RafsImage from them). */
    bootstrap: Uint8Array;
    /** Directory of the BlobCache holding `<blobId>.blob.data` files. */
    cacheDir: string;
    /**
     * Readiness bitmaps by blob index (storage's `shareReadiness`). Omit them to keep every READ
     * on the main thread (e.g. when the cache re-verifies chunks on each first hit).
     */
    ready?: SharedArrayBuffer[];
    /** Cache-hit counters by blob index (storage's `shareReadiness`), bumped per chunk served. */
    hits?: SharedArrayBuffer;
  };
  /**
   * A serving thread from {@link startFuseServer} (same `maxRead` and `cacheSeconds`), instead
   * of starting one now. It is used up by this mount, or stopped when the mount fails.
   */
  server?: FuseServer;
}

/** Request counters of a mount. */
export interface FuseStats {
  /** Requests other than READ answered by the serving thread (fast path). */
  answeredInWorker: number;
  /** READs answered by the serving thread from the cache files, and their bytes. */
  fastReads: number;
  fastReadBytes: number;
  /** Requests handed to the main thread. */
  forwarded: number;
}

/** A mounted filesystem. */
export interface FuseMount {
  readonly mountpoint: string;
  /** Runs `umount` (`umount -l` with lazy) and resolves once the server has ended. */
  unmount(options?: { lazy?: boolean }): Promise<void>;
  /** Resolves when the server has ended (after unmount or an external umount). */
  readonly closed: Promise<void>;
  /** Requests answered so far, by thread. */
  stats(): FuseStats;
}

/** Kernel read-ahead for the mount, in KiB: a few maximum-size READs in flight. */
const READAHEAD_KB = 4096;

/**
 * Raises the mount's read-ahead (its backing device's `read_ahead_kb`, 128 KiB by default) so
 * that sequential reads arrive as READs of `maxRead` bytes, several at a time: 270 → 440 MB/s
 * for large cached files on the bench image. Found through /proc/self/mountinfo, never by a
 * stat of the mountpoint (this process serves it: a synchronous call *on the mount* would deadlock).
 * A failure only costs speed, so it is logged, not thrown.
 */
function raiseReadahead(mountpoint: string, maxRead: number, log: (line: string) => void): void {
  try {
    const target = path.resolve(mountpoint);
    // Synchronous on purpose: neither file is on the mount, and on libuv's pool these two calls
    // would queue behind a starting prefetch's writes and syncs (up to ~30 ms).
    const info = fs.readFileSync("/proc/self/mountinfo", "utf8");
    // Fields: id parent major:minor root mountpoint … (octal escapes for spaces and the like).
    const line = info.split("\n").reverse().find((l) => l.split(" ")[4]?.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target);
    const dev = line?.split(" ")[2];
    if (!dev || !/^\d+:\d+$/.test(dev)) return log(`nydus-ts fuse: cannot find ${target} in /proc/self/mountinfo; read-ahead left as is`);
    fs.writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(Math.max(READAHEAD_KB, Math.ceil(maxRead / 1024))));
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
  const server = options.server ?? startFuseServer({ maxRead: options.maxRead, cacheSeconds: options.cacheSeconds });
  const { fd, worker, maxRead, go, counters } = server.parts;
  if (server.parts.used) throw new Error("Cannot mount: this FUSE server already served a mount");
  server.parts.used = true;
  worker.ref(); // from now on the mount keeps the process alive
  const cache = server.parts.cacheSeconds;
  const maxPages = Math.max(1, Math.min(256, Math.ceil(maxRead / 4096)));
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

  const meta = { rfs, cacheSeconds: cache, send, log };
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
        case Opcode.DESTROY:
          answer();
          return;
        case Opcode.READ: {
          const r = await rfs.read(nodeId, body.u64(8), Math.min(body.u32(16), maxRead));
          if (typeof r === "number") return fail(r);
          return answer(r);
        }
        default:
          answerSync(meta, h, body);
      }
    } catch (e) {
      log(`nydus-ts fuse: opcode ${h.opcode} on node ${nodeId} failed, answering EIO: ${(e as Error).message}`);
      fail(-Errno.EIO);
    }
  };

  initDone.catch(() => {});
  const start = (value: 1 | 2): void => {
    Atomics.store(go, 0, value);
    Atomics.notify(go, 0);
  };
  const ready = new Promise<void>((res, rej) => {
    worker.once("error", rej);
    worker.on("message", (m: { type?: string }) => {
      if (m.type === "ready") res();
    });
  });
  const dispatch = (buf: ArrayBuffer): void => {
    handle(new Uint8Array(buf)).catch((e: Error) => log(`nydus-ts fuse: dropped a malformed request: ${e.message}`));
  };
  worker.on("message", (m: unknown) => {
    if (m instanceof ArrayBuffer) return dispatch(m);
    const msg = m as { type: string; code?: string; message?: string; line?: string; buf?: ArrayBuffer; nodeId?: number; path?: string };
    if (msg.type === "read") {
      rfs.notePath(msg.nodeId!, msg.path!);
      return dispatch(msg.buf!);
    }
    if (msg.type === "log") return log(msg.line!);
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
    await server.parts.loaded;
    const fast = options.fastPath;
    if (fast) server.preload(fast.bootstrap); // no-op when preloaded
    worker.postMessage({ type: "serve", fast: fast ? { cacheDir: fast.cacheDir, ready: fast.ready, hits: fast.hits } : undefined } satisfies ToWorker);
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
    raiseReadahead(mountpoint, maxRead, log);
  } catch (e) {
    // Mounted but INIT failed: unmounting makes the worker's read fail with ENODEV.
    if (!ended) await run("umount", [mountpoint], []).catch(() => {});
    if (!ended) start(2);
    await closed;
    throw e;
  }

  const stat = (i: Stat): number => Number(Atomics.load(counters, i));
  return {
    mountpoint,
    closed,
    stats: () => ({
      answeredInWorker: stat(Stat.answered),
      fastReads: stat(Stat.fastReads),
      fastReadBytes: stat(Stat.fastReadBytes),
      forwarded: stat(Stat.forwarded),
    }),
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
