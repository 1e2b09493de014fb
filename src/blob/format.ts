/**
 * On-disk structures of a RAFS v6 data blob (spec §4): compression-context ("ci") entries,
 * the 4096-byte `BlobCompressionContextHeader`, ToC entries, and the 512-byte GNU tar headers
 * that separate blob sections; plus the BlobFeatures (§2.6) constants (chunk-flag bits, §2.7, live in rafs/chunk_record.ts).
 *
 * Every decoder is bounds-checked and throws only {@link FormatError} (struct, field, absolute
 * offset). Encoders take trusted values and throw `RangeError` for values that do not fit.
 * `encode(decode(x))` reproduces `x` byte for byte: reserved areas are kept on decode.
 */
import { StructReader, StructWriter } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";

// ---------------------------------------------------------------------------------------------
// BlobFeatures (u32), spec §2.6
// ---------------------------------------------------------------------------------------------

/** Uncompressed chunk offsets are 4 KiB aligned; mandatory in v6 non-tarfs blobs (§2.6). */
export const BLOB_FEATURE_ALIGNED = 0x0000_0001;
/** The bootstrap is embedded in the data blob (`--blob-inline-meta`) (§2.6). */
export const BLOB_FEATURE_INLINED_FS_META = 0x0000_0002;
/** The ci table uses 24-byte V2 entries instead of 16-byte V1 (§2.6, §4.3). */
export const BLOB_FEATURE_CHUNK_INFO_V2 = 0x0000_0004;
/** Chunks reference a gzip stream through zran contexts (targz-ref) (§2.6). */
export const BLOB_FEATURE_ZRAN = 0x0000_0008;
/** Blob meta lives in a separate "RAFS blob" (reference conversions) (§2.6). */
export const BLOB_FEATURE_SEPARATE = 0x0000_0010;
/** The blob carries a chunk-digest array `blob.digest` (§2.6, §4.5). */
export const BLOB_FEATURE_INLINED_CHUNK_DIGEST = 0x0000_0020;
/** tarfs-mode blob (§2.6, §4.11). */
export const BLOB_FEATURE_TARFS = 0x0000_0040;
/** Small chunks merged into batch chunks (§2.6). */
export const BLOB_FEATURE_BATCH = 0x0000_0080;
/** Chunk data encrypted (§2.6, §4.12). */
export const BLOB_FEATURE_ENCRYPTED = 0x0000_0100;
/** Blob produced by the chunk-dict generator (§2.6). */
export const BLOB_FEATURE_IS_CHUNKDICT_GENERATED = 0x0000_0200;
/** Runtime-only flag (§2.6). */
export const BLOB_FEATURE_IS_SEPARATED_WITH_PREFETCH_FILES = 0x0000_0400;
/** Chunks live in an external storage backend (§2.6). */
export const BLOB_FEATURE_EXTERNAL = 0x0000_0800;
/** 512-byte tar headers separate the blob sections (§2.6, §4.6). */
export const BLOB_FEATURE_HAS_TAR_HEADER = 0x1000_0000;
/** A ToC (`rafs.blob.toc`) ends the blob (§2.6, §4.7). */
export const BLOB_FEATURE_HAS_TOC = 0x2000_0000;
/** "Built by nydus-image >= 2.2"; always set by the current builder (§2.6). */
export const BLOB_FEATURE_CAP_TAR_TOC = 0x4000_0000;
/** Internal only, never valid on disk; readers reject it (§2.6). */
export const BLOB_FEATURE_V5_NO_EXT_BLOB_TABLE = 0x8000_0000;
/** Bits that must be zero in an on-disk feature word (`device.rs:102-116`, §2.6). */
export const BLOB_FEATURES_INVALID_MASK = 0x8000_f000;
/** Features of a default `nydus-image create` v6 blob: CAP_TAR_TOC | ALIGNED (§4.4). */
export const BLOB_FEATURES_DEFAULT = 0x4000_0001;
/** Features of a `--features blob-toc` blob: + HAS_TOC | HAS_TAR_HEADER | INLINED_CHUNK_DIGEST (§4.4). */
export const BLOB_FEATURES_BLOB_TOC = 0x7000_0021;

