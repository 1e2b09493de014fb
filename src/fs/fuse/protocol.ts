/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h), as far as a read-only server needs it:
 * opcodes, the in/out headers, and encoders of the reply structs. All little-endian. We answer
 * INIT with protocol 7.31 (64-byte fuse_init_out), which current kernels (7.45) accept.
 */
import type { FsAttr } from "../rafs_fs.ts";

export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 31;
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  COPY_FILE_RANGE: 47,
  TMPFILE: 51,
} as const;

/** Opcodes that would modify the filesystem: answered -EROFS. */
export const WRITE_OPCODES: ReadonlySet<number> = new Set([
  Opcode.SETATTR,
  Opcode.SYMLINK,
  Opcode.MKNOD,
  Opcode.MKDIR,
  Opcode.UNLINK,
  Opcode.RMDIR,
  Opcode.RENAME,
  Opcode.LINK,
  Opcode.WRITE,
  Opcode.SETXATTR,
  Opcode.REMOVEXATTR,
  Opcode.CREATE,
  Opcode.FALLOCATE,
  Opcode.RENAME2,
  Opcode.COPY_FILE_RANGE,
  Opcode.TMPFILE,
]);

/** fuse_init_out.flags bits we use. */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
} as const;

/** fuse_in_header. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(buf: Uint8Array): InHeader {
  if (buf.length < IN_HEADER_SIZE) throw new RangeError(`Cannot decode fuse_in_header: ${buf.length} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    len: v.getUint32(0, true),
    opcode: v.getUint32(4, true),
    unique: v.getBigUint64(8, true),
    nodeid: v.getBigUint64(16, true),
    uid: v.getUint32(24, true),
    gid: v.getUint32(28, true),
    pid: v.getUint32(32, true),
  };
}

/** Reads request body fields (little-endian) at offsets relative to the body. */
export class Body {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u32(off: number): number {
    if (off + 4 > this.bytes.length) throw new RangeError(`Cannot read u32 at ${off}: body is ${this.bytes.length} bytes`);
    return this.view.getUint32(off, true);
  }
  u64(off: number): number {
    if (off + 8 > this.bytes.length) throw new RangeError(`Cannot read u64 at ${off}: body is ${this.bytes.length} bytes`);
    return Number(this.view.getBigUint64(off, true));
  }
  /** A NUL-terminated name starting at `off` (raw bytes, without the NUL). */
  cstr(off: number): Uint8Array {
    const end = this.bytes.indexOf(0, off);
    return this.bytes.subarray(off, end < 0 ? this.bytes.length : end);
  }
}

/** Writes fuse_out_header at the start of `out` (whose payload, if any, follows at 16). */
export function writeOutHeader(out: Uint8Array, len: number, error: number, unique: bigint): void {
  const v = new DataView(out.buffer, out.byteOffset, OUT_HEADER_SIZE);
  v.setUint32(0, len, true);
  v.setInt32(4, error, true);
  v.setBigUint64(8, unique, true);
}

/** A reply: out header plus the given payload, as one buffer (one write per reply). */
export function reply(unique: bigint, error: number, payload?: Uint8Array): Uint8Array {
  const len = OUT_HEADER_SIZE + (payload?.length ?? 0);
  const out = new Uint8Array(len);
  writeOutHeader(out, len, error, unique);
  if (payload) out.set(payload, OUT_HEADER_SIZE);
  return out;
}

/** fuse_attr (88 bytes) at `off`; atime and ctime are the mtime. */
export function writeAttr(v: DataView, off: number, a: FsAttr): void {
  v.setBigUint64(off + 0, BigInt(a.ino), true);
  v.setBigUint64(off + 8, BigInt(a.size), true);
  v.setBigUint64(off + 16, BigInt(a.blocks), true);
  const t = BigInt.asUintN(64, BigInt(a.mtime));
  v.setBigUint64(off + 24, t, true);
  v.setBigUint64(off + 32, t, true);
  v.setBigUint64(off + 40, t, true);
  v.setUint32(off + 48, a.mtimeNsec, true);
  v.setUint32(off + 52, a.mtimeNsec, true);
  v.setUint32(off + 56, a.mtimeNsec, true);
  v.setUint32(off + 60, a.mode, true);
  v.setUint32(off + 64, a.nlink, true);
  v.setUint32(off + 68, a.uid, true);
  v.setUint32(off + 72, a.gid, true);
  v.setUint32(off + 76, a.rdev, true);
  v.setUint32(off + 80, a.blksize, true);
  v.setUint32(off + 84, 0, true);
}

