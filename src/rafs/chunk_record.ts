/**
 * The 80-byte chunk record `RafsV5ChunkInfo` (spec §3.13, §5.7; nydus `layout/v5.rs`
 * `RafsV5ChunkInfo`). RAFS v5 stores these after each regular-file inode; RAFS v6 uses the
 * same record in its chunk table.
 *
 * ```
 * off size field
 *   0   32 block_id            chunk digest over the uncompressed bytes (§6)
 *  32    4 blob_index          0-based index in the blob table
 *  36    4 flags               BlobChunkFlags (§2.7)
 *  40    4 compressed_size     stored bytes in the blob
 *  44    4 uncompressed_size   plain bytes
 *  48    8 compressed_offset   offset of the stored bytes in the blob file
 *  56    8 uncompressed_offset offset in the uncompressed blob-cache view
 *  64    8 file_offset         offset of this chunk in (a) file using it
 *  72    4 index               ci_index: position in the blob's chunk table
 *  76    4 crc32               CRC-32C of the plain bytes when HAS_CRC32, else reserved (0)
 * ```
 */
import { StructReader } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";
import type { ChunkInfo } from "./model.ts";

/** Encoded size of one chunk record in bytes. */
export const CHUNK_RECORD_SIZE = 80;
/** Length of `block_id`. */
export const CHUNK_DIGEST_SIZE = 32;

/** BlobChunkFlags (spec §2.7, nydus `storage/src/device.rs`). */
export const CHUNK_FLAG_COMPRESSED = 0x01;
export const CHUNK_FLAG_HOLECHUNK = 0x02;
export const CHUNK_FLAG_ENCRYPTED = 0x04;
export const CHUNK_FLAG_BATCH = 0x08;
export const CHUNK_FLAG_HAS_CRC32 = 0x10;

/** A decoded chunk record; every field as stored (no interpretation). */
export interface ChunkRecord {
  /** block_id: 32-byte chunk digest. */
  readonly blockId: Uint8Array;
  readonly blobIndex: number;
  /** BlobChunkFlags bits as stored (unknown bits preserved). */
  readonly flags: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly compressedOffset: number;
  readonly uncompressedOffset: number;
  readonly fileOffset: number;
  /** ci_index in the blob. */
  readonly index: number;
  /** CRC-32C when HAS_CRC32 is set; the reserved u32 otherwise. */
  readonly crc32: number;
}

/**
 * Decodes the chunk record at `offset` of `bytes`.
 *
 * @param bytes the containing buffer (normally the whole bootstrap, so offsets in errors are absolute)
 * @param offset byte offset of the record in `bytes`
 * @returns the record; `blockId` is a copy
 * @throws FormatError when the record runs past `bytes` or a u64 field exceeds 2^53-1;
 *   RangeError when `offset` is negative or not an integer
 * @example
 * const rec = decodeChunkRecord(bootstrap, 0x4000);
 * rec.compressedSize; // bytes to read at rec.compressedOffset of blob rec.blobIndex
 */