/** True when `features` (u32) has every bit of `bit`. Safe for bit 31 (no signed `&` result leaks). */
export function hasFeature(features: number, bit: number): boolean {
  return ((features & bit) >>> 0) === bit >>> 0;
}

// ---------------------------------------------------------------------------------------------
// ci entries, spec §4.3
// ---------------------------------------------------------------------------------------------

/** Size of a V1 ci entry (§4.3). */
export const CI_V1_ENTRY_SIZE = 16;
/** Size of a V2 ci entry (§4.3). */
export const CI_V2_ENTRY_SIZE = 24;
/** V2 flag byte: stored bytes are compressed (§4.3). */
export const CI_V2_FLAG_COMPRESSED = 0x01;
/** V2 flag byte: chunk lives in a zran (gzip) context (§4.3). */
export const CI_V2_FLAG_ZRAN = 0x02;
/** V2 flag byte: batch chunk (§4.3). */
export const CI_V2_FLAG_BATCH = 0x04;
/** V2 flag byte: encrypted (§4.3). */
export const CI_V2_FLAG_ENCRYPTED = 0x08;
/** V2 flag byte: `data` bits 0..31 hold CRC-32C (§4.3). */
export const CI_V2_FLAG_HAS_CRC32 = 0x10;
/** Largest chunk size a ci entry can describe: sizes are 24-bit `size - 1` (§4.3). */
export const CI_MAX_CHUNK_SIZE = 1 << 24;

/** One decoded ci entry (V1 or V2). */
export interface CiEntry {
  /** Offset in the uncompressed blob view (4096-aligned). */
  readonly uncompressedOffset: number;
  readonly uncompressedSize: number;
  /** Offset of the stored bytes in the blob file. */
  readonly compressedOffset: number;
  readonly compressedSize: number;
  /** V1: inferred as `compressedSize != uncompressedSize`; V2: the COMPRESSED flag. */
  readonly compressed: boolean;
  /** V2 flag byte (`CI_V2_FLAG_*`); 0 for V1. */
  readonly flags: number;
  /** V2 `data` word (CRC-32C, zran or batch context); 0n for V1. */
  readonly data: bigint;
  /** V1 bits 0..7 of `uncomp_info` (reserved, normally 0), kept for byte-exact re-encoding; 0 for V2. */
  readonly reserved: number;
}

/** Fields needed to encode a ci entry. */
export interface CiEntryInit {
  uncompressedOffset: number;
  uncompressedSize: number;
  compressedOffset: number;
  compressedSize: number;
  /** V2 flag byte (ignored by V1, whose "compressed" is inferred from the sizes). */
  flags?: number;
  /** V2 `data` word. */
  data?: bigint;
  /** V1 reserved bits 0..7. */
  reserved?: number;
}

const MASK20 = 0xf_ffffn;
const MASK40 = 0xff_ffff_ffffn;

/**
 * Decodes a 16-byte V1 ci entry (§4.3).
 * @param bytes at least 16 bytes; the entry is `bytes[0..16)`
 * @param absOffset absolute offset of `bytes[0]`, for errors
 */
export function decodeCiEntryV1(bytes: Uint8Array, absOffset = 0): CiEntry {
  const r = new StructReader("BlobChunkInfoV1", bytes, absOffset, CI_V1_ENTRY_SIZE);
  const u = r.u64big("uncomp_info", 0);
  const c = r.u64big("comp_info", 8);
  const uncompressedSize = Number(((u >> 44n) & MASK20) | (((u >> 8n) & 0xfn) << 20n)) + 1;
  const uncompressedOffset = Number(u & 0xfff_ffff_f000n);
  const compressedSize = Number(((c >> 44n) & MASK20) | (((c >> 40n) & 0xfn) << 20n)) + 1;
  const compressedOffset = Number(c & MASK40);
  return {
    uncompressedOffset,
    uncompressedSize,
    compressedOffset,
    compressedSize,
    compressed: compressedSize !== uncompressedSize,
    flags: 0,
    data: 0n,
    reserved: Number(u & 0xffn),
  };
}

