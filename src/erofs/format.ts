/**
 * EROFS on-disk structures as RAFS v6 uses them, one codec pair per struct.
 *
 * Every constant and field mirrors `include/erofs_fs.h` (erofs-utils) and
 * `rafs/src/metadata/layout/v6.rs` (nydus); section numbers refer to
 * `shared/spec/rafs-format.md`. Decoders are purely structural and throw
 * {@link FormatError}; the semantic rules a RAFS reader enforces live in
 * `validate*` functions so that tools can still show a slightly-off image.
 */
import { StructReader, StructWriter, alignUp } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";
import type { FileKind } from "../rafs/model.ts";

/** Block size of RAFS v6 images (4 KiB; tarfs uses 512). §2.8 */
export const EROFS_BLOCK_SIZE = 4096;
/** Byte offset of the superblock. */
export const EROFS_SUPER_OFFSET = 1024;
/** Size of the superblock RAFS v6 writes (erofs_fs.h grows it to 144 only with ext slots). */
export const EROFS_SUPER_SIZE = 128;
/** Superblock magic. */
export const EROFS_MAGIC = 0xe0f5e1e2;
/** s_feature_compat bit marking a RAFS v6 image. */
export const EROFS_COMPAT_RAFS_V6 = 0x4000_0000;
/** s_feature_incompat CHUNKED_FILE. */
export const EROFS_INCOMPAT_CHUNKED_FILE = 0x4;
/** s_feature_incompat DEVICE_TABLE. */
export const EROFS_INCOMPAT_DEVICE_TABLE = 0x8;
/** Inode slot size: nid unit. */
export const EROFS_INODE_SLOT = 32;
/** Compact inode size. */
export const EROFS_INODE_COMPACT_SIZE = 32;
/** Extended inode size. */
export const EROFS_INODE_EXTENDED_SIZE = 64;
/** Device slot size and the slot offset unit (s_devt_slotoff * 128). */
export const EROFS_DEVICE_SLOT_SIZE = 128;
/** Dirent size. */
export const EROFS_DIRENT_SIZE = 12;
/** Chunk index entry (RafsV6InodeChunkAddr) size. */
export const EROFS_CHUNK_ADDR_SIZE = 8;
/** Xattr ibody header size. */
export const EROFS_XATTR_IBODY_HEADER_SIZE = 12;
/** Maximum file name length. */
export const EROFS_NAME_LEN = 255;

/** Data layouts (bits 1..3 of i_format). */
export const DataLayout = { FlatPlain: 0, FlatInline: 2, ChunkBased: 4 } as const;
export type DataLayoutId = (typeof DataLayout)[keyof typeof DataLayout];
/** Chunk-format bit in i_u of chunk-based inodes: chunk indexes (8-byte entries). */
export const EROFS_CHUNK_FORMAT_INDEXES = 0x20;
/** Mask of log2(chunk size) - 12 in i_u. */
export const EROFS_CHUNK_FORMAT_BLKBITS_MASK = 0x1f;

/** Dirent file types. §2.8 */
export const FileType: Record<FileKind, number> = { reg: 1, dir: 2, chr: 3, blk: 4, fifo: 5, sock: 6, symlink: 7 };
const KIND_BY_FILE_TYPE: (FileKind | undefined)[] = [undefined, "reg", "dir", "chr", "blk", "fifo", "sock", "symlink"];
/** Kind for a dirent file type; undefined for 0 (unknown) or out of range. */
export function kindFromFileType(t: number): FileKind | undefined {
  return KIND_BY_FILE_TYPE[t];
}

/** Xattr name prefixes by name index, in upstream's prefix-matching order. §3.8 */
export const XATTR_PREFIXES: readonly { index: number; prefix: string }[] = [
  { index: 1, prefix: "user." },
  { index: 2, prefix: "system.posix_acl_access" },
  { index: 3, prefix: "system.posix_acl_default" },
  { index: 4, prefix: "trusted." },
  { index: 6, prefix: "security." },
];

// ---------------------------------------------------------------------------
// Superblock (128 bytes at 1024)

