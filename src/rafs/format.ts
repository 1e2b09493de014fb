/**
 * RAFS v6 structures that extend EROFS: the extended superblock (256 B at 1152),
 * the blob table (256 B per blob), the prefetch table, and the RafsSuperFlags bits.
 * Field comments cite `rafs/src/metadata/layout/v6.rs` via spec sections.
 */
import { StructReader, StructWriter } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";
import { codecById, codecByName, type CompressorName } from "../compression/codec.ts";
import { DIGESTER_ID, digesterById, type DigesterName } from "../digest/hasher.ts";
import { decodeBlobIdField, encodeBlobIdField } from "../erofs/format.ts";
import type { BlobInfo } from "./model.ts";

/** Absolute offset of the RAFS v6 extended superblock. */
export const RAFS_EXT_SUPER_OFFSET = 1152;
/** Size of the extended superblock. */
export const RAFS_EXT_SUPER_SIZE = 256;
/** Absolute offset of the device table. */
export const RAFS_DEVICE_TABLE_OFFSET = 1408;
/** Size of one blob-table entry. */
export const RAFS_BLOB_ENTRY_SIZE = 256;
/** Size of one chunk-table record. */
export const RAFS_CHUNK_RECORD_SIZE = 80;
/** Default chunk size (1 MiB). §2.9 */
export const DEFAULT_CHUNK_SIZE = 0x10_0000;
/** Smallest and largest chunk sizes. §2.9 */
export const MIN_CHUNK_SIZE = 0x1000;
export const MAX_CHUNK_SIZE = 0x100_0000;
/** Most blobs a v6 image can reference (blob index + 1 fits one byte, 255 reserved). §2.9 */
export const MAX_BLOBS = 254;
/** Most chunks per blob (24-bit index; the builder stops at 0xFF_FFFF). §2.9 */
export const MAX_CHUNKS_PER_BLOB = 0xff_ffff;
/** Mapped-blkaddr alignment of the current builder (512 KiB). §3.4 */
export const MAPPED_BLKADDR_ALIGN = 0x8_0000;

/** RafsSuperFlags bits (u64). §2.5 */
export const RafsFlags = {
  CompressionNone: 0x1n,
  CompressionLz4: 0x2n,
  HashBlake3: 0x4n,
  HashSha256: 0x8n,
  ExplicitUidGid: 0x10n,
  HasXattr: 0x20n,
  CompressionGzip: 0x40n,
  CompressionZstd: 0x80n,
  InlinedChunkDigest: 0x100n,
  TarfsMode: 0x200n,
  EncryptionNone: 0x0100_0000n,
  EncryptionAes128Xts: 0x0200_0000n,
  /** PRESERVED_COMPAT_5 … _0: accepted by readers. */
  PreservedMask: 0xfc00_0000n,
} as const;

const KNOWN_FLAGS = Object.values(RafsFlags).reduce((a, b) => a | b, 0n);
const COMPRESSION_FLAG: Record<CompressorName, bigint> = {
  none: RafsFlags.CompressionNone,
  lz4_block: RafsFlags.CompressionLz4,
  gzip: RafsFlags.CompressionGzip,
  zstd: RafsFlags.CompressionZstd,
};
const HASH_FLAG: Record<DigesterName, bigint> = { blake3: RafsFlags.HashBlake3, sha256: RafsFlags.HashSha256 };

/** Flags word for a build (spec §3.3). */
export function rafsFlags(o: {
  compressor: CompressorName;
  digester: DigesterName;
  explicitUidGid: boolean;
  hasXattr: boolean;
  inlinedChunkDigest: boolean;
}): bigint {
  let f = COMPRESSION_FLAG[o.compressor] | HASH_FLAG[o.digester] | RafsFlags.EncryptionNone;
  if (o.explicitUidGid) f |= RafsFlags.ExplicitUidGid;
  if (o.hasXattr) f |= RafsFlags.HasXattr;
  if (o.inlinedChunkDigest) f |= RafsFlags.InlinedChunkDigest;
  return f;
}

/**
 * Compressor and digester named by a flags word. Lenient like nydusd's decoder: no
 * compression bit means lz4, no hash bit means blake3 (spec §2.5). Use
 * {@link validateRafsFlags} for the strict v6 rule.
 */
export function flagsAlgorithms(flags: bigint): { compressor: CompressorName; digester: DigesterName } {
  const compressor: CompressorName =
    flags & RafsFlags.CompressionNone ? "none" : flags & RafsFlags.CompressionZstd ? "zstd" : flags & RafsFlags.CompressionGzip ? "gzip" : "lz4_block";
  const digester: DigesterName = flags & RafsFlags.HashSha256 ? "sha256" : "blake3";
  return { compressor, digester };
}