export function decodeChunkRecord(bytes: Uint8Array, offset = 0): ChunkRecord {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Cannot decode chunk record: offset ${offset} is not a non-negative integer`);
  }
  if (offset + CHUNK_RECORD_SIZE > bytes.length) {
    // Throws the FormatError that names the truncated record.
    new StructReader("RafsV5ChunkInfo", bytes.subarray(Math.min(offset, bytes.length)), offset, CHUNK_RECORD_SIZE);
  }
  // Read straight from one view: bootstraps hold tens of thousands of these records.
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, CHUNK_RECORD_SIZE);
  return {
    blockId: bytes.slice(offset, offset + CHUNK_DIGEST_SIZE),
    blobIndex: v.getUint32(32, true),
    flags: v.getUint32(36, true),
    compressedSize: v.getUint32(40, true),
    uncompressedSize: v.getUint32(44, true),
    compressedOffset: safeU64(v, 48, "compressed_offset", offset),
    uncompressedOffset: safeU64(v, 56, "uncompressed_offset", offset),
    fileOffset: safeU64(v, 64, "file_offset", offset),
    index: v.getUint32(72, true),
    crc32: v.getUint32(76, true),
  };
}

/** A little-endian u64 field of a record as a safe integer. @throws FormatError above 2^53-1 */
function safeU64(v: DataView, at: number, field: string, base: number): number {
  const hi = v.getUint32(at + 4, true);
  if (hi > 0x1f_ffff) {
    throw new FormatError("RafsV5ChunkInfo", field, base + at, `value ${v.getBigUint64(at, true)} exceeds the safe integer range`);
  }
  return hi * 2 ** 32 + v.getUint32(at, true);
}

/**
 * Encodes a chunk record into 80 bytes (or into `into` at its start).
 * @throws RangeError when `blockId` is not 32 bytes or a field is out of its range
 * @example
 * const bytes = encodeChunkRecord(decodeChunkRecord(bootstrap, off)); // equals bootstrap[off, off+80)
 */
export function encodeChunkRecord(rec: ChunkRecord, into?: Uint8Array): Uint8Array {
  if (rec.blockId.length !== CHUNK_DIGEST_SIZE) {
    throw new RangeError(`Cannot encode chunk record: block_id has ${rec.blockId.length} bytes, expected 32`);
  }
  const out = into ?? new Uint8Array(CHUNK_RECORD_SIZE);
  if (out.length < CHUNK_RECORD_SIZE) throw new RangeError(`Cannot encode: target buffer has ${out.length} bytes, need ${CHUNK_RECORD_SIZE}`);
  // Plain DataView writes: a merged bootstrap writes tens of thousands of these.
  const v = new DataView(out.buffer, out.byteOffset, CHUNK_RECORD_SIZE);
  out.set(rec.blockId, 0);
  putU32(v, 32, rec.blobIndex, "blobIndex");
  putU32(v, 36, rec.flags, "flags");
  putU32(v, 40, rec.compressedSize, "compressedSize");
  putU32(v, 44, rec.uncompressedSize, "uncompressedSize");
  putU64(v, 48, rec.compressedOffset, "compressedOffset");
  putU64(v, 56, rec.uncompressedOffset, "uncompressedOffset");
  putU64(v, 64, rec.fileOffset, "fileOffset");
  putU32(v, 72, rec.index, "index");
  putU32(v, 76, rec.crc32, "crc32");
  return into ? out.subarray(0, CHUNK_RECORD_SIZE) : out;
}

function putU32(v: DataView, at: number, value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new RangeError(`Cannot encode chunk record: ${name} ${value} is not a u32`);
  v.setUint32(at, value, true);
}

function putU64(v: DataView, at: number, value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`Cannot encode chunk record: ${name} ${value} is not a safe u64`);
  v.setUint32(at, value % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}

/**
 * The model's {@link ChunkInfo} for a record: `compressed` from COMPRESSED, `crc32` only when
 * HAS_CRC32 is set.
 * @example
 * const info = chunkInfoFromRecord(decodeChunkRecord(bootstrap, off));
 */
export function chunkInfoFromRecord(rec: ChunkRecord): ChunkInfo {
  const compressed = (rec.flags & CHUNK_FLAG_COMPRESSED) !== 0;
  // Two literal shapes rather than a spread: this runs once per chunk of every file read.
  if ((rec.flags & CHUNK_FLAG_HAS_CRC32) !== 0) {
    return {
      digest: rec.blockId, blobIndex: rec.blobIndex, index: rec.index, compressedOffset: rec.compressedOffset, compressedSize: rec.compressedSize,
      uncompressedOffset: rec.uncompressedOffset, uncompressedSize: rec.uncompressedSize, compressed, crc32: rec.crc32,
    };
  }
  return {
    digest: rec.blockId, blobIndex: rec.blobIndex, index: rec.index, compressedOffset: rec.compressedOffset, compressedSize: rec.compressedSize,
    uncompressedOffset: rec.uncompressedOffset, uncompressedSize: rec.uncompressedSize, compressed,
  };
}