export interface SuperBlock {
  magic: number;
  checksum: number;
  featureCompat: number;
  blkszbits: number;
  extslots: number;
  rootNid: number;
  inos: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  uuid: Uint8Array;
  volumeName: Uint8Array;
  featureIncompat: number;
  /** s_u: available compression algorithms / lz4 max distance (0 in RAFS). */
  u: number;
  extraDevices: number;
  devtSlotoff: number;
  reserved: Uint8Array;
}

/** Decodes the superblock from its 128 bytes (which sit at absolute offset 1024). */
export function decodeSuperBlock(bytes: Uint8Array, baseOffset = EROFS_SUPER_OFFSET): SuperBlock {
  const r = new StructReader("ErofsSuperBlock", bytes, baseOffset, EROFS_SUPER_SIZE);
  return {
    magic: r.u32("s_magic", 0),
    checksum: r.u32("s_checksum", 4),
    featureCompat: r.u32("s_feature_compat", 8),
    blkszbits: r.u8("s_blkszbits", 12),
    extslots: r.u8("s_extslots", 13),
    rootNid: r.u16("s_root_nid", 14),
    inos: r.u64("s_inos", 16),
    buildTime: r.u64("s_build_time", 24),
    buildTimeNsec: r.u32("s_build_time_nsec", 32),
    blocks: r.u32("s_blocks", 36),
    metaBlkaddr: r.u32("s_meta_blkaddr", 40),
    xattrBlkaddr: r.u32("s_xattr_blkaddr", 44),
    uuid: r.slice("s_uuid", 48, 16).slice(),
    volumeName: r.slice("s_volume_name", 64, 16).slice(),
    featureIncompat: r.u32("s_feature_incompat", 80),
    u: r.u16("s_u", 84),
    extraDevices: r.u16("s_extra_devices", 86),
    devtSlotoff: r.u16("s_devt_slotoff", 88),
    reserved: r.slice("s_reserved", 90, 38).slice(),
  };
}

/** Encodes the superblock into 128 bytes. */
export function encodeSuperBlock(sb: SuperBlock, into?: Uint8Array): Uint8Array {
  const w = new StructWriter(EROFS_SUPER_SIZE, into);
  return w
    .u32(0, sb.magic)
    .u32(4, sb.checksum)
    .u32(8, sb.featureCompat)
    .u8(12, sb.blkszbits)
    .u8(13, sb.extslots)
    .u16(14, sb.rootNid)
    .u64(16, sb.inos)
    .u64(24, sb.buildTime)
    .u32(32, sb.buildTimeNsec)
    .u32(36, sb.blocks)
    .u32(40, sb.metaBlkaddr)
    .u32(44, sb.xattrBlkaddr)
    .set(48, sb.uuid.subarray(0, 16))
    .set(64, sb.volumeName.subarray(0, 16))
    .u32(80, sb.featureIncompat)
    .u16(84, sb.u)
    .u16(86, sb.extraDevices)
    .u16(88, sb.devtSlotoff)
    .set(90, sb.reserved.subarray(0, 38)).bytes;
}

/** A superblock as the RAFS v6 builder writes it. */
export function rafsSuperBlock(fields: { inos: number; blocks: number; metaBlkaddr: number; extraDevices: number }): SuperBlock {
  return {
    magic: EROFS_MAGIC,
    checksum: 0,
    featureCompat: EROFS_COMPAT_RAFS_V6,
    blkszbits: 12,
    extslots: 0,
    rootNid: 128,
    inos: fields.inos,
    buildTime: 0,
    buildTimeNsec: 0,
    blocks: fields.blocks,
    metaBlkaddr: fields.metaBlkaddr,
    xattrBlkaddr: 0,
    uuid: new Uint8Array(16),
    volumeName: new Uint8Array(16),
    featureIncompat: EROFS_INCOMPAT_CHUNKED_FILE | EROFS_INCOMPAT_DEVICE_TABLE,
    u: 0,
    extraDevices: fields.extraDevices,
    devtSlotoff: (EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE + 256) / EROFS_DEVICE_SLOT_SIZE,
    reserved: new Uint8Array(38),
  };
}

