/**
 * The FUSE serving thread (started by server.ts): loops on a blocking `fs.readSync` of
 * /dev/fuse and posts each request to the main thread, except, when given a fast path, the
 * requests it can answer itself:
 *
 * - every request {@link answerSync} answers (lookups, attributes, listings, xattrs…), from its
 *   own {@link RafsFs} over its own copy of the image;
 * - READs whose chunks are all marked ready in the shared readiness bitmaps: read with
 *   `fs.readSync` from the cache's `.blob.data` files straight into one reply buffer (header at
 *   0, payload at 16) and written with one `fs.writeSync`.
 *
 * Everything else (INIT, DESTROY, READs of chunks not yet cached or that fail here) goes to the
 * main thread, whose reader fetches, verifies and persists. Nothing here waits on the main
 * thread or on libuv's pool, so a busy main thread never stalls cached reads.
 */
import fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { openRafs } from "../../rafs/open.ts";
import { CachedFileReader } from "../../storage/sync_reader.ts";
import { RafsFs } from "../rafs_fs.ts";
import { answerSync, type DispatchContext } from "./dispatch.ts";
import { Body, IN_HEADER_SIZE, OUT_HEADER_SIZE, Opcode, decodeInHeader, writeOutHeader } from "./protocol.ts";
import { Stat, type ServeFast, type ToWorker, type WorkerData } from "./worker_data.ts";
import type { RafsImage } from "../../rafs/model.ts";

const data = workerData as WorkerData;
const port = parentPort!;
const log = (line: string): void => port.postMessage({ type: "log", line });
const stats = new BigInt64Array(data.stats);
const count = (which: Stat, n = 1): void => void Atomics.add(stats, which, BigInt(n));

const send = (buf: Uint8Array): void => {
  try {
    fs.writeSync(data.fd, buf);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOENT: the request was interrupted/aborted meanwhile; ENODEV: unmounted.
    if (code !== "ENOENT" && code !== "ENODEV") log(`nydus-ts fuse: cannot write reply: ${(e as Error).message}`);
  }
};

let ctx: DispatchContext | undefined;
let reader: CachedFileReader | undefined;
let out: Buffer | undefined;
/** This thread's copy of the image, decoded as soon as the main thread sends the bootstrap. */
let image: RafsImage | undefined;

/** Builds the fast path (see the module comment) over the image sent before. */
function setUp(fast: ServeFast): void {
  if (!image) throw new Error("the fast path needs the image: send it before serving");
  if (fast.ready) {
    reader = new CachedFileReader(image, fast.cacheDir, { ready: fast.ready, hits: fast.hits });
    out = Buffer.allocUnsafe(OUT_HEADER_SIZE + data.maxRead);
  }
  const rfs = new RafsFs(image, reader ?? { read: () => Promise.reject(new Error("reads are served by the main thread")) }, { log });
  ctx = { rfs, cacheSeconds: data.cacheSeconds, send, log };
}

/** Answers a READ from the cache; false (nothing sent) when the main thread must do it. */
function readFast(c: DispatchContext, unique: bigint, nodeId: number, body: Body): boolean {
  if (!reader || !out) return false;
  const inode = c.rfs.inode(nodeId);
  if (typeof inode === "number" || inode.kind !== "reg") return false;
  const offset = body.u64(8);
  const length = Math.max(0, Math.min(body.u32(16), data.maxRead, inode.size - offset));
  let n: number;
  try {
    n = reader.readInto(inode, offset, out.subarray(OUT_HEADER_SIZE, OUT_HEADER_SIZE + length));
  } catch {
    return false; // the main thread reads it again and reports the error
  }
  if (n < 0) return false;
  writeOutHeader(out, OUT_HEADER_SIZE + n, 0, unique);
  // Counted before the reply goes out: once the kernel has it, the reader may finish and look at
  // the stats before this thread runs again.
  count(Stat.fastReads);
  count(Stat.fastReadBytes, n);
  send(out.subarray(0, OUT_HEADER_SIZE + n));
  return true;
}

/** Serves one request here when the fast path can; false to forward it. */
function serve(c: DispatchContext, req: Uint8Array): boolean {
  try {
    const h = decodeInHeader(req);
    const body = new Body(req.subarray(IN_HEADER_SIZE, Math.min(h.len, req.length)));
    const done = h.opcode === Opcode.READ ? readFast(c, h.unique, Number(h.nodeid), body) : answerSync(c, h, body);
    if (done && h.opcode !== Opcode.READ) count(Stat.answered);
    return done;
  } catch {
    return false; // malformed: the main thread logs and drops it
  }
}

/** Posts a request to the main thread (a copy: `buf` is reused), with the file's path for READs. */
function forward(req: Uint8Array): void {
  const ab = new ArrayBuffer(req.length);
  new Uint8Array(ab).set(req);
  count(Stat.forwarded);
  if (ctx && req.length >= IN_HEADER_SIZE) {
    const h = decodeInHeader(req);
    if (h.opcode === Opcode.READ) {
      const nodeId = Number(h.nodeid);
      port.postMessage({ type: "read", buf: ab, nodeId, path: ctx.rfs.pathOf(nodeId) }, [ab]);
      return;
    }
  }
  port.postMessage(ab, [ab]);
}

/** Waits for the main thread's go, then serves /dev/fuse until it fails (ENODEV once unmounted). */
function serveLoop(): void {
  const buf = Buffer.allocUnsafe(data.bufSize);
  const go = new Int32Array(data.go);
  // Reading before mount(2) has attached the fd fails with EPERM: wait for the main thread's go (1) or stop (2).
  while (Atomics.load(go, 0) === 0) Atomics.wait(go, 0, 0);
  for (;;) {
    if (Atomics.load(go, 0) === 2) {
      port.postMessage({ type: "end", code: "ENODEV", message: "not mounted" });
      break;
    }
    let n: number;
    try {
      n = fs.readSync(data.fd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EINTR" || code === "EAGAIN") continue;
      port.postMessage({ type: "end", code, message: (e as Error).message });
      break;
    }
    if (n === 0) {
      port.postMessage({ type: "end", code: "EOF", message: "end of file" });
      break;
    }
    const req = buf.subarray(0, n);
    if (!ctx || !serve(ctx, req)) forward(req);
  }
  reader?.close();
}

/** `image` (decode the bootstrap now), then `serve` (set up the fast path, say ready, serve). */
function onMessage(m: ToWorker): void {
  if (m.type === "image") {
    image = openRafs(m.bootstrap);
    return;
  }
  // No message comes after `serve`: stop listening, so the thread can end with the loop.
  port.off("message", onMessage);
  try {
    if (m.fast) setUp(m.fast);
  } catch (e) {
    port.postMessage({ type: "log", line: `nydus-ts fuse: cannot set up the serving thread: ${(e as Error).message}` });
    throw e;
  }
  port.postMessage({ type: "ready" });
  serveLoop();
}

port.on("message", onMessage);
port.postMessage({ type: "loaded" });