/** Splits seconds (may be fractional) into the u64 seconds + u32 nanoseconds FUSE wants. */
function validity(seconds: number): [bigint, number] {
  const s = Math.floor(seconds);
  return [BigInt(s), Math.round((seconds - s) * 1e9)];
}

/** fuse_entry_out (128 bytes) at `off`. */
export function writeEntryOut(v: DataView, off: number, nodeId: number, a: FsAttr, entryValid: number, attrValid: number): void {
  const [es, en] = validity(entryValid);
  const [as, an] = validity(attrValid);
  v.setBigUint64(off + 0, BigInt(nodeId), true);
  v.setBigUint64(off + 8, 0n, true); // generation
  v.setBigUint64(off + 16, es, true);
  v.setBigUint64(off + 24, as, true);
  v.setUint32(off + 32, en, true);
  v.setUint32(off + 36, an, true);
  writeAttr(v, off + 40, a);
}

export function entryOut(nodeId: number, a: FsAttr, entryValid: number, attrValid: number): Uint8Array {
  const b = new Uint8Array(ENTRY_OUT_SIZE);
  writeEntryOut(new DataView(b.buffer), 0, nodeId, a, entryValid, attrValid);
  return b;
}

/** fuse_attr_out (104 bytes). */
export function attrOut(a: FsAttr, attrValid: number): Uint8Array {
  const b = new Uint8Array(ATTR_OUT_SIZE);
  const v = new DataView(b.buffer);
  const [s, n] = validity(attrValid);
  v.setBigUint64(0, s, true);
  v.setUint32(8, n, true);
  writeAttr(v, 16, a);
  return b;
}

/** fuse_getxattr_out (8 bytes): the size of a value or name list, for size probes. */
export function xattrSizeOut(size: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, size, true);
  return b;
}

/** fuse_statfs_out: fuse_kstatfs (80 bytes). */
export function statfsOut(s: { blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number; frsize: number }): Uint8Array {
  const b = new Uint8Array(80);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(s.blocks), true);
  v.setBigUint64(8, BigInt(s.bfree), true);
  v.setBigUint64(16, BigInt(s.bavail), true);
  v.setBigUint64(24, BigInt(s.files), true);
  v.setBigUint64(32, BigInt(s.ffree), true);
  v.setUint32(40, s.bsize, true);
  v.setUint32(44, s.namelen, true);
  v.setUint32(48, s.frsize, true);
  return b;
}

/** fuse_init_out for protocol 7.31 (64 bytes). */
export function initOut(o: { maxReadahead: number; flags: number; maxBackground: number; congestionThreshold: number; maxWrite: number; timeGran: number; maxPages: number }): Uint8Array {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  v.setUint32(0, FUSE_KERNEL_VERSION, true);
  v.setUint32(4, FUSE_KERNEL_MINOR_VERSION, true);
  v.setUint32(8, o.maxReadahead, true);
  v.setUint32(12, o.flags >>> 0, true);
  v.setUint16(16, o.maxBackground, true);
  v.setUint16(18, o.congestionThreshold, true);
  v.setUint32(20, o.maxWrite, true);
  v.setUint32(24, o.timeGran, true);
  v.setUint16(28, o.maxPages, true);
  return b;
}

/** Size of a fuse_dirent with a name of `nameLen` bytes, padded to 8. */
export function direntSize(nameLen: number): number {
  return (24 + nameLen + 7) & ~7;
}

/** fuse_dirent at `off`; returns the padded size written. */
export function writeDirent(out: Uint8Array, v: DataView, off: number, ino: number, next: number, type: number, name: Uint8Array): number {
  v.setBigUint64(off, BigInt(ino), true);
  v.setBigUint64(off + 8, BigInt(next), true);
  v.setUint32(off + 16, name.length, true);
  v.setUint32(off + 20, type, true);
  out.set(name, off + 24);
  const size = direntSize(name.length);
  out.fill(0, off + 24 + name.length, off + size);
  return size;
}