/** Throws FormatError unless all bits are known and (v6) exactly one compression and one hash bit is set. */
export function validateRafsFlags(flags: bigint, struct: string, offset: number, strictV6: boolean): void {
  if (flags & ~KNOWN_FLAGS) throw new FormatError(struct, "s_flags", offset, `unknown bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`);
  if (!strictV6) return;
  const count = (bits: bigint[]) => bits.filter((b) => (flags & b) !== 0n).length;
  if (count(Object.values(COMPRESSION_FLAG)) !== 1) throw new FormatError(struct, "s_flags", offset, `need exactly one compression bit in 0x${flags.toString(16)}`);
  if (count(Object.values(HASH_FLAG)) !== 1) throw new FormatError(struct, "s_flags", offset, `need exactly one hash bit in 0x${flags.toString(16)}`);
}

/** True when `n` is a valid chunk size (power of two, 4 KiB..16 MiB). */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

// ---------------------------------------------------------------------------
// Extended superblock

export interface ExtSuperBlock {
  flags: bigint;
  blobTableOffset: number;
  blobTableSize: number;
  chunkSize: number;
  chunkTableOffset: number;
  chunkTableSize: number;
  prefetchTableOffset: number;
  prefetchTableSize: number;
}

export function decodeExtSuperBlock(bytes: Uint8Array, baseOffset = RAFS_EXT_SUPER_OFFSET): ExtSuperBlock {
  const r = new StructReader("RafsV6SuperBlockExt", bytes, baseOffset, RAFS_EXT_SUPER_SIZE);
  return {
    flags: r.u64big("s_flags", 0),
    blobTableOffset: r.u64("s_blob_table_offset", 8),
    blobTableSize: r.u32("s_blob_table_size", 16),
    chunkSize: r.u32("s_chunk_size", 20),
    chunkTableOffset: r.u64("s_chunk_table_offset", 24),
    chunkTableSize: r.u64("s_chunk_table_size", 32),
    prefetchTableOffset: r.u64("s_prefetch_table_offset", 40),
    prefetchTableSize: r.u32("s_prefetch_table_size", 48),
  };
}

export function encodeExtSuperBlock(e: ExtSuperBlock, into?: Uint8Array): Uint8Array {
  return new StructWriter(RAFS_EXT_SUPER_SIZE, into)
    .u64(0, e.flags)
    .u64(8, e.blobTableOffset)
    .u32(16, e.blobTableSize)
    .u32(20, e.chunkSize)
    .u64(24, e.chunkTableOffset)
    .u64(32, e.chunkTableSize)
    .u64(40, e.prefetchTableOffset)
    .u32(48, e.prefetchTableSize).bytes;
}

/** nydusd's extended-superblock rules (spec §3.3). */
export function validateExtSuperBlock(e: ExtSuperBlock, fileSize: number): void {
  const base = RAFS_EXT_SUPER_OFFSET;
  const fail = (field: string, off: number, detail: string): never => {
    throw new FormatError("RafsV6SuperBlockExt", field, base + off, detail);
  };
  validateRafsFlags(e.flags, "RafsV6SuperBlockExt", base, true);
  if (!isValidChunkSize(e.chunkSize)) fail("s_chunk_size", 20, `${e.chunkSize} is not a power of two in 4096..16777216`);
  const bt = e.blobTableOffset;
  if (bt % 4096 !== 0 || bt < 4096 || e.blobTableSize % RAFS_BLOB_ENTRY_SIZE !== 0 || bt + e.blobTableSize > fileSize) {
    fail("s_blob_table_offset", 8, `blob table ${bt}+${e.blobTableSize} is misaligned or outside the ${fileSize}-byte image`);
  }
  if (e.chunkTableSize > 0) {
    const ct = e.chunkTableOffset;
    if (ct % 4096 !== 0 || ct < 4096 || e.chunkTableSize % RAFS_CHUNK_RECORD_SIZE !== 0 || ct + e.chunkTableSize > fileSize) {
      fail("s_chunk_table_offset", 24, `chunk table ${ct}+${e.chunkTableSize} is misaligned or outside the ${fileSize}-byte image`);
    }
    if (ct < bt + e.blobTableSize && bt < ct + e.chunkTableSize) fail("s_chunk_table_offset", 24, "chunk table overlaps the blob table");
  }
  if (e.prefetchTableSize > 0 && e.prefetchTableOffset !== 0) {
    const pt = e.prefetchTableOffset;
    if (pt < 4096 || e.prefetchTableSize % 4 !== 0 || pt + e.prefetchTableSize > fileSize) {
      fail("s_prefetch_table_offset", 40, `prefetch table ${pt}+${e.prefetchTableSize} is outside the image`);
    }
    const overlaps = (o: number, s: number) => pt < o + s && o < pt + e.prefetchTableSize;
    if (overlaps(bt, e.blobTableSize) || (e.chunkTableSize > 0 && overlaps(e.chunkTableOffset, e.chunkTableSize))) {
      fail("s_prefetch_table_offset", 40, "prefetch table overlaps the blob or chunk table");
    }
  }
}