/** Upstream nydusd's superblock rules (spec §3.2); throws FormatError on the first violation. */
export function validateRafsSuperBlock(sb: SuperBlock, fileSize: number): void {
  const at = (off: number) => EROFS_SUPER_OFFSET + off;
  const fail = (field: string, off: number, detail: string): never => {
    throw new FormatError("RafsV6SuperBlock", field, at(off), detail);
  };
  if (sb.magic !== EROFS_MAGIC) fail("s_magic", 0, `expected 0x${EROFS_MAGIC.toString(16)}, found 0x${sb.magic.toString(16)}`);
  if (sb.checksum !== 0) fail("s_checksum", 4, `must be 0, found ${sb.checksum}`);
  if ((sb.featureCompat & EROFS_COMPAT_RAFS_V6) === 0) fail("s_feature_compat", 8, `RAFS_V6 bit 0x40000000 missing in 0x${sb.featureCompat.toString(16)}`);
  if (sb.blkszbits !== 12 && sb.blkszbits !== 9) fail("s_blkszbits", 12, `must be 12 or 9, found ${sb.blkszbits}`);
  if (sb.extslots !== 0) fail("s_extslots", 13, `must be 0, found ${sb.extslots}`);
  if (sb.inos === 0) fail("s_inos", 16, "must not be 0");
  if (sb.u !== 0) fail("s_u", 84, `must be 0, found ${sb.u}`);
  if (sb.xattrBlkaddr !== 0) fail("s_xattr_blkaddr", 44, `shared xattrs are not supported, found ${sb.xattrBlkaddr}`);
  if (sb.featureIncompat !== (EROFS_INCOMPAT_CHUNKED_FILE | EROFS_INCOMPAT_DEVICE_TABLE)) {
    fail("s_feature_incompat", 80, `must be 0xc, found 0x${sb.featureIncompat.toString(16)}`);
  }
  if (sb.devtSlotoff * EROFS_DEVICE_SLOT_SIZE !== 1408) fail("s_devt_slotoff", 88, `must be 11, found ${sb.devtSlotoff}`);
  const bs = 1 << sb.blkszbits;
  if (fileSize < 4096 || fileSize % bs !== 0) {
    throw new FormatError("RafsV6SuperBlock", "image_size", 0, `${fileSize} bytes is not a positive multiple of the ${bs}-byte block size`);
  }
  if (sb.metaBlkaddr * bs > fileSize) fail("s_meta_blkaddr", 40, `${sb.metaBlkaddr} is beyond the end of the ${fileSize}-byte image`);
  if (sb.extraDevices === 0 && sb.blocks !== 0 && sb.blocks !== 4096) fail("s_blocks", 36, `must be 0 with no devices, found ${sb.blocks}`);
  if (1408 + EROFS_DEVICE_SLOT_SIZE * sb.extraDevices > fileSize) fail("s_extra_devices", 86, `device table of ${sb.extraDevices} slots exceeds the image`);
}

// ---------------------------------------------------------------------------
// Device slot (128 bytes)

export interface DeviceSlot {
  /** Tag: the blob id (ASCII, ≤ 64 bytes). */
  blobId: string;
  blocks: number;
  mappedBlkaddr: number;
}

export function decodeDeviceSlot(bytes: Uint8Array, baseOffset: number): DeviceSlot {
  const r = new StructReader("RafsV6Device", bytes, baseOffset, EROFS_DEVICE_SLOT_SIZE);
  const tag = r.slice("blob_id", 0, 64);
  const blobId = decodeBlobIdField(r, tag, 0);
  return { blobId, blocks: r.u32("blocks", 64), mappedBlkaddr: r.u32("mapped_blkaddr", 68) };
}

export function encodeDeviceSlot(slot: DeviceSlot, into?: Uint8Array): Uint8Array {
  return new StructWriter(EROFS_DEVICE_SLOT_SIZE, into).set(0, encodeBlobIdField(slot.blobId)).u32(64, slot.blocks).u32(68, slot.mappedBlkaddr).bytes;
}

/** Decodes a NUL-padded 64-byte blob id; must be valid UTF-8 (nydusd rule). */
export function decodeBlobIdField(r: StructReader, field: Uint8Array, off: number): string {
  const end = field.indexOf(0);
  const raw = end < 0 ? field : field.subarray(0, end);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    // TextDecoder's error says nothing useful; report the field instead.
    return r.fail("blob_id", off, "not valid UTF-8");
  }
}

