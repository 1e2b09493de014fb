/**
 * RAFS v5 bootstrap on-disk structures (spec §5; nydus `rafs/src/metadata/layout/v5.rs`):
 * every constant and struct codec of the v5 format. The 80-byte chunk record lives in
 * `chunk_record.ts` because RAFS v6 shares it.
 *
 * ```
 * 0        RafsV5SuperBlock (8192 bytes)
 * 8192     inode table: u32 (record offset >> 3) per index, padded to 8
 *          prefetch table: u32 inode numbers, padded to 8 (optional)
 *          blob table: u32 readahead_offset | u32 readahead_size | blob id, "\0"-separated, padded to 8
 *          extended blob table: 64 bytes per blob
 *          inode records: RafsV5Inode (128) | name | symlink | [xattr table] | [chunk records]
 * ```
 *
 * Decoders take the whole bootstrap and an absolute offset, so every FormatError names the
 * absolute offset of the offending field. Decoders check structure; cross-record rules
 * (parents, child ranges, digests) belong to the reader and the verifier.
 */
import { StructReader, StructWriter, alignUp } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";
import { CHUNK_RECORD_SIZE } from "./chunk_record.ts";
import { RafsFlags, validateRafsFlags } from "./format.ts";
import type { CompressorName } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";

/** Every v5 structure is 8-byte aligned (`RAFSV5_ALIGNMENT`). */
export const RAFSV5_ALIGNMENT = 8;
/** Superblock size and the offset where the tables may start. */
export const RAFSV5_SUPERBLOCK_SIZE = 8192;
/** s_magic = "RAFS" read as a LE u32 (bytes `53 46 41 52`). */
export const RAFSV5_MAGIC = 0x5241_4653;
/** s_fs_version of v5. */
export const RAFSV5_VERSION = 0x500;
/** Size of the fixed part of an inode record. */
export const RAFSV5_INODE_SIZE = 128;
/** Size of one extended blob table entry. */
export const RAFSV5_EXT_BLOB_ENTRY_SIZE = 64;
/** Inode number of the root directory. */
export const RAFSV5_ROOT_INODE = 1;
/** Longest file name accepted (RAFS_MAX_NAME 255, +1 as upstream's validate allows). */
export const RAFSV5_MAX_NAME_SIZE = 256;
/** Smallest and largest chunk size (s_block_size) accepted; 4 MiB stargz size is within range. */
export const RAFSV5_MIN_CHUNK_SIZE = 0x1000;
export const RAFSV5_MAX_CHUNK_SIZE = 0x100_0000;

/** RafsV5InodeFlags (i_flags, `rafs/src/metadata/inode.rs`). */
export const RAFSV5_INODE_FLAG_SYMLINK = 0x1n;
export const RAFSV5_INODE_FLAG_HARDLINK = 0x2n;
export const RAFSV5_INODE_FLAG_XATTR = 0x4n;
export const RAFSV5_INODE_FLAG_HAS_HOLE = 0x8n;

/** 8-byte alignment of a v5 size. */
export function rafsV5Align(size: number): number {
  return alignUp(size, RAFSV5_ALIGNMENT);
}

/**
 * Compressor named by superblock flags, with upstream's precedence (NONE, LZ4, GZIP, ZSTD;
 * no bit set means lz4_block, `mod.rs:343-372`).
 * Not `flagsAlgorithms` (format.ts): v5's precedence differs (LZ4 before GZIP/ZSTD, BLAKE3 before SHA256).
 * @example compressorFromSuperFlags(0x09n) // "none"
 */
export function compressorFromSuperFlags(flags: bigint): CompressorName {
  if (flags & RafsFlags.CompressionNone) return "none";
  if (flags & RafsFlags.CompressionLz4) return "lz4_block";
  if (flags & RafsFlags.CompressionGzip) return "gzip";
  if (flags & RafsFlags.CompressionZstd) return "zstd";
  return "lz4_block";
}

/**
 * Digester named by superblock flags (BLAKE3 wins; no bit set means BLAKE3).
 * @example digesterFromSuperFlags(0x09n) // "sha256"
 */
