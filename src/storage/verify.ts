/**
 * Turning the stored bytes of one chunk into its plain, verified bytes: bounds and size
 * sanity, decompression with the blob's compressor, digest (BLAKE3 or SHA-256 as the image
 * says) and CRC-32C when recorded. Nothing unverified leaves this module.
 */
import { codecByName } from "../compression/codec.ts";
import { crc32c, hash, type DigesterName } from "../digest/hasher.ts";
import { toHex } from "../internal/bytes.ts";
import { DigestMismatchError, FormatError, UnsafePathError } from "../internal/errors.ts";
import type { BlobInfo, ChunkInfo } from "../rafs/model.ts";

/** Largest chunk RAFS allows (spec §2.9: chunk size ≤ 16 MiB). */
export const MAX_CHUNK_SIZE = 0x100_0000;

/**
 * Blob ids name files (cache files, local blobs): only a plain file name is acceptable, so a
 * hostile bootstrap cannot make us touch `../../etc/shadow`.
 * @throws UnsafePathError
 */
export function checkBlobId(blobId: string): void {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(blobId) || blobId === "." || blobId === "..") {
    throw new UnsafePathError(blobId, "a blob id must be a plain file name (letters, digits, '.', '_', '-')");
  }
}

/** "chunk 3 of blob abc… (compressed offset 4096)" */
export function describeChunk(blobId: string, chunk: ChunkInfo): string {
  return `chunk ${chunk.index} of blob ${blobId} (compressed offset ${chunk.compressedOffset}, uncompressed offset ${chunk.uncompressedOffset})`;
}

/**
 * Checks a chunk record against its blob before anything is fetched for it.
 * @throws FormatError
 */
export function checkChunkBounds(blob: BlobInfo, chunk: ChunkInfo): void {
  const where = describeChunk(blob.blobId, chunk);
  const struct = `Blob(${blob.blobId})`;
  const { compressedOffset: off, compressedSize: clen, uncompressedOffset: uoff, uncompressedSize: ulen } = chunk;
  for (const [field, v] of [["compressed_offset", off], ["compressed_size", clen], ["uncompressed_offset", uoff], ["uncompressed_size", ulen]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new FormatError(struct, field, off, `${where}: ${field} ${v} is not a valid size`);
  }
  if (ulen > MAX_CHUNK_SIZE) throw new FormatError(struct, "uncompressed_size", off, `${where}: ${ulen} bytes exceeds the largest chunk size ${MAX_CHUNK_SIZE}`);
  if (clen > 2 * MAX_CHUNK_SIZE + 4096) throw new FormatError(struct, "compressed_size", off, `${where}: ${clen} stored bytes is implausibly large`);
  if (!chunk.compressed && clen !== ulen) throw new FormatError(struct, "compressed_size", off, `${where}: uncompressed chunk stores ${clen} bytes for ${ulen}`);
  if (blob.compressedSize > 0 && off + clen > blob.compressedSize) {
    throw new FormatError(struct, "compressed_offset", off, `${where}: ${clen} bytes at ${off} lie beyond the ${blob.compressedSize}-byte blob`);
  }
  if (blob.uncompressedSize > 0 && uoff + ulen > blob.uncompressedSize) {
    throw new FormatError(struct, "uncompressed_offset", off, `${where}: ${ulen} bytes at ${uoff} lie beyond the ${blob.uncompressedSize}-byte cache view`);
  }
}

/**
 * The plain bytes of a chunk from its stored bytes, verified.
 * @throws FormatError when the bytes do not decompress
 * @throws DigestMismatchError naming the blob id, chunk index and offsets
 */
export function decodeChunk(blob: BlobInfo, digester: DigesterName, chunk: ChunkInfo, stored: Uint8Array): Uint8Array {
  let plain = stored;
  if (chunk.compressed) {
    const codec = codecByName(blob.compressor);
    try {
      plain = codec.decompress(stored, chunk.uncompressedSize);
    } catch (cause) {
      throw new FormatError(`Blob(${blob.blobId})`, "(chunk data)", chunk.compressedOffset, `${describeChunk(blob.blobId, chunk)}: cannot decompress with ${codec.name}: ${String(cause)}`, { cause });
    }
  }
  verifyPlain(blob, digester, chunk, plain);
  return plain;
}

/**
 * Verifies plain chunk bytes (digest, then CRC-32C when recorded).
 * @throws DigestMismatchError
 */
export function verifyPlain(blob: BlobInfo, digester: DigesterName, chunk: ChunkInfo, plain: Uint8Array): void {
  const where = describeChunk(blob.blobId, chunk);
  if (plain.length !== chunk.uncompressedSize) throw new DigestMismatchError(where, `${chunk.uncompressedSize} bytes`, `${plain.length} bytes`);
  const actual = toHex(hash(digester, plain));
  const expected = toHex(chunk.digest);
  if (actual !== expected) throw new DigestMismatchError(where, expected, actual);
  if (chunk.crc32 !== undefined) {
    const crc = crc32c(plain) >>> 0;
    if (crc !== chunk.crc32 >>> 0) throw new DigestMismatchError(`CRC-32C of ${where}`, hex32(chunk.crc32), hex32(crc));
  }
}

function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