/** Encodes a blob id into a 64-byte NUL-padded field; throws RangeError when longer. */
export function encodeBlobIdField(blobId: string): Uint8Array {
  const b = new TextEncoder().encode(blobId);
  if (b.length > 64) throw new RangeError(`Cannot encode blob id "${blobId}": longer than 64 bytes`);
  const out = new Uint8Array(64);
  out.set(b);
  return out;
}

// ---------------------------------------------------------------------------
// Inodes

/** A decoded inode (compact or extended); compact inodes get mtime 0. */
export interface InodeRecord {
  /** i_format: bit 0 extended, bits 1..3 layout. */
  format: number;
  extended: boolean;
  layout: number;
  xattrIcount: number;
  mode: number;
  size: number;
  /** i_u: block address, chunk format, or rdev. */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  nlink: number;
  /** 32 or 64. */
  inodeSize: number;
}

/** Decodes the inode at `bytes[0]` (absolute offset `baseOffset`); needs 32 or 64 bytes. */
export function decodeInode(bytes: Uint8Array, baseOffset: number): InodeRecord {
  const head = new StructReader("ErofsInode", bytes, baseOffset, 2);
  const format = head.u16("i_format", 0);
  if (format & ~0xf) head.fail("i_format", 0, `unknown bits in 0x${format.toString(16)}`);
  const extended = (format & 1) === 1;
  const layout = (format >> 1) & 0x7;
  if (extended) {
    const r = new StructReader("RafsV6InodeExtended", bytes, baseOffset, EROFS_INODE_EXTENDED_SIZE);
    return {
      format,
      extended,
      layout,
      xattrIcount: r.u16("i_xattr_icount", 2),
      mode: r.u16("i_mode", 4),
      size: r.u64("i_size", 8),
      u: r.u32("i_u", 16),
      ino: r.u32("i_ino", 20),
      uid: r.u32("i_uid", 24),
      gid: r.u32("i_gid", 28),
      mtime: r.u64("i_mtime", 32),
      mtimeNsec: r.u32("i_mtime_nsec", 40),
      nlink: r.u32("i_nlink", 44),
      inodeSize: EROFS_INODE_EXTENDED_SIZE,
    };
  }
  const r = new StructReader("RafsV6InodeCompact", bytes, baseOffset, EROFS_INODE_COMPACT_SIZE);
  return {
    format,
    extended,
    layout,
    xattrIcount: r.u16("i_xattr_icount", 2),
    mode: r.u16("i_mode", 4),
    nlink: r.u16("i_nlink", 6),
    size: r.u32("i_size", 8),
    u: r.u32("i_u", 16),
    ino: r.u32("i_ino", 20),
    uid: r.u16("i_uid", 24),
    gid: r.u16("i_gid", 26),
    mtime: 0,
    mtimeNsec: 0,
    inodeSize: EROFS_INODE_COMPACT_SIZE,
  };
}

/**
 * Writes u64 `v` at `off`: as two u32 halves when it is a safe non-negative integer (no BigInt
 * per field; ~25 ms over 45,000 inodes), else through `w.u64` and its checks.
 */
function u64Fast(w: StructWriter, off: number, v: number): StructWriter {
  if (!Number.isSafeInteger(v) || v < 0) return w.u64(off, v);
  return w.u32(off, v % 0x1_0000_0000).u32(off + 4, Math.floor(v / 0x1_0000_0000));
}

/** Encodes an inode (extended or compact per `rec.extended`). */
export function encodeInode(rec: Omit<InodeRecord, "format" | "inodeSize"> & { format?: number }, into?: Uint8Array): Uint8Array {
  const format = (rec.extended ? 1 : 0) | (rec.layout << 1);
  if (rec.extended) {
    const w = new StructWriter(EROFS_INODE_EXTENDED_SIZE, into).u16(0, format).u16(2, rec.xattrIcount).u16(4, rec.mode & 0xffff);
    u64Fast(w, 8, rec.size).u32(16, rec.u).u32(20, rec.ino).u32(24, rec.uid).u32(28, rec.gid);
    return u64Fast(w, 32, rec.mtime).u32(40, rec.mtimeNsec).u32(44, rec.nlink).bytes;
  }
  for (const [field, v, max] of [["size", rec.size, 0xffff_ffff], ["uid", rec.uid, 0xffff], ["gid", rec.gid, 0xffff], ["nlink", rec.nlink, 0xffff]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`Cannot encode compact inode: ${field} ${v} does not fit (max ${max}); use an extended inode`);
  }
  return new StructWriter(EROFS_INODE_COMPACT_SIZE, into)
    .u16(0, format)
    .u16(2, rec.xattrIcount)
    .u16(4, rec.mode & 0xffff)
    .u16(6, rec.nlink)
    .u32(8, rec.size)
    .u32(16, rec.u)
    .u32(20, rec.ino)
    .u16(24, rec.uid)
    .u16(26, rec.gid).bytes;
}