export function digesterFromSuperFlags(flags: bigint): DigesterName {
  if (flags & RafsFlags.HashBlake3) return "blake3";
  if (flags & RafsFlags.HashSha256) return "sha256";
  return "blake3";
}

// ---------------------------------------------------------------------------------------------
// Superblock

/** `RafsV5SuperBlock`, 8192 bytes at offset 0 (`layout/v5.rs:93-128`). */
export interface RafsV5SuperBlock {
  /** s_magic (u32 @0) = {@link RAFSV5_MAGIC}. */
  readonly magic: number;
  /** s_fs_version (u32 @4) = 0x500. */
  readonly fsVersion: number;
  /** s_sb_size (u32 @8) = 8192. */
  readonly sbSize: number;
  /** s_block_size (u32 @12): the chunk size, power of two in 4 KiB..16 MiB. */
  readonly blockSize: number;
  /** s_flags (u64 @16): RafsSuperFlags. */
  readonly flags: bigint;
  /** s_inodes_count (u64 @24): unique inodes (older builders exclude the root). */
  readonly inodesCount: number;
  /** s_inode_table_offset (u64 @32). */
  readonly inodeTableOffset: number;
  /** s_prefetch_table_offset (u64 @40). */
  readonly prefetchTableOffset: number;
  /** s_blob_table_offset (u64 @48). */
  readonly blobTableOffset: number;
  /** s_inode_table_entries (u32 @56): number of indexes. */
  readonly inodeTableEntries: number;
  /** s_prefetch_table_entries (u32 @60). */
  readonly prefetchTableEntries: number;
  /** s_blob_table_size (u32 @64): bytes, padded to 8. */
  readonly blobTableSize: number;
  /** s_extended_blob_table_entries (u32 @68). */
  readonly extendedBlobTableEntries: number;
  /** s_extended_blob_table_offset (u64 @72). */
  readonly extendedBlobTableOffset: number;
  /** s_reserved (8112 bytes @80), kept for byte-exact re-encoding. */
  readonly reserved: Uint8Array;
}

/**
 * Decodes and validates the superblock fields on their own: magic, version, sb size, chunk
 * size and flags. Table ranges are checked by {@link validateRafsV5SuperBlock}.
 *
 * @param bytes the bootstrap (at least 8192 bytes)
 * @throws FormatError naming the field
 * @example
 * const sb = decodeRafsV5SuperBlock(bootstrap);
 * validateRafsV5SuperBlock(sb, bootstrap.length);
 */
export function decodeRafsV5SuperBlock(bytes: Uint8Array): RafsV5SuperBlock {
  const r = new StructReader("RafsV5SuperBlock", bytes, 0, RAFSV5_SUPERBLOCK_SIZE);
  const magic = r.u32("s_magic", 0);
  if (magic !== RAFSV5_MAGIC) r.fail("s_magic", 0, `expected 0x${RAFSV5_MAGIC.toString(16)}, found 0x${magic.toString(16)}`);
  const fsVersion = r.u32("s_fs_version", 4);
  if (fsVersion !== RAFSV5_VERSION) r.fail("s_fs_version", 4, `expected 0x500, found 0x${fsVersion.toString(16)}`);
  const sbSize = r.u32("s_sb_size", 8);
  if (sbSize !== RAFSV5_SUPERBLOCK_SIZE) r.fail("s_sb_size", 8, `expected 8192, found ${sbSize}`);
  const blockSize = r.u32("s_block_size", 12);
  if (blockSize < RAFSV5_MIN_CHUNK_SIZE || blockSize > RAFSV5_MAX_CHUNK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    r.fail("s_block_size", 12, `chunk size 0x${blockSize.toString(16)} is not a power of two in 0x1000..0x1000000`);
  }
  const flags = r.u64big("s_flags", 16);
  // Lenient (strictV6 = false): only unknown bits are rejected, as RafsSuperFlags::from_bits does.
  validateRafsFlags(flags, "RafsV5SuperBlock", 16, false);
  return {
    magic,
    fsVersion,
    sbSize,
    blockSize,
    flags,
    inodesCount: r.u64("s_inodes_count", 24),
    inodeTableOffset: r.u64("s_inode_table_offset", 32),
    prefetchTableOffset: r.u64("s_prefetch_table_offset", 40),
    blobTableOffset: r.u64("s_blob_table_offset", 48),
    inodeTableEntries: r.u32("s_inode_table_entries", 56),
    prefetchTableEntries: r.u32("s_prefetch_table_entries", 60),
    blobTableSize: r.u32("s_blob_table_size", 64),
    extendedBlobTableEntries: r.u32("s_extended_blob_table_entries", 68),
    extendedBlobTableOffset: r.u64("s_extended_blob_table_offset", 72),
    reserved: r.slice("s_reserved", 80, RAFSV5_SUPERBLOCK_SIZE - 80).slice(),
  };
}