function checkSize(field: string, v: number, max: number): bigint {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`Cannot encode ${field} ${v}: expected 1..${max}`);
  return BigInt(v - 1);
}
function checkUint(field: string, v: number, limit: bigint): bigint {
  if (!Number.isSafeInteger(v) || v < 0 || BigInt(v) >= limit) {
    throw new RangeError(`Cannot encode ${field} ${v}: expected 0..${limit - 1n}`);
  }
  return BigInt(v);
}

/** Encodes a 16-byte V1 ci entry (§4.3). Throws RangeError for unaligned offsets or sizes out of 1..2^24. */
export function encodeCiEntryV1(e: CiEntryInit, into?: Uint8Array): Uint8Array {
  const us = checkSize("uncompressed_size", e.uncompressedSize, CI_MAX_CHUNK_SIZE);
  const cs = checkSize("compressed_size", e.compressedSize, CI_MAX_CHUNK_SIZE);
  const uo = checkUint("uncompressed_offset", e.uncompressedOffset, 1n << 44n);
  if ((uo & 0xfffn) !== 0n) throw new RangeError(`Cannot encode uncompressed_offset ${e.uncompressedOffset}: not 4096-aligned`);
  const co = checkUint("compressed_offset", e.compressedOffset, 1n << 40n);
  const rsv = checkUint("reserved", e.reserved ?? 0, 256n);
  const u = ((us & MASK20) << 44n) | uo | ((us >> 20n) << 8n) | rsv;
  const c = ((cs & MASK20) << 44n) | ((cs >> 20n) << 40n) | co;
  return new StructWriter(CI_V1_ENTRY_SIZE, into).u64(0, u).u64(8, c).bytes;
}

/** Decodes a 24-byte V2 ci entry (§4.3). */
export function decodeCiEntryV2(bytes: Uint8Array, absOffset = 0): CiEntry {
  const r = new StructReader("BlobChunkInfoV2", bytes, absOffset, CI_V2_ENTRY_SIZE);
  const u = r.u64big("uncomp_info", 0);
  const c = r.u64big("comp_info", 8);
  const data = r.u64big("data", 16);
  const flags = Number(u >> 56n);
  return {
    uncompressedOffset: Number(u & 0xffff_ffffn) * 4096,
    uncompressedSize: Number((u >> 32n) & 0xff_ffffn) + 1,
    compressedOffset: Number(c & MASK40),
    compressedSize: Number(c >> 40n),
    compressed: (flags & CI_V2_FLAG_COMPRESSED) !== 0,
    flags,
    data,
    reserved: 0,
  };
}

/** Encodes a 24-byte V2 ci entry (§4.3). `compressedSize` is stored as is (0..2^24-1). */
export function encodeCiEntryV2(e: CiEntryInit, into?: Uint8Array): Uint8Array {
  const uo = checkUint("uncompressed_offset", e.uncompressedOffset, 1n << 44n);
  if ((uo & 0xfffn) !== 0n) throw new RangeError(`Cannot encode uncompressed_offset ${e.uncompressedOffset}: not 4096-aligned`);
  const us = checkSize("uncompressed_size", e.uncompressedSize, CI_MAX_CHUNK_SIZE);
  const flags = checkUint("flags", e.flags ?? 0, 256n);
  const co = checkUint("compressed_offset", e.compressedOffset, 1n << 40n);
  const cs = checkUint("compressed_size", e.compressedSize, 1n << 24n);
  const data = e.data ?? 0n;
  if (data < 0n || data >= 1n << 64n) throw new RangeError(`Cannot encode data ${data}: not a u64`);
  const u = (flags << 56n) | (us << 32n) | (uo >> 12n);
  const c = (cs << 40n) | co;
  return new StructWriter(CI_V2_ENTRY_SIZE, into).u64(0, u).u64(8, c).u64(16, data).bytes;
}