/** Linux `new_encode_dev` (32-bit dev_t) used in i_u of device inodes. §3.7.3 */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
/** Inverse of {@link encodeRdev}. */
export function decodeRdev(dev: number): { major: number; minor: number } {
  return { major: (dev & 0xfff00) >>> 8, minor: ((dev & 0xff) | ((dev >>> 12) & 0xfff00)) >>> 0 };
}

// ---------------------------------------------------------------------------
// Chunk index entries (RafsV6InodeChunkAddr, 8 bytes)

export interface ChunkAddr {
  /** 0-based blob index (stored + 1 as the EROFS device id). */
  blobIndex: number;
  /** ci_index, 24 bits. */
  chunkIndex: number;
  /** uncompressed_offset / 4096. */
  blkAddr: number;
}

export function decodeChunkAddr(bytes: Uint8Array, baseOffset: number): ChunkAddr {
  const r = new StructReader("RafsV6InodeChunkAddr", bytes, baseOffset, EROFS_CHUNK_ADDR_SIZE);
  const lo = r.u16("c_blob_addr_lo", 0);
  const hi = r.u16("c_blob_addr_hi", 2);
  const device = hi & 0xff;
  if (device === 0) r.fail("c_blob_addr_hi", 2, "device id 0 is not a blob");
  return { blobIndex: device - 1, chunkIndex: (hi >>> 8) * 0x10000 + lo, blkAddr: r.u32("c_blk_addr", 4) };
}

export function encodeChunkAddr(a: ChunkAddr, into?: Uint8Array): Uint8Array {
  if (a.blobIndex < 0 || a.blobIndex > 253) throw new RangeError(`Cannot encode blob index ${a.blobIndex}: must be 0..253`);
  if (a.chunkIndex < 0 || a.chunkIndex > 0xffffff) throw new RangeError(`Cannot encode chunk index ${a.chunkIndex}: must fit 24 bits`);
  return new StructWriter(EROFS_CHUNK_ADDR_SIZE, into)
    .u16(0, a.chunkIndex & 0xffff)
    .u16(2, ((a.blobIndex + 1) & 0xff) | ((a.chunkIndex >>> 16) << 8))
    .u32(4, a.blkAddr).bytes;
}

/** i_u of a chunk-based inode for chunks of `chunkBytes` (a power of two ≥ 4096). */
export function chunkFormat(chunkBytes: number): number {
  const bits = Math.log2(chunkBytes);
  if (!Number.isInteger(bits) || bits < 12 || bits - 12 > EROFS_CHUNK_FORMAT_BLKBITS_MASK) {
    throw new RangeError(`Cannot encode chunk size ${chunkBytes}: not a power of two in 2^12..2^43`);
  }
  return EROFS_CHUNK_FORMAT_INDEXES | (bits - 12);
}

// ---------------------------------------------------------------------------
// Dirents and directory blocks

export interface Dirent {
  nid: number;
  nameoff: number;
  fileType: number;
}

export function decodeDirent(bytes: Uint8Array, baseOffset: number): Dirent {
  const r = new StructReader("RafsV6Dirent", bytes, baseOffset, EROFS_DIRENT_SIZE);
  return { nid: r.u64("e_nid", 0), nameoff: r.u16("e_nameoff", 8), fileType: r.u8("e_file_type", 10) };
}

export function encodeDirent(d: Dirent, into?: Uint8Array): Uint8Array {
  return new StructWriter(EROFS_DIRENT_SIZE, into).u64(0, d.nid).u16(8, d.nameoff).u8(10, d.fileType).bytes;
}