/** Encodes a superblock into 8192 bytes. */
export function encodeRafsV5SuperBlock(sb: RafsV5SuperBlock): Uint8Array {
  if (sb.reserved.length !== RAFSV5_SUPERBLOCK_SIZE - 80) {
    throw new RangeError(`Cannot encode RafsV5SuperBlock: reserved has ${sb.reserved.length} bytes, expected 8112`);
  }
  return new StructWriter(RAFSV5_SUPERBLOCK_SIZE)
    .u32(0, sb.magic)
    .u32(4, sb.fsVersion)
    .u32(8, sb.sbSize)
    .u32(12, sb.blockSize)
    .u64(16, sb.flags)
    .u64(24, sb.inodesCount)
    .u64(32, sb.inodeTableOffset)
    .u64(40, sb.prefetchTableOffset)
    .u64(48, sb.blobTableOffset)
    .u32(56, sb.inodeTableEntries)
    .u32(60, sb.prefetchTableEntries)
    .u32(64, sb.blobTableSize)
    .u32(68, sb.extendedBlobTableEntries)
    .u64(72, sb.extendedBlobTableOffset)
    .set(80, sb.reserved).bytes;
}

interface Range {
  readonly name: string;
  readonly field: string;
  readonly fieldOffset: number;
  readonly start: number;
  readonly end: number;
}

/**
 * Checks the table layout against the file, as upstream's `RafsV5SuperBlock::validate`: the
 * file is larger than the superblock; the inode table is non-empty and holds at least
 * `s_inodes_count` entries; every table lies inside `[8192, fileSize)`; tables do not overlap.
 * @throws FormatError naming the offending table's offset field
 */
