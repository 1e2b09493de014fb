/**
 * Request → reply for every FUSE request a {@link RafsFs} answers synchronously: all but INIT,
 * DESTROY and READ (lookups, attributes, links, xattrs, directory listings, statfs, access, the
 * no-reply FORGETs and the ENOSYS answers to OPEN/OPENDIR/FLUSH). Shared by the main thread and
 * the serving worker's fast path (fuse/worker.ts), so both answer exactly alike.
 */
import { Errno, type RafsFs } from "../rafs_fs.ts";
import {
  type Body,
  ENTRY_OUT_SIZE,
  type InHeader,
  Opcode,
  WRITE_OPCODES,
  attrOut,
  direntSize,
  entryOut,
  reply,
  statfsOut,
  writeDirent,
  writeEntryOut,
  xattrSizeOut,
} from "./protocol.ts";

/** What {@link answerSync} needs. */
export interface DispatchContext {
  rfs: RafsFs;
  /** Seconds the kernel may cache entries and attributes. */
  cacheSeconds: number;
  /** Writes one reply to /dev/fuse. */
  send(buf: Uint8Array): void;
  log(line: string): void;
}

/** Opcodes {@link answerSync} leaves to its caller. */
export const ASYNC_OPCODES: ReadonlySet<number> = new Set([Opcode.INIT, Opcode.DESTROY, Opcode.READ]);

/**
 * Answers (or, for FORGET and the like, consumes) one request.
 * @returns false, having sent nothing, for the opcodes in {@link ASYNC_OPCODES}
 */
export function answerSync(ctx: DispatchContext, h: InHeader, body: Body): boolean {
  if (ASYNC_OPCODES.has(h.opcode)) return false;
  const nodeId = Number(h.nodeid);
  try {
    const r = answer(ctx.rfs, h.opcode, nodeId, body, ctx.cacheSeconds);
    if (r !== undefined) ctx.send(typeof r === "number" ? reply(h.unique, r < 0 ? r : -r) : reply(h.unique, 0, r));
  } catch (e) {
    ctx.log(`nydus-ts fuse: opcode ${h.opcode} on node ${nodeId} failed, answering EIO: ${(e as Error).message}`);
    ctx.send(reply(h.unique, -Errno.EIO));
  }
  return true;
}

const EMPTY = new Uint8Array(0);

/** The payload to answer, a negative errno, or undefined for no reply at all. */
function answer(rfs: RafsFs, opcode: number, nodeId: number, body: Body, cache: number): Uint8Array | number | undefined {
  switch (opcode) {
    case Opcode.FORGET:
    case Opcode.BATCH_FORGET:
    case Opcode.INTERRUPT:
      return undefined;
    case Opcode.LOOKUP: {
      const r = rfs.lookup(nodeId, body.cstr(0));
      return typeof r === "number" ? r : entryOut(r.nodeId, r.attr, cache, cache);
    }
    case Opcode.GETATTR: {
      const r = rfs.getattr(nodeId);
      return typeof r === "number" ? r : attrOut(r, cache);
    }
    case Opcode.READLINK:
      return rfs.readlink(nodeId);
    case Opcode.OPEN:
    case Opcode.OPENDIR:
    case Opcode.FLUSH:
      // ENOSYS makes the kernel stop sending these (no_open, no_opendir, no_flush): files and
      // directories then open with KEEP_CACHE / CACHE_DIR and no handle, READ and READDIR
      // come with node ids, and RELEASE/RELEASEDIR/FLUSH never come. A read-only image needs
      // no per-open state, and a small file costs 2 round trips (LOOKUP, READ) instead of 5:
      // the /usr tree of the bench image reads 2x as fast.
      return -Errno.ENOSYS;
    case Opcode.RELEASE: // not sent once OPEN has answered ENOSYS
    case Opcode.RELEASEDIR:
    case Opcode.FSYNC:
    case Opcode.FSYNCDIR:
      return EMPTY;
    case Opcode.ACCESS: {
      const r = rfs.getattr(nodeId);
      return typeof r === "number" ? r : EMPTY;
    }
    case Opcode.STATFS:
      return statfsOut(rfs.statfs());
    case Opcode.GETXATTR: {
      const r = rfs.getxattr(nodeId, body.cstr(8), body.u32(0));
      return typeof r !== "number" || r < 0 ? r : xattrSizeOut(r);
    }
    case Opcode.LISTXATTR: {
      const r = rfs.listxattr(nodeId, body.u32(0));
      return typeof r !== "number" || r < 0 ? r : xattrSizeOut(r);
    }
    case Opcode.READDIR:
    case Opcode.READDIRPLUS:
      return readdir(rfs, nodeId, body, opcode === Opcode.READDIRPLUS, cache);
    default:
      return WRITE_OPCODES.has(opcode) ? -Errno.EROFS : -Errno.ENOSYS;
  }
}

/** READDIR / READDIRPLUS payload: as many entries from the cookie on as fit the kernel's size. */
function readdir(rfs: RafsFs, nodeId: number, body: Body, plus: boolean, cache: number): Uint8Array | number {
  const entries = rfs.readdir(nodeId, body.u64(8));
  if (typeof entries === "number") return entries;
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
  return out.subarray(0, off);
}