// ---------------------------------------------------------------------------
// Blob table entry (256 bytes)

/** A decoded blob-table entry: BlobInfo plus the fields only a round trip needs. */
export interface BlobEntry extends BlobInfo {
  blobIndex: number;
  /** Raw algorithm ids as stored (kept for exact re-encoding). */
  blobMetaDigest: Uint8Array;
  blobMetaSize: number;
  cipherIv: Uint8Array;
  cipherAlgo: number;
}

export function decodeBlobEntry(bytes: Uint8Array, baseOffset: number): BlobEntry {
  const r = new StructReader("RafsV6Blob", bytes, baseOffset, RAFS_BLOB_ENTRY_SIZE);
  const blobId = decodeBlobIdField(r, r.slice("blob_id", 0, 64), 0);
  const algo = (field: string, off: number): CompressorName => {
    const c = codecById(r.u32(field, off));
    if (!c) r.fail(field, off, `unknown compressor id ${r.u32(field, off)}`);
    return c!.name;
  };
  const digestId = r.u32("digest_algo", 80);
  const digester = digesterById(digestId);
  if (!digester) r.fail("digest_algo", 80, `unknown digester id ${digestId}`);
  return {
    blobId,
    blobIndex: r.u32("blob_index", 64),
    chunkSize: r.u32("chunk_size", 68),
    chunkCount: r.u32("chunk_count", 72),
    compressor: algo("compression_algo", 76),
    digester: digester!,
    features: r.u32("features", 84),
    compressedSize: r.u64("compressed_size", 88),
    uncompressedSize: r.u64("uncompressed_size", 96),
    tocSize: r.u32("blob_toc_size", 104),
    ciCompressor: algo("ci_compressor", 108),
    ciOffset: r.u64("ci_offset", 112),
    ciCompressedSize: r.u64("ci_compressed_size", 120),
    ciUncompressedSize: r.u64("ci_uncompressed_size", 128),
    tocDigest: r.slice("blob_toc_digest", 136, 32).slice(),
    blobMetaDigest: r.slice("blob_meta_digest", 168, 32).slice(),
    blobMetaSize: r.u64("blob_meta_size", 200),
    cipherIv: r.slice("cipher_iv", 208, 8).slice(),
    cipherAlgo: r.u32("cipher_algo", 216),
  };
}

export function encodeBlobEntry(b: BlobInfo & Partial<BlobEntry> & { blobIndex: number }, into?: Uint8Array): Uint8Array {
  return new StructWriter(RAFS_BLOB_ENTRY_SIZE, into)
    .set(0, encodeBlobIdField(b.blobId))
    .u32(64, b.blobIndex)
    .u32(68, b.chunkSize)
    .u32(72, b.chunkCount)
    .u32(76, codecByName(b.compressor).id)
    .u32(80, DIGESTER_ID[b.digester])
    .u32(84, b.features)
    .u64(88, b.compressedSize)
    .u64(96, b.uncompressedSize)
    .u32(104, b.tocSize)
    .u32(108, codecByName(b.ciCompressor).id)
    .u64(112, b.ciOffset)
    .u64(120, b.ciCompressedSize)
    .u64(128, b.ciUncompressedSize)
    .set(136, b.tocDigest.length ? b.tocDigest.subarray(0, 32) : new Uint8Array(32))
    .set(168, b.blobMetaDigest ?? new Uint8Array(32))
    .u64(200, b.blobMetaSize ?? 0)
    .set(208, b.cipherIv ?? new Uint8Array(8))
    .u32(216, b.cipherAlgo ?? 0).bytes;
}

// ---------------------------------------------------------------------------
// Prefetch table: u32 nids, a 0 entry ends it.

export function decodePrefetchTable(bytes: Uint8Array, baseOffset: number): number[] {
  const r = new StructReader("RafsV6PrefetchTable", bytes, baseOffset);
  const out: number[] = [];
  for (let off = 0; off + 4 <= bytes.length; off += 4) {
    const nid = r.u32("nid", off);
    if (nid === 0) break;
    out.push(nid);
  }
  return out;
}

export function encodePrefetchTable(nids: readonly number[]): Uint8Array {
  const w = new StructWriter(nids.length * 4);
  nids.forEach((n, i) => w.u32(i * 4, n));
  return w.bytes;
}