export function validateRafsV5SuperBlock(sb: RafsV5SuperBlock, fileSize: number): void {
  const fail = (field: string, off: number, detail: string): never => {
    throw new FormatError("RafsV5SuperBlock", field, off, detail);
  };
  if (fileSize <= RAFSV5_SUPERBLOCK_SIZE) fail("(size)", 0, `file has ${fileSize} bytes, need more than 8192`);
  if (sb.inodeTableEntries === 0) fail("s_inode_table_entries", 56, "inode table is empty (no root inode)");
  if (sb.inodesCount > sb.inodeTableEntries) {
    fail("s_inodes_count", 24, `${sb.inodesCount} inodes exceed ${sb.inodeTableEntries} inode table entries`);
  }
  const ranges: Range[] = [
    {
      name: "inode table",
      field: "s_inode_table_offset",
      fieldOffset: 32,
      start: sb.inodeTableOffset,
      end: sb.inodeTableOffset + sb.inodeTableEntries * 4,
    },
  ];
  if (sb.blobTableSize !== 0) {
    ranges.push({
      name: "blob table",
      field: "s_blob_table_offset",
      fieldOffset: 48,
      start: sb.blobTableOffset,
      end: sb.blobTableOffset + sb.blobTableSize,
    });
  }
  if (sb.extendedBlobTableEntries !== 0) {
    ranges.push({
      name: "extended blob table",
      field: "s_extended_blob_table_offset",
      fieldOffset: 72,
      start: sb.extendedBlobTableOffset,
      end: sb.extendedBlobTableOffset + sb.extendedBlobTableEntries * RAFSV5_EXT_BLOB_ENTRY_SIZE,
    });
  }
  if (sb.prefetchTableEntries !== 0) {
    ranges.push({
      name: "prefetch table",
      field: "s_prefetch_table_offset",
      fieldOffset: 40,
      start: sb.prefetchTableOffset,
      end: sb.prefetchTableOffset + sb.prefetchTableEntries * 4,
    });
  }
  for (const [i, r] of ranges.entries()) {
    if (r.start < RAFSV5_SUPERBLOCK_SIZE || r.end > fileSize) {
      fail(r.field, r.fieldOffset, `${r.name} [${r.start}, ${r.end}) is outside [8192, ${fileSize})`);
    }
    for (const o of ranges.slice(0, i)) {
      if (r.start < o.end && o.start < r.end) {
        fail(r.field, r.fieldOffset, `${r.name} [${r.start}, ${r.end}) overlaps the ${o.name} [${o.start}, ${o.end})`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Inode table and prefetch table

/**
 * Decodes the inode table into absolute record offsets (entry `index-1` << 3), checking each
 * entry as upstream's `RafsV5InodeTable::get` does (above the superblock, below 2^32) and
 * that a 128-byte inode fits before the end of the file.
 * @returns record offsets; element `index-1` belongs to the 1-based table index
 * @throws FormatError naming the table or the offending entry
 */
export function decodeInodeTable(bytes: Uint8Array, sb: RafsV5SuperBlock): number[] {
  const r = new StructReader("RafsV5InodeTable", bytes, 0);
  const len = sb.inodeTableEntries;
  r.slice("entries", sb.inodeTableOffset, len * 4);
  const out = new Array<number>(len);
  for (let i = 0; i < len; i++) {
    const entryOff = sb.inodeTableOffset + i * 4;
    const v = r.u32(`entries[${i}]`, entryOff);
    if (v <= RAFSV5_SUPERBLOCK_SIZE >>> 3 || v >= 1 << 29) {
      r.fail(`entries[${i}]`, entryOff, `record offset 0x${(v * 8).toString(16)} is outside (8192, 2^32)`);
    }
    if (v * 8 + RAFSV5_INODE_SIZE > bytes.length) {
      r.fail(`entries[${i}]`, entryOff, `record at ${v * 8} runs past the end of the file (${bytes.length} bytes)`);
    }
    out[i] = v * 8;
  }
  return out;
}

/**
 * Prefetch table: `s_prefetch_table_entries` u32 inode numbers; reading stops at the first 0.
 * @throws FormatError when the table runs past the file
 */
export function decodePrefetchTable(bytes: Uint8Array, sb: RafsV5SuperBlock): number[] {
  const r = new StructReader("RafsV5PrefetchTable", bytes, 0);
  const out: number[] = [];
  r.slice("entries", sb.prefetchTableOffset, sb.prefetchTableEntries * 4);
  for (let i = 0; i < sb.prefetchTableEntries; i++) {
    const ino = r.u32(`entries[${i}]`, sb.prefetchTableOffset + i * 4);
    if (ino === 0) break;
    out.push(ino);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Blob table and extended blob table

/** One blob-table entry (`layout/v5.rs:522-728`). */
export interface RafsV5BlobEntry {
  /** Blob-level readahead range (`--prefetch-policy blob`), else 0. */
  readonly readaheadOffset: number;
  readonly readaheadSize: number;
  /** Blob id (UTF-8, runs to the next NUL). */
  readonly blobId: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Uint8Array, struct: string, field: string, off: number): string {
  try {
    return utf8.decode(bytes);
  } catch (e) {
    throw new FormatError(struct, field, off, "not valid UTF-8", { cause: e });
  }
}

/**
 * Decodes the blob table (`s_blob_table_size` bytes at `s_blob_table_offset`) as upstream
 * does: entries `u32 | u32 | id` separated by one NUL, parsed while more than 8 bytes remain.
 * @throws FormatError when the table runs past the file or an id is not UTF-8
 */
export function decodeBlobTable(bytes: Uint8Array, sb: RafsV5SuperBlock): RafsV5BlobEntry[] {
  const base = sb.blobTableOffset;
  const r = new StructReader("RafsV5BlobTable", bytes, 0);
  const end = base + sb.blobTableSize;
  r.slice("(table)", base, sb.blobTableSize);
  const out: RafsV5BlobEntry[] = [];
  let pos = base;
  while (end - pos > 8) {
    const readaheadOffset = r.u32("readahead_offset", pos);
    const readaheadSize = r.u32("readahead_size", pos + 4);
    let idEnd = pos + 8;
    while (idEnd < end && bytes[idEnd] !== 0) idEnd++;
    const blobId = decodeUtf8(bytes.subarray(pos + 8, idEnd), "RafsV5BlobTable", "blob_id", pos + 8);
    out.push({ readaheadOffset, readaheadSize, blobId });
    pos = idEnd === end ? end : idEnd + 1;
  }
  return out;
}

/** Encodes a blob table: entries separated by NUL, zero-padded to 8 bytes (empty: 0 bytes). */
export function encodeBlobTable(entries: readonly RafsV5BlobEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts = entries.map((e) => enc.encode(e.blobId));
  if (parts.some((p) => p.includes(0))) throw new RangeError("Cannot encode RafsV5BlobTable: a blob id contains NUL");
  const raw = parts.reduce((n, p) => n + 8 + p.length + 1, 0) - (entries.length ? 1 : 0);
  const w = new StructWriter(rafsV5Align(raw));
  let pos = 0;
  entries.forEach((e, i) => {
    w.u32(pos, e.readaheadOffset).u32(pos + 4, e.readaheadSize).set(pos + 8, parts[i]);
    pos += 8 + parts[i].length + 1;
  });
  return w.bytes;
}

/** `RafsV5ExtBlobEntry`, 64 bytes (`layout/v5.rs:730-884`). */
export interface RafsV5ExtBlobEntry {
  /** chunk_count (u32 @0). */
  readonly chunkCount: number;
  /** features (u32 @4): BlobFeatures (older builders: reserved 0). */
  readonly features: number;
  /** uncompressed_size (u64 @8): blob-cache size. */
  readonly uncompressedSize: number;
  /** compressed_size (u64 @16): blob file size. */
  readonly compressedSize: number;
  /** reserved (40 bytes @24). */
  readonly reserved: Uint8Array;
}

/**
 * Decodes the extended blob table entry at absolute `offset`.
 * @throws FormatError when it runs past `bytes` or a size exceeds 2^53-1
 */
export function decodeExtBlobEntry(bytes: Uint8Array, offset: number): RafsV5ExtBlobEntry {
  const r = new StructReader("RafsV5ExtBlobEntry", bytes.subarray(Math.min(offset, bytes.length)), offset, RAFSV5_EXT_BLOB_ENTRY_SIZE);
  return {
    chunkCount: r.u32("chunk_count", 0),
    features: r.u32("features", 4),
    uncompressedSize: r.u64("uncompressed_size", 8),
    compressedSize: r.u64("compressed_size", 16),
    reserved: r.slice("reserved", 24, 40).slice(),
  };
}

/** Encodes one extended blob entry (64 bytes). */
export function encodeExtBlobEntry(e: RafsV5ExtBlobEntry): Uint8Array {
  if (e.reserved.length !== 40) throw new RangeError(`Cannot encode RafsV5ExtBlobEntry: reserved has ${e.reserved.length} bytes, expected 40`);
  return new StructWriter(RAFSV5_EXT_BLOB_ENTRY_SIZE)
    .u32(0, e.chunkCount)
    .u32(4, e.features)
    .u64(8, e.uncompressedSize)
    .u64(16, e.compressedSize)
    .set(24, e.reserved).bytes;
}

// ---------------------------------------------------------------------------------------------
// Inode record

/** `RafsV5Inode`, the 128-byte head of an inode record (`layout/v5.rs:886-1101`). */
export interface RafsV5Inode {
  /** i_digest (32 @0): §6 (file: H(chunk ids), symlink: H(target), dir: H(children digests)). */
  readonly digest: Uint8Array;
  /** i_parent (u64 @32): parent's inode number; 0 for the root. */
  readonly parent: number;
  /** i_ino (u64 @40): inode number; hardlinks share the first link's. */
  readonly ino: number;
  /** i_uid (u32 @48). */
  readonly uid: number;
  /** i_gid (u32 @52). */
  readonly gid: number;
  /** i_projid (u32 @56). */
  readonly projid: number;
  /** i_mode (u32 @60): st_mode. */
  readonly mode: number;
  /** i_size (u64 @64): file size; dir: aligned dirent size; symlink: target length. */
  readonly size: number;
  /** i_blocks (u64 @72): 512-byte blocks. */
  readonly blocks: number;
  /** i_flags (u64 @80): RafsV5InodeFlags. */
  readonly flags: bigint;
  /** i_nlink (u32 @88). */
  readonly nlink: number;
  /** i_child_index (u32 @92): dir: index of its first child. */
  readonly childIndex: number;
  /** i_child_count (u32 @96): dir: number of children; regular file: number of chunk records. */
  readonly childCount: number;
  /** i_name_size (u16 @100). */
  readonly nameSize: number;
  /** i_symlink_size (u16 @102). */
  readonly symlinkSize: number;
  /** i_rdev (u32 @104): Linux dev_t (old 32-bit encoding). */
  readonly rdev: number;
  /** i_mtime_nsec (u32 @108). */
  readonly mtimeNsec: number;
  /** i_mtime (u64 @112): seconds. */
  readonly mtime: number;
  /** i_reserved (8 @120). */
  readonly reserved: Uint8Array;
}

/**
 * Decodes the 128-byte inode at absolute `offset`.
 * @throws FormatError when it runs past `bytes` or a u64 field exceeds 2^53-1
 */
export function decodeRafsV5Inode(bytes: Uint8Array, offset: number): RafsV5Inode {
  const r = new StructReader("RafsV5Inode", bytes.subarray(Math.min(offset, bytes.length)), offset, RAFSV5_INODE_SIZE);
  return {
    digest: r.slice("i_digest", 0, 32).slice(),
    parent: r.u64("i_parent", 32),
    ino: r.u64("i_ino", 40),
    uid: r.u32("i_uid", 48),
    gid: r.u32("i_gid", 52),
    projid: r.u32("i_projid", 56),
    mode: r.u32("i_mode", 60),
    size: r.u64("i_size", 64),
    blocks: r.u64("i_blocks", 72),
    flags: r.u64big("i_flags", 80),
    nlink: r.u32("i_nlink", 88),
    childIndex: r.u32("i_child_index", 92),
    childCount: r.u32("i_child_count", 96),
    nameSize: r.u16("i_name_size", 100),
    symlinkSize: r.u16("i_symlink_size", 102),
    rdev: r.u32("i_rdev", 104),
    mtimeNsec: r.u32("i_mtime_nsec", 108),
    mtime: r.u64("i_mtime", 112),
    reserved: r.slice("i_reserved", 120, 8).slice(),
  };
}

/** Encodes the 128-byte inode head. */
export function encodeRafsV5Inode(i: RafsV5Inode): Uint8Array {
  if (i.digest.length !== 32 || i.reserved.length !== 8) throw new RangeError("Cannot encode RafsV5Inode: digest must be 32 bytes and reserved 8");
  return new StructWriter(RAFSV5_INODE_SIZE)
    .set(0, i.digest)
    .u64(32, i.parent)
    .u64(40, i.ino)
    .u32(48, i.uid)
    .u32(52, i.gid)
    .u32(56, i.projid)
    .u32(60, i.mode)
    .u64(64, i.size)
    .u64(72, i.blocks)
    .u64(80, i.flags)
    .u32(88, i.nlink)
    .u32(92, i.childIndex)
    .u32(96, i.childCount)
    .u16(100, i.nameSize)
    .u16(102, i.symlinkSize)
    .u32(104, i.rdev)
    .u32(108, i.mtimeNsec)
    .u64(112, i.mtime)
    .set(120, i.reserved).bytes;
}

/** Decoded xattr table. */
export interface RafsV5XattrTable {
  /** Full names ("user.foo") to values, in on-disk order. */
  readonly xattrs: Map<string, Uint8Array>;
  /** Bytes the table occupies on disk: 8 + align8(size). */
  readonly onDiskSize: number;
}

/**
 * Decodes the xattr table at absolute `offset`: `u64 size`, then pairs
 * `u32 pair_size | name | NUL | value`, then padding to 8 (`layout/v5.rs:1170-1240`).
 * @throws FormatError when the table or a pair runs past its bounds, a pair has no NUL,
 *   a name is empty or not UTF-8, or a name repeats
 */
export function decodeXattrTable(bytes: Uint8Array, offset: number): RafsV5XattrTable {
  const struct = "RafsV5XAttrsTable";
  const r = new StructReader(struct, bytes, 0);
  const size = r.u64("size", offset);
  const start = offset + 8;
  if (size > bytes.length - start) r.fail("size", offset, `table of ${size} bytes runs past the end of the file`);
  const end = start + size;
  const xattrs = new Map<string, Uint8Array>();
  let pos = start;
  while (pos < end) {
    if (end - pos < 4) r.fail("pair_size", pos, `${end - pos} bytes left, need 4`);
    const pairSize = r.u32("pair_size", pos);
    const p = pos + 4;
    if (pairSize > end - p) r.fail("pair_size", pos, `pair of ${pairSize} bytes runs past the table end ${end}`);
    const pair = bytes.subarray(p, p + pairSize);
    const nul = pair.indexOf(0);
    if (nul < 0) r.fail("name", p, "pair has no NUL after the name");
    if (nul === 0) r.fail("name", p, "empty xattr name");
    const name = decodeUtf8(pair.subarray(0, nul), struct, "name", p);
    if (xattrs.has(name)) r.fail("name", p, `duplicate xattr name "${name}"`);
    xattrs.set(name, pair.slice(nul + 1));
    pos = p + pairSize;
  }
  const onDiskSize = 8 + rafsV5Align(size);
  if (offset + onDiskSize > bytes.length) r.fail("size", offset, "table padding runs past the end of the file");
  return { xattrs, onDiskSize };
}

/** Encodes an xattr table (size header, pairs in the given order, padding to 8). */
export function encodeXattrTable(xattrs: Iterable<readonly [string, Uint8Array]>): Uint8Array {
  const enc = new TextEncoder();
  const pairs = [...xattrs].map(([n, v]) => [enc.encode(n), v] as const);
  const size = pairs.reduce((s, [n, v]) => s + 4 + n.length + 1 + v.length, 0);
  const w = new StructWriter(8 + rafsV5Align(size)).u64(0, size);
  let pos = 8;
  for (const [n, v] of pairs) {
    w.u32(pos, n.length + 1 + v.length).set(pos + 4, n).set(pos + 5 + n.length, v);
    pos += 4 + n.length + 1 + v.length;
  }
  return w.bytes;
}

/** An inode record located in the bootstrap, its variable parts sliced out. */
export interface RafsV5InodeRecord {
  /** Absolute offset of the 128-byte head. */
  readonly offset: number;
  readonly inode: RafsV5Inode;
  /** i_name_size bytes after the head (root: "/"). */
  readonly name: Uint8Array;
  /** Symlink target (i_symlink_size bytes), empty when none. */
  readonly symlink: Uint8Array;
  /** Decoded xattrs (empty unless i_flags has XATTR). */
  readonly xattrs: Map<string, Uint8Array>;
  /** Absolute offset of the first chunk record (meaningful for regular files). */
  readonly chunksOffset: number;
  /** Number of chunk records: i_child_count for regular files, else 0. */
  readonly chunkCount: number;
  /** Absolute offset just past the record. */
  readonly end: number;
}

/**
 * Decodes the inode record at absolute `offset`, checking that name, symlink target, xattr
 * table and (for regular files) `i_child_count` chunk records all lie inside `bytes`.
 * @throws FormatError naming the part that does not fit
 */
export function decodeRafsV5InodeRecord(bytes: Uint8Array, offset: number): RafsV5InodeRecord {
  const inode = decodeRafsV5Inode(bytes, offset);
  const r = new StructReader("RafsV5Inode", bytes, 0);
  const nameOff = offset + RAFSV5_INODE_SIZE;
  const name = r.slice("name", nameOff, rafsV5Align(inode.nameSize)).subarray(0, inode.nameSize);
  const linkOff = nameOff + rafsV5Align(inode.nameSize);
  const symlink = r.slice("symlink", linkOff, rafsV5Align(inode.symlinkSize)).subarray(0, inode.symlinkSize);
  let pos = linkOff + rafsV5Align(inode.symlinkSize);
  let xattrs = new Map<string, Uint8Array>();
  if (inode.flags & RAFSV5_INODE_FLAG_XATTR) {
    const t = decodeXattrTable(bytes, pos);
    xattrs = t.xattrs;
    pos += t.onDiskSize;
  }
  const isReg = (inode.mode & 0o170000) === 0o100000;
  const chunkCount = isReg ? inode.childCount : 0;
  // Chunk records are decoded lazily by the reader; only their extent is checked here.
  if (chunkCount > (bytes.length - pos) / CHUNK_RECORD_SIZE) {
    r.fail("i_child_count", offset + 96, `${chunkCount} chunk records at ${pos} run past the end of the file (${bytes.length} bytes)`);
  }
  return { offset, inode, name, symlink, xattrs, chunksOffset: pos, chunkCount, end: pos + chunkCount * CHUNK_RECORD_SIZE };
}

/** The parts of an inode record for {@link encodeRafsV5InodeRecord}. */
export interface RafsV5InodeRecordParts {
  readonly inode: RafsV5Inode;
  readonly name: Uint8Array;
  readonly symlink?: Uint8Array;
  /** Written (with the table header) only when i_flags has XATTR. */
  readonly xattrs?: Iterable<readonly [string, Uint8Array]>;
  /** Encoded chunk records (80 bytes each) appended after the xattr table. */
  readonly chunks?: readonly Uint8Array[];
}

/**
 * Encodes a whole inode record: head, name and symlink target (each zero-padded to 8),
 * the xattr table when i_flags has XATTR, then the chunk records.
 * @throws RangeError when `name`/`symlink` lengths disagree with i_name_size/i_symlink_size
 */
export function encodeRafsV5InodeRecord(parts: RafsV5InodeRecordParts): Uint8Array {
  const { inode } = parts;
  const symlink = parts.symlink ?? new Uint8Array(0);
  if (parts.name.length !== inode.nameSize || symlink.length !== inode.symlinkSize) {
    throw new RangeError("Cannot encode RafsV5Inode record: name/symlink lengths differ from i_name_size/i_symlink_size");
  }
  const xattrs = inode.flags & RAFSV5_INODE_FLAG_XATTR ? encodeXattrTable(parts.xattrs ?? []) : new Uint8Array(0);
  const chunks = parts.chunks ?? [];
  const nameLen = rafsV5Align(parts.name.length);
  const linkLen = rafsV5Align(symlink.length);
  const total = RAFSV5_INODE_SIZE + nameLen + linkLen + xattrs.length + chunks.length * CHUNK_RECORD_SIZE;
  const w = new StructWriter(total)
    .set(0, encodeRafsV5Inode(inode))
    .set(RAFSV5_INODE_SIZE, parts.name)
    .set(RAFSV5_INODE_SIZE + nameLen, symlink)
    .set(RAFSV5_INODE_SIZE + nameLen + linkLen, xattrs);
  let pos = RAFSV5_INODE_SIZE + nameLen + linkLen + xattrs.length;
  for (const c of chunks) {
    if (c.length !== CHUNK_RECORD_SIZE) throw new RangeError(`Cannot encode RafsV5Inode record: chunk record has ${c.length} bytes, expected 80`);
    w.set(pos, c);
    pos += CHUNK_RECORD_SIZE;
  }
  return w.bytes;
}