/**
 * Writes one 12-byte dirent header at `at` of `view` (the reserved byte is left as is: zero in
 * a fresh buffer). For writers packing many dirents into one preallocated bootstrap: no
 * record object or StructWriter per entry.
 */
export function putDirent(view: DataView, at: number, nid: number, nameoff: number, fileType: number): void {
  if (!Number.isSafeInteger(nid) || nid < 0) throw new RangeError(`Cannot encode dirent nid ${nid}: not a non-negative integer`);
  view.setUint32(at, nid % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(nid / 0x1_0000_0000), true);
  view.setUint16(at + 8, nameoff, true);
  view.setUint8(at + 10, fileType);
}

/** A named directory entry ("." and ".." included) for packing. */
export interface NamedDirent {
  name: Uint8Array;
  nid: number;
  fileType: number;
}

/**
 * Splits sorted entries into dirent blocks (§3.9.3): a new block starts when
 * `used + 12 + len(name) > blockSize`.
 */
export function splitDirentBlocks<T extends { name: Uint8Array }>(sorted: readonly T[], blockSize = EROFS_BLOCK_SIZE): T[][] {
  const blocks: T[][] = [];
  let cur: T[] = [];
  let used = 0;
  for (const e of sorted) {
    const need = EROFS_DIRENT_SIZE + e.name.length;
    if (used + need > blockSize && cur.length > 0) {
      blocks.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(e);
    used += need;
  }
  if (cur.length > 0) blocks.push(cur);
  return blocks;
}

/** `i_size` of a directory with these sorted entries (§3.9.3). */
export function direntAreaSize(sorted: readonly { name: Uint8Array }[], blockSize = EROFS_BLOCK_SIZE): number {
  let d = 0;
  for (const e of sorted) {
    const len = EROFS_DIRENT_SIZE + e.name.length;
    if ((d % blockSize) + len > blockSize) d = alignUp(d, blockSize);
    d += len;
  }
  return d;
}

/** Encodes one dirent block: all headers, then all names back to back (no NULs). */
export function encodeDirentBlock(entries: readonly NamedDirent[]): Uint8Array {
  const size = entries.reduce((s, e) => s + EROFS_DIRENT_SIZE + e.name.length, 0);
  const out = new Uint8Array(size);
  let nameoff = EROFS_DIRENT_SIZE * entries.length;
  entries.forEach((e, i) => {
    encodeDirent({ nid: e.nid, nameoff, fileType: e.fileType }, out.subarray(i * EROFS_DIRENT_SIZE));
    out.set(e.name, nameoff);
    nameoff += e.name.length;
  });
  return out;
}

/**
 * Decodes one dirent block. `validLen` is how many bytes of the block belong to the
 * directory (i_size remainder for the last block, else the block size).
 */
export function decodeDirentBlock(block: Uint8Array, validLen: number, baseOffset: number): NamedDirent[] {
  const r = new StructReader("RafsV6DirentBlock", block, baseOffset, validLen);
  if (validLen < EROFS_DIRENT_SIZE) r.fail("e_nameoff", 0, `block of ${validLen} bytes holds no dirent`);
  const first = decodeDirent(block, baseOffset);
  if (first.nameoff % EROFS_DIRENT_SIZE !== 0 || first.nameoff < EROFS_DIRENT_SIZE || first.nameoff >= validLen) {
    r.fail("e_nameoff", 8, `first name offset ${first.nameoff} is not a multiple of 12 inside the block`);
  }
  const count = first.nameoff / EROFS_DIRENT_SIZE;
  const out: NamedDirent[] = [];
  for (let i = 0; i < count; i++) {
    const d = decodeDirent(block.subarray(i * EROFS_DIRENT_SIZE), baseOffset + i * EROFS_DIRENT_SIZE);
    let end: number;
    if (i + 1 < count) {
      end = r.u16("e_nameoff", (i + 1) * EROFS_DIRENT_SIZE + 8);
    } else {
      const nul = block.subarray(0, validLen).indexOf(0, d.nameoff);
      end = nul < 0 ? validLen : nul;
    }
    if (d.nameoff < first.nameoff || end <= d.nameoff || end > validLen || end - d.nameoff > EROFS_NAME_LEN) {
      r.fail("e_nameoff", i * EROFS_DIRENT_SIZE + 8, `name range ${d.nameoff}..${end} is invalid`);
    }
    out.push({ name: block.slice(d.nameoff, end), nid: d.nid, fileType: d.fileType });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Inline xattrs (§3.8)

/** Size of the inline xattr area for these xattrs (0 when none). */
export function xattrAreaSize(xattrs: ReadonlyMap<string, Uint8Array>): number {
  if (xattrs.size === 0) return 0;
  let size = EROFS_XATTR_IBODY_HEADER_SIZE;
  for (const [name, value] of xattrs) {
    const { suffix } = splitXattrName(name);
    size += alignUp(4 + suffix.length + value.length, 4);
  }
  return size;
}

/** i_xattr_icount for an area of `areaSize` bytes. */
export function xattrIcount(areaSize: number): number {
  return areaSize === 0 ? 0 : (areaSize - EROFS_XATTR_IBODY_HEADER_SIZE) / 4 + 1;
}

/** Splits a full xattr name into its EROFS prefix index and suffix; throws RangeError for unsupported names. */
export function splitXattrName(name: string): { index: number; suffix: Uint8Array } {
  for (const p of XATTR_PREFIXES) {
    if (name.startsWith(p.prefix)) {
      const suffix = new TextEncoder().encode(name.slice(p.prefix.length));
      if (suffix.length > 255) throw new RangeError(`Cannot encode xattr "${name}": name longer than 255 bytes`);
      return { index: p.index, suffix };
    }
  }
  throw new RangeError(`Cannot encode xattr "${name}": prefix not one of user., trusted., security., system.posix_acl_*`);
}

/** Encodes the inline xattr area, entries sorted by full name for reproducible output. */
export function encodeXattrArea(xattrs: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const out = new Uint8Array(xattrAreaSize(xattrs));
  if (out.length === 0) return out;
  let off = EROFS_XATTR_IBODY_HEADER_SIZE;
  const names = [...xattrs.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const value = xattrs.get(name)!;
    if (value.length > 0xffff) throw new RangeError(`Cannot encode xattr "${name}": value longer than 65535 bytes`);
    const { index, suffix } = splitXattrName(name);
    new StructWriter(4, out.subarray(off)).u8(0, suffix.length).u8(1, index).u16(2, value.length);
    out.set(suffix, off + 4);
    out.set(value, off + 4 + suffix.length);
    off += alignUp(4 + suffix.length + value.length, 4);
  }
  return out;
}

/** Decodes an inline xattr area of `icount` (i_xattr_icount) starting at `bytes[0]`. */
export function decodeXattrArea(bytes: Uint8Array, icount: number, baseOffset: number): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  if (icount === 0) return out;
  const areaSize = EROFS_XATTR_IBODY_HEADER_SIZE + (icount - 1) * 4;
  const r = new StructReader("ErofsXattrIbody", bytes, baseOffset, areaSize);
  if (r.u8("h_shared_count", 4) !== 0) r.fail("h_shared_count", 4, "shared xattrs are not supported");
  let off = EROFS_XATTR_IBODY_HEADER_SIZE;
  while (off < areaSize) {
    const nameLen = r.u8("e_name_len", off);
    const index = r.u8("e_name_index", off + 1);
    const valueSize = r.u16("e_value_size", off + 2);
    const entryEnd = off + 4 + nameLen + valueSize;
    if (entryEnd > areaSize) r.fail("e_value_size", off + 2, `entry ends at ${entryEnd}, beyond the ${areaSize}-byte xattr area`);
    const prefix = XATTR_PREFIXES.find((p) => p.index === index);
    if (!prefix) throw new FormatError("ErofsXattrEntry", "e_name_index", baseOffset + off + 1, `unknown prefix index ${index}`);
    const suffix = Buffer.from(r.slice("e_name", off + 4, nameLen)).toString("utf8");
    out.set(prefix.prefix + suffix, r.slice("e_value", off + 4 + nameLen, valueSize).slice());
    off = alignUp(entryEnd, 4);
  }
  return out;
}