/**
 * Decodes `count` consecutive ci entries from a plain (decompressed) ci table.
 * @param absOffset absolute offset reported for `table[0]` (the table's plain position)
 */
export function decodeCiTable(table: Uint8Array, count: number, v2: boolean, absOffset = 0): CiEntry[] {
  const size = v2 ? CI_V2_ENTRY_SIZE : CI_V1_ENTRY_SIZE;
  if (!Number.isSafeInteger(count) || count < 0 || count * size > table.length) {
    throw new FormatError("BlobChunkInfoTable", "(size)", absOffset, `need ${count} entries of ${size} bytes, have ${table.length} bytes`);
  }
  const out: CiEntry[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const b = table.subarray(i * size, (i + 1) * size);
    out[i] = v2 ? decodeCiEntryV2(b, absOffset + i * size) : decodeCiEntryV1(b, absOffset + i * size);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// BlobCompressionContextHeader, spec §4.4
// ---------------------------------------------------------------------------------------------

/** Size of `BlobCompressionContextHeader` (§4.4). */
export const BLOB_META_HEADER_SIZE = 4096;
/** `s_magic` and `s_magic2` of the header (§4.4). */
export const BLOB_META_MAGIC = 0xb10bb10b;

/** Decoded `BlobCompressionContextHeader` (§4.4). */
export interface BlobMetaHeader {
  /** BlobFeatures of this blob (§2.6). */
  readonly features: number;
  /** §2.1 compression id actually used for the ci table. */
  readonly ciCompressor: number;
  readonly ciEntries: number;
  readonly ciOffset: number;
  readonly ciCompressedSize: number;
  readonly ciUncompressedSize: number;
  readonly ciZranOffset: number;
  readonly ciZranSize: number;
  readonly ciZranCount: number;
  /** The 4032 reserved bytes (60..4092) when not all zero; absent means zeros. */
  readonly reserved?: Uint8Array;
}

/** Decodes the 4096-byte header; checks both magics. */
export function decodeBlobMetaHeader(bytes: Uint8Array, absOffset = 0): BlobMetaHeader {
  const r = new StructReader("BlobCompressionContextHeader", bytes, absOffset, BLOB_META_HEADER_SIZE);
  const magic = r.u32("s_magic", 0);
  if (magic !== BLOB_META_MAGIC) r.fail("s_magic", 0, `expected 0xb10bb10b, found 0x${magic.toString(16)}`);
  const magic2 = r.u32("s_magic2", 4092);
  if (magic2 !== BLOB_META_MAGIC) r.fail("s_magic2", 4092, `expected 0xb10bb10b, found 0x${magic2.toString(16)}`);
  const reserved = r.slice("s_reserved", 60, 4032);
  return {
    features: r.u32("s_features", 4),
    ciCompressor: r.u32("s_ci_compressor", 8),
    ciEntries: r.u32("s_ci_entries", 12),
    ciOffset: r.u64("s_ci_offset", 16),
    ciCompressedSize: r.u64("s_ci_compressed_size", 24),
    ciUncompressedSize: r.u64("s_ci_uncompressed_size", 32),
    ciZranOffset: r.u64("s_ci_zran_offset", 40),
    ciZranSize: r.u64("s_ci_zran_size", 48),
    ciZranCount: r.u32("s_ci_zran_count", 56),
    ...(reserved.some((b) => b !== 0) ? { reserved: reserved.slice() } : {}),
  };
}

/** Encodes the 4096-byte header (§4.4). */
export function encodeBlobMetaHeader(h: BlobMetaHeader): Uint8Array {
  const w = new StructWriter(BLOB_META_HEADER_SIZE);
  w.u32(0, BLOB_META_MAGIC)
    .u32(4, h.features)
    .u32(8, h.ciCompressor)
    .u32(12, h.ciEntries)
    .u64(16, h.ciOffset)
    .u64(24, h.ciCompressedSize)
    .u64(32, h.ciUncompressedSize)
    .u64(40, h.ciZranOffset)
    .u64(48, h.ciZranSize)
    .u32(56, h.ciZranCount)
    .u32(4092, BLOB_META_MAGIC);
  if (h.reserved) {
    if (h.reserved.length !== 4032) throw new RangeError(`Cannot encode s_reserved: expected 4032 bytes, have ${h.reserved.length}`);
    w.set(60, h.reserved);
  }
  return w.bytes;
}

// ---------------------------------------------------------------------------------------------
// ToC, spec §4.7
// ---------------------------------------------------------------------------------------------

/** Size of one `TocEntry` (§4.7). */
export const TOC_ENTRY_SIZE = 128;
/** ToC entry flag: section stored uncompressed (§4.7). */
export const TOC_FLAG_COMPRESSION_NONE = 0x1;
/** ToC entry flag: section is one zstd frame (§4.7). */
export const TOC_FLAG_COMPRESSION_ZSTD = 0x2;
/** ToC entry flag: section is a raw lz4 block (§4.7). */
export const TOC_FLAG_COMPRESSION_LZ4_BLOCK = 0x4;
/** Mask of the compression bits; every other flag bit is invalid (`toc.rs` `from_bits`) (§4.7). */
export const TOC_FLAG_COMPRESSION_MASK = 0xf;
/** ToC / tar name of the chunk-data section (§4.6, §4.7). */
export const TOC_NAME_BLOB_RAW = "image.blob";
/** ToC / tar name of an inlined bootstrap (§4.6, §4.7). */
export const TOC_NAME_BOOTSTRAP = "image.boot";
/** ToC / tar name of the ci table (§4.6, §4.7). */
export const TOC_NAME_BLOB_META = "blob.meta";
/** ToC name of the ci header (§4.7). */
export const TOC_NAME_BLOB_META_HEADER = "blob.meta.header";
/** ToC / tar name of the chunk-digest array (§4.5, §4.7). */
export const TOC_NAME_BLOB_DIGEST = "blob.digest";
/** Tar name of the ToC itself (§4.7). */
export const TOC_NAME_BLOB_TOC = "rafs.blob.toc";

/** Decoded `TocEntry` (§4.7). */
export interface TocEntry {
  /** TOC_FLAG_COMPRESSION_* (exactly one). */
  readonly flags: number;
  /** Section name (≤ 16 bytes). */
  readonly name: string;
  /** SHA-256 of the uncompressed section (32 bytes). */
  readonly digest: Uint8Array;
  readonly compressedOffset: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  /** reserved1 (bytes 4..8) when non-zero. */
  readonly reserved1?: number;
  /** reserved2 (bytes 80..128) when not all zero (older builders left stray bytes there, §12). */
  readonly reserved2?: Uint8Array;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Enc = new TextEncoder();

/** Decodes a 128-byte ToC entry; validates flags and the NUL-padded name. */
export function decodeTocEntry(bytes: Uint8Array, absOffset = 0): TocEntry {
  const r = new StructReader("TocEntry", bytes, absOffset, TOC_ENTRY_SIZE);
  const flags = r.u32("flags", 0);
  const algo = flags & TOC_FLAG_COMPRESSION_MASK;
  if (flags !== algo || (algo !== 1 && algo !== 2 && algo !== 4)) r.fail("flags", 0, `unknown compression flags 0x${flags.toString(16)}`);
  const reserved1 = r.u32("reserved1", 4);
  const nameBytes = r.slice("name", 8, 16);
  const nul = nameBytes.indexOf(0);
  const nameEnd = nul < 0 ? 16 : nul;
  if (nameBytes.subarray(nameEnd).some((b) => b !== 0)) r.fail("name", 8 + nameEnd, "non-zero bytes after the terminating NUL");
  let name: string;
  try {
    name = utf8.decode(nameBytes.subarray(0, nameEnd));
  } catch (cause) {
    throw new FormatError("TocEntry", "name", absOffset + 8, "not valid UTF-8", { cause });
  }
  const reserved2 = r.slice("reserved2", 80, 48);
  return {
    flags,
    name,
    digest: r.slice("uncompressed_digest", 24, 32).slice(),
    compressedOffset: r.u64("compressed_offset", 56),
    compressedSize: r.u64("compressed_size", 64),
    uncompressedSize: r.u64("uncompressed_size", 72),
    ...(reserved1 !== 0 ? { reserved1 } : {}),
    ...(reserved2.some((b) => b !== 0) ? { reserved2: reserved2.slice() } : {}),
  };
}

/** Encodes a 128-byte ToC entry (§4.7). */
export function encodeTocEntry(e: TocEntry, into?: Uint8Array): Uint8Array {
  const name = utf8Enc.encode(e.name);
  if (name.length > 16) throw new RangeError(`Cannot encode ToC entry name "${e.name}": longer than 16 bytes`);
  if (e.digest.length !== 32) throw new RangeError(`Cannot encode ToC entry digest: expected 32 bytes, have ${e.digest.length}`);
  const w = new StructWriter(TOC_ENTRY_SIZE, into);
  w.u32(0, e.flags).u32(4, e.reserved1 ?? 0).set(8, name).set(24, e.digest);
  w.u64(56, e.compressedOffset).u64(64, e.compressedSize).u64(72, e.uncompressedSize);
  if (e.reserved2) {
    if (e.reserved2.length !== 48) throw new RangeError(`Cannot encode ToC reserved2: expected 48 bytes, have ${e.reserved2.length}`);
    w.set(80, e.reserved2);
  }
  return w.bytes;
}

/** Decodes the ToC data (a whole number of 128-byte entries). */
export function decodeTocList(bytes: Uint8Array, absOffset = 0): TocEntry[] {
  if (bytes.length % TOC_ENTRY_SIZE !== 0) {
    throw new FormatError("TocEntryList", "(size)", absOffset, `size ${bytes.length} is not a multiple of ${TOC_ENTRY_SIZE}`);
  }
  const out: TocEntry[] = [];
  for (let off = 0; off < bytes.length; off += TOC_ENTRY_SIZE) {
    out.push(decodeTocEntry(bytes.subarray(off, off + TOC_ENTRY_SIZE), absOffset + off));
  }
  return out;
}

/** Encodes ToC entries back to back. */
export function encodeTocList(entries: readonly TocEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * TOC_ENTRY_SIZE);
  entries.forEach((e, i) => encodeTocEntry(e, out.subarray(i * TOC_ENTRY_SIZE)));
  return out;
}

/** ToC flag for a compressor name (§4.7); throws RangeError for gzip. */
export function tocFlagForCompressor(name: "none" | "zstd" | "lz4_block" | "gzip"): number {
  switch (name) {
    case "none":
      return TOC_FLAG_COMPRESSION_NONE;
    case "zstd":
      return TOC_FLAG_COMPRESSION_ZSTD;
    case "lz4_block":
      return TOC_FLAG_COMPRESSION_LZ4_BLOCK;
    default:
      throw new RangeError(`Cannot express compressor "${name}" in a ToC entry`);
  }
}

/** Compressor name of a (decoded, hence valid) ToC entry's flags. */
export function tocEntryCompressor(flags: number): "none" | "zstd" | "lz4_block" {
  return flags === TOC_FLAG_COMPRESSION_ZSTD ? "zstd" : flags === TOC_FLAG_COMPRESSION_LZ4_BLOCK ? "lz4_block" : "none";
}

// ---------------------------------------------------------------------------------------------
// GNU tar headers, spec §4.6
// ---------------------------------------------------------------------------------------------

/** Size of a tar header (§4.6). */
export const TAR_HEADER_SIZE = 512;
const GNU_MAGIC = utf8Enc.encode("ustar  \0"); // magic "ustar " + version " \0" at 257
const OCTAL_LIMIT_11 = 8 ** 11; // 8 GiB: above it the tar crate switches to base-256

/** Fields of a blob-section tar header. */
export interface TarHeaderInfo {
  /** Entry name from bytes 0..100. */
  readonly name: string;
  /** Entry size (octal or GNU base-256). */
  readonly size: number;
}

/** Writes `value` as zero-padded octal into `dst` with a trailing NUL (tar crate `octal_into`). */
function octalInto(dst: Uint8Array, value: number): void {
  const digits = value.toString(8);
  if (digits.length > dst.length - 1) throw new RangeError(`Cannot encode ${value} in ${dst.length - 1} octal digits`);
  dst.fill(0x30, 0, dst.length - 1);
  dst.set(utf8Enc.encode(digits), dst.length - 1 - digits.length);
  dst[dst.length - 1] = 0;
}

/**
 * Encodes the 512-byte GNU tar header upstream writes after a blob section (§4.6): the
 * Rust `tar::Header::new_gnu()` + `set_path` + `set_entry_type(Regular)` + `set_size` + `set_cksum` bytes.
 */
export function encodeTarHeader(name: string, size: number): Uint8Array {
  const nameBytes = utf8Enc.encode(name);
  if (nameBytes.length === 0 || nameBytes.length > 100 || nameBytes.includes(0)) {
    throw new RangeError(`Cannot encode tar name "${name}": expected 1..100 bytes without NUL`);
  }
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Cannot encode tar size ${size}`);
  const h = new Uint8Array(TAR_HEADER_SIZE);
  h.set(nameBytes, 0);
  if (size < OCTAL_LIMIT_11) {
    octalInto(h.subarray(124, 136), size);
  } else {
    // GNU base-256: big-endian value in the field, high bit of the first byte set.
    let v = BigInt(size);
    for (let i = 135; i >= 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    h[124] |= 0x80;
  }
  octalInto(h.subarray(136, 148), 0); // mtime
  h[156] = 0x30; // typeflag '0' (regular)
  h.set(GNU_MAGIC, 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  octalInto(h.subarray(148, 156), sum);
  return h;
}

/** Parses a tar numeric field: octal (spaces/NULs trimmed) or GNU base-256. */
function parseTarNumber(r: StructReader, field: string, off: number, len: number): number {
  const f = r.slice(field, off, len);
  if (f[0]! & 0x80) {
    let v = BigInt(f[0]! & 0x7f);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(f[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(field, off, "base-256 value exceeds the safe integer range");
    return Number(v);
  }
  let s = 0;
  let e = len;
  while (s < e && f[s] === 0x20) s++;
  while (e > s && (f[e - 1] === 0 || f[e - 1] === 0x20)) e--;
  if (s === e) r.fail(field, off, "empty numeric field");
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = f[i]!;
    if (c < 0x30 || c > 0x37) r.fail(field, off + i, `invalid octal digit 0x${c.toString(16)}`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

/**
 * Parses a blob-section tar header: checks the checksum, the GNU magic ("ustar  \0") and that
 * the entry is a regular file (typeflag '0' or NUL); returns its name and size.
 */
export function decodeTarHeader(bytes: Uint8Array, absOffset = 0): TarHeaderInfo {
  const r = new StructReader("TarHeader", bytes, absOffset, TAR_HEADER_SIZE);
  const h = r.slice("(header)", 0, TAR_HEADER_SIZE);
  const want = parseTarNumber(r, "chksum", 148, 8);
  let sum = 0;
  for (let i = 0; i < TAR_HEADER_SIZE; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (sum !== want) r.fail("chksum", 148, `expected ${want}, computed ${sum}`);
  for (let i = 0; i < GNU_MAGIC.length; i++) {
    if (h[257 + i] !== GNU_MAGIC[i]) r.fail("magic", 257, "not a GNU tar header");
  }
  const type = h[156]!;
  if (type !== 0x30 && type !== 0) r.fail("typeflag", 156, `expected a regular file, found 0x${type.toString(16)}`);
  const nameField = h.subarray(0, 100);
  const nul = nameField.indexOf(0);
  let name: string;
  try {
    name = utf8.decode(nameField.subarray(0, nul < 0 ? 100 : nul));
  } catch (cause) {
    throw new FormatError("TarHeader", "name", absOffset, "not valid UTF-8", { cause });
  }
  return { name, size: parseTarNumber(r, "size", 124, 12) };
}
