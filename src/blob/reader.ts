/**
 * Reading a RAFS v6 data blob (spec §4): blob meta (ci table + header) validated against the
 * blob-table entry like nydusd does (`storage/src/meta/mod.rs:869-954`), chunk reads with
 * decompression and digest verification, ToC parsing and verification, the blob-id rule, and
 * the uncompressed blob-cache view.
 *
 * Everything read from the blob is bounds-checked before it is read, so malformed blobs raise
 * {@link FormatError} (or {@link DigestMismatchError} where digests are checked) only.
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import { codecById, codecByName, type Codec } from "../compression/codec.ts";
import { createHasher, crc32c, type DigesterName } from "../digest/hasher.ts";
import { alignUp, toHex } from "../internal/bytes.ts";
import { DigestMismatchError, FormatError, InvalidInputError } from "../internal/errors.ts";
import type { ReaderAt } from "../io/reader_at.ts";
import type { BlobInfo, ChunkInfo } from "../rafs/model.ts";
import {
  BLOB_FEATURE_BATCH,
  BLOB_FEATURE_CHUNK_INFO_V2,
  BLOB_FEATURE_ENCRYPTED,
  BLOB_FEATURE_HAS_TAR_HEADER,
  BLOB_FEATURE_HAS_TOC,
  BLOB_FEATURE_INLINED_FS_META,
  BLOB_FEATURE_INLINED_CHUNK_DIGEST,
  BLOB_FEATURE_SEPARATE,
  BLOB_FEATURE_TARFS,
  BLOB_FEATURE_ZRAN,
  BLOB_FEATURES_INVALID_MASK,
  BLOB_META_HEADER_SIZE,
  CI_V1_ENTRY_SIZE,
  CI_V2_ENTRY_SIZE,
  CI_V2_FLAG_BATCH,
  CI_V2_FLAG_HAS_CRC32,
  TAR_HEADER_SIZE,
  TOC_ENTRY_SIZE,
  TOC_NAME_BLOB_DIGEST,
  TOC_NAME_BLOB_RAW,
  TOC_NAME_BLOB_TOC,
  TOC_NAME_BOOTSTRAP,
  decodeBlobMetaHeader,
  decodeCiTable,
  decodeTarHeader,
  decodeTocList,
  hasFeature,
  tocEntryCompressor,
  type BlobMetaHeader,
  type CiEntry,
  type TocEntry,
} from "./format.ts";

/** A ci entry with its position (ci_index) and, for V2 entries with HAS_CRC32, its CRC-32C. */
export interface BlobChunkEntry extends CiEntry {
  readonly index: number;
  readonly crc32?: number;
}

/** Where a chunk is: the ChunkInfo fields {@link DataBlob.readChunk} needs (a ChunkInfo or a BlobChunkEntry). */
export type ChunkLocation = Pick<
  ChunkInfo,
  "index" | "compressedOffset" | "compressedSize" | "uncompressedOffset" | "uncompressedSize" | "compressed"
> & { readonly crc32?: number };

/** A parsed ToC (spec §4.7). */
export interface BlobToc {
  readonly entries: readonly TocEntry[];
  /** Offset of the ToC data in the blob. */
  readonly offset: number;
  /** ToC data + its tar header (= blob_toc_size). */
  readonly size: number;
  /** SHA-256 of ToC data ‖ tar header (= blob_toc_digest). */
  readonly digest: Uint8Array;
}

/** Largest section {@link DataBlob.verifyToc} will decompress in memory (an inlined bootstrap). */
const MAX_TOC_SECTION = 1 << 30;
/** Read size for streamed hashing. */
const STREAM_PIECE = 1 << 20;

/** Options of {@link openBlob}. */
export interface OpenBlobOptions {
  /**
   * Check `reader.size === info.compressedSize` (default true). Blob-table `compressed_size`
   * is the blob file size for ordinary blobs (spec §4.9).
   */
  checkSize?: boolean;
}

/**
 * Opens a v6 data blob: reads the ci table and header at `info.ciOffset`, validates them
 * against `info`, and decodes every ci entry.
 * @throws FormatError when the blob meta is malformed or disagrees with `info`
 * @throws InvalidInputError for blob kinds this reader does not support (encrypted, zran, batch, separate, tarfs)
 */
export async function openBlob(reader: ReaderAt, info: BlobInfo, opts: OpenBlobOptions = {}): Promise<DataBlob> {
  const unsupported = [
    [BLOB_FEATURE_ENCRYPTED, "encrypted"],
    [BLOB_FEATURE_ZRAN, "zran"],
    [BLOB_FEATURE_BATCH, "batch"],
    [BLOB_FEATURE_SEPARATE, "separate"],
    [BLOB_FEATURE_TARFS, "tarfs"],
  ] as const;
  for (const [bit, name] of unsupported) {
    if (hasFeature(info.features, bit)) throw new InvalidInputError(`Cannot read blob "${info.blobId}": ${name} blobs are not supported`);
  }
  const blobStruct = `Blob(${info.blobId})`;
  if ((info.features & BLOB_FEATURES_INVALID_MASK) !== 0) {
    throw new FormatError("RafsV6Blob", "features", 0, `invalid bits in 0x${(info.features >>> 0).toString(16)}`);
  }
  if ((opts.checkSize ?? true) && reader.size !== info.compressedSize) {
    throw new FormatError(blobStruct, "(size)", reader.size, `blob is ${reader.size} bytes, blob table says ${info.compressedSize}`);
  }
  const { ciOffset, ciCompressedSize, ciUncompressedSize } = info;
  const metaEnd = ciOffset + ciCompressedSize + BLOB_META_HEADER_SIZE;
  if (ciOffset < 0 || ciCompressedSize < 0 || metaEnd > reader.size) {
    throw new FormatError(blobStruct, "blob_meta", ciOffset, `ci table + header end at ${metaEnd}, beyond the blob size ${reader.size}`);
  }
  const meta = await reader.readAt(ciOffset, ciCompressedSize + BLOB_META_HEADER_SIZE);
  const headerOffset = ciOffset + ciCompressedSize;
  const header = decodeBlobMetaHeader(meta.subarray(ciCompressedSize), headerOffset);

  // nydusd compares magic (done by decode), entries, compressor, offset and sizes with the blob entry.
  const H = "BlobCompressionContextHeader";
  const mismatch = (field: string, off: number, have: number, want: number) =>
    new FormatError(H, field, headerOffset + off, `header has ${have}, blob table has ${want}`);
  if (header.ciEntries !== info.chunkCount) throw mismatch("s_ci_entries", 12, header.ciEntries, info.chunkCount);
  const ciCodecWanted = codecByName(info.ciCompressor);
  if (header.ciCompressor !== ciCodecWanted.id) throw mismatch("s_ci_compressor", 8, header.ciCompressor, ciCodecWanted.id);
  if (header.ciOffset !== ciOffset) throw mismatch("s_ci_offset", 16, header.ciOffset, ciOffset);
  if (header.ciCompressedSize !== ciCompressedSize) throw mismatch("s_ci_compressed_size", 24, header.ciCompressedSize, ciCompressedSize);
  if (header.ciUncompressedSize !== ciUncompressedSize) {
    throw mismatch("s_ci_uncompressed_size", 32, header.ciUncompressedSize, ciUncompressedSize);
  }
  if ((header.features & BLOB_FEATURES_INVALID_MASK) !== 0) {
    throw new FormatError(H, "s_features", headerOffset + 4, `invalid bits in 0x${(header.features >>> 0).toString(16)}`);
  }
  const v2 = hasFeature(info.features, BLOB_FEATURE_CHUNK_INFO_V2);
  const entrySize = v2 ? CI_V2_ENTRY_SIZE : CI_V1_ENTRY_SIZE;
  if (ciUncompressedSize !== info.chunkCount * entrySize) {
    throw new FormatError(H, "s_ci_uncompressed_size", headerOffset + 32, `expected ${info.chunkCount} x ${entrySize} bytes, found ${ciUncompressedSize}`);
  }

  const ciCodec = ciCodecWanted;
  let table: Uint8Array;
  try {
    table = ciCodec.decompress(meta.subarray(0, ciCompressedSize), ciUncompressedSize);
  } catch (cause) {
    throw new FormatError("BlobChunkInfoTable", "(data)", ciOffset, `cannot decompress with ${ciCodec.name}: ${String(cause)}`, { cause });
  }

  const hasTar = hasFeature(info.features, BLOB_FEATURE_HAS_TAR_HEADER);
  const compressedDataSize = hasTar ? ciOffset - TAR_HEADER_SIZE : ciOffset;
  if (compressedDataSize < 0) throw new FormatError(blobStruct, "ci_offset", ciOffset, "too small for the image.blob tar header");
  const uncompressedLimit = alignUp(info.uncompressedSize, 4096);
  const blobCodec = codecByName(info.compressor);

  const raw = decodeCiTable(table, info.chunkCount, v2, ciOffset);
  const entries: BlobChunkEntry[] = raw.map((e, index) => {
    const at = ciOffset + index * entrySize;
    const bad = (field: string, detail: string) => new FormatError(v2 ? "BlobChunkInfoV2" : "BlobChunkInfoV1", field, at, `chunk ${index}: ${detail}`);
    if (e.compressedOffset + e.compressedSize > compressedDataSize) {
      throw bad("comp_info", `compressed end ${e.compressedOffset + e.compressedSize} beyond the chunk data (${compressedDataSize} bytes)`);
    }
    if (e.uncompressedOffset + e.uncompressedSize > uncompressedLimit) {
      throw bad("uncomp_info", `uncompressed end ${e.uncompressedOffset + e.uncompressedSize} beyond the blob's uncompressed size ${uncompressedLimit}`);
    }
    if (!e.compressed && e.compressedSize !== e.uncompressedSize) {
      throw bad("comp_info", `uncompressed chunk with compressed size ${e.compressedSize} != ${e.uncompressedSize}`);
    }
    if (e.compressed && blobCodec.id === 0) throw bad("comp_info", "compressed chunk in a blob without compressor");
    let crc32: number | undefined;
    if (v2) {
      if (e.compressedSize === 0 && (e.flags & CI_V2_FLAG_BATCH) === 0) throw bad("comp_info", "compressed size is 0");
      if (e.flags & CI_V2_FLAG_HAS_CRC32) {
        crc32 = Number(e.data & 0xffff_ffffn);
        if (crc32 === 0) throw bad("data", "HAS_CRC32 with a zero CRC");
      }
    }
    return crc32 === undefined ? { ...e, index } : { ...e, index, crc32 };
  });
  return new DataBlob(reader, info, header, entries, compressedDataSize, blobCodec);
}

/** An opened, validated v6 data blob. Create with {@link openBlob}. */
export class DataBlob {
  /** @internal use {@link openBlob} */
  constructor(
    readonly reader: ReaderAt,
    readonly info: BlobInfo,
    /** The decoded blob-meta header. */
    readonly header: BlobMetaHeader,
    /** Every ci entry in ci_index order. */
    readonly entries: readonly BlobChunkEntry[],
    /** Bytes of chunk data at the start of the blob (`ci_offset` minus the image.blob tar header). */
    readonly compressedDataSize: number,
    private readonly codec: Codec,
  ) {}

  private get struct(): string {
    return `Blob(${this.info.blobId})`;
  }

  /**
   * The plain bytes of a chunk. `ci` must agree with the blob's ci entry of the same index
   * (spec §4.10), else FormatError.
   */
  async readChunk(ci: ChunkLocation): Promise<Uint8Array> {
    const e = this.entries[ci.index];
    const field = `chunk[${ci.index}]`;
    if (!Number.isInteger(ci.index) || e === undefined) {
      throw new FormatError(this.struct, field, this.info.ciOffset, `ci_index ${ci.index} out of range (${this.entries.length} chunks)`);
    }
    for (const k of ["compressedOffset", "compressedSize", "uncompressedOffset", "uncompressedSize", "compressed"] as const) {
      if (ci[k] !== e[k]) {
        throw new FormatError(this.struct, field, e.compressedOffset, `${k} ${String(ci[k])} disagrees with the ci entry (${String(e[k])})`);
      }
    }
    const stored = await this.reader.readAt(e.compressedOffset, e.compressedSize);
    if (!e.compressed) return stored;
    try {
      return this.codec.decompress(stored, e.uncompressedSize);
    } catch (cause) {
      throw new FormatError(this.struct, field, e.compressedOffset, `cannot decompress with ${this.codec.name}: ${String(cause)}`, { cause });
    }
  }

  /**
   * Reads a chunk and checks it against `expectedDigest` (and its CRC-32C when `ci.crc32` is set).
   * @returns the verified plain bytes
   * @throws DigestMismatchError naming the blob id and chunk index; FormatError when undecodable
   */
  async verifyChunk(ci: ChunkLocation, expectedDigest: Uint8Array, digester: DigesterName): Promise<Uint8Array> {
    const plain = await this.readChunk(ci);
    const subject = `chunk ${ci.index} of blob ${this.info.blobId}`;
    const actual = createHasher(digester).update(plain).digest();
    if (toHex(actual) !== toHex(expectedDigest)) throw new DigestMismatchError(subject, toHex(expectedDigest), toHex(actual));
    if (ci.crc32 !== undefined) {
      const crc = crc32c(plain);
      if (crc !== ci.crc32) throw new DigestMismatchError(`CRC-32C of ${subject}`, hex32(ci.crc32), hex32(crc));
    }
    return plain;
  }

  /**
   * Parses the ToC at the end of the blob (requires HAS_TOC). Uses `info.tocSize` when set
   * (and then checks `info.tocDigest`), else finds the ToC through its trailing tar header.
   * @throws FormatError when absent or malformed; DigestMismatchError when the ToC digest differs
   */
  async readToc(): Promise<BlobToc> {
    const { info, reader } = this;
    const S = this.struct;
    if (!hasFeature(info.features, BLOB_FEATURE_HAS_TOC)) throw new FormatError(S, "features", 0, "blob has no ToC (HAS_TOC not set)");
    const { tar, tarAt } = await locateToc(reader, S);
    const size = tar.size + TAR_HEADER_SIZE;
    if (info.tocSize !== 0 && info.tocSize !== size) {
      throw new FormatError("TarHeader", "size", tarAt + 124, `ToC is ${size} bytes with its header, blob table says ${info.tocSize}`);
    }
    const offset = tarAt - tar.size;
    const bytes = await reader.readAt(offset, size);
    const digest = new Uint8Array(crypto.createHash("sha256").update(bytes).digest());
    if (info.tocSize !== 0 && info.tocDigest.some((b) => b !== 0) && toHex(digest) !== toHex(info.tocDigest)) {
      throw new DigestMismatchError(`ToC of blob ${info.blobId}`, toHex(info.tocDigest), toHex(digest));
    }
    const entries = decodeTocList(bytes.subarray(0, tar.size), offset);
    entries.forEach((e, i) => {
      // image.blob always starts at 0 in the file; its recorded offset is `--blob-offset` (or, in
      // older builders, the chunk-data size), so only its size is checked (spec §4.7, §12).
      const end = e.name === TOC_NAME_BLOB_RAW ? e.compressedSize + TAR_HEADER_SIZE : e.compressedOffset + e.compressedSize;
      if (end > offset) {
        throw new FormatError("TocEntry", "compressed_size", offset + i * TOC_ENTRY_SIZE + 64, `section "${e.name}" ends at ${end}, beyond the ToC start ${offset}`);
      }
    });
    return { entries, offset, size, digest };
  }

  /** SHA-256 of `len` bytes at `off`, streamed in bounded pieces (bounds are the caller's job). */
  private async sha256Range(off: number, len: number, hash = crypto.createHash("sha256")): Promise<crypto.Hash> {
    for (let done = 0; done < len; ) {
      const n = Math.min(STREAM_PIECE, len - done);
      hash.update(await this.reader.readAt(off + done, n));
      done += n;
    }
    return hash;
  }

  /**
   * Checks every ToC entry's SHA-256 against the section it names. `image.blob` is hashed over
   * the chunk data plus its tar header (`[0, size + 512)`, whatever its recorded offset, §4.7/§12);
   * other sections are read at their offset and decompressed per their flags.
   * @throws DigestMismatchError naming the section; FormatError for malformed entries
   */
  async verifyToc(toc?: BlobToc): Promise<void> {
    const t = toc ?? (await this.readToc());
    for (const [i, e] of t.entries.entries()) {
      const at = t.offset + i * TOC_ENTRY_SIZE;
      const fail = (field: string, off: number, detail: string) => new FormatError("TocEntry", field, at + off, `"${e.name}": ${detail}`);
      let actual: Uint8Array;
      const algo = tocEntryCompressor(e.flags);
      if (e.name === TOC_NAME_BLOB_RAW) {
        const len = e.compressedSize + TAR_HEADER_SIZE;
        if (len > t.offset) throw fail("compressed_size", 64, `chunk data + tar header (${len}) overlap the ToC`);
        actual = new Uint8Array((await this.sha256Range(0, len)).digest());
      } else if (algo === "none") {
        if (e.compressedSize !== e.uncompressedSize) throw fail("uncompressed_size", 72, "differs from compressed_size for an uncompressed section");
        actual = new Uint8Array((await this.sha256Range(e.compressedOffset, e.compressedSize)).digest());
      } else {
        if (e.uncompressedSize > MAX_TOC_SECTION) throw fail("uncompressed_size", 72, `${e.uncompressedSize} bytes is too large`);
        const stored = await this.reader.readAt(e.compressedOffset, e.compressedSize);
        let plain: Uint8Array;
        try {
          plain = codecByName(algo).decompress(stored, e.uncompressedSize);
        } catch (cause) {
          throw fail("(data)", 0, `cannot decompress with ${algo}: ${String(cause)}`);
        }
        actual = new Uint8Array(crypto.createHash("sha256").update(plain).digest());
      }
      if (e.compressedOffset + e.compressedSize > t.offset && e.name !== TOC_NAME_BLOB_RAW) {
        throw fail("compressed_size", 64, "section overlaps the ToC");
      }
      if (toHex(actual) !== toHex(e.digest)) {
        throw new DigestMismatchError(`ToC entry "${e.name}" of blob ${this.info.blobId}`, toHex(e.digest), toHex(actual));
      }
    }
  }

  /**
   * The chunk-digest array (`blob.digest`, 32 bytes per chunk in ci_index order), located through
   * the ToC and checked against its ToC digest; undefined when the blob has none (no
   * INLINED_CHUNK_DIGEST feature and no ToC entry).
   */
  async readChunkDigests(toc?: BlobToc): Promise<Uint8Array | undefined> {
    const t = toc ?? (await this.readToc());
    const i = t.entries.findIndex((e) => e.name === TOC_NAME_BLOB_DIGEST);
    if (i < 0) {
      if (!hasFeature(this.info.features, BLOB_FEATURE_INLINED_CHUNK_DIGEST)) return undefined;
      throw new FormatError("TocEntryList", TOC_NAME_BLOB_DIGEST, t.offset, "INLINED_CHUNK_DIGEST is set but the ToC has no blob.digest entry");
    }
    const e = t.entries[i]!;
    const want = 32 * this.info.chunkCount;
    if (e.compressedSize !== want || e.uncompressedSize !== want || tocEntryCompressor(e.flags) !== "none") {
      throw new FormatError("TocEntry", "compressed_size", t.offset + i * TOC_ENTRY_SIZE + 64, `blob.digest must be ${want} raw bytes`);
    }
    const bytes = await this.reader.readAt(e.compressedOffset, want);
    const actual = new Uint8Array(crypto.createHash("sha256").update(bytes).digest());
    if (toHex(actual) !== toHex(e.digest)) throw new DigestMismatchError(`blob.digest of blob ${this.info.blobId}`, toHex(e.digest), toHex(actual));
    return bytes;
  }

  /**
   * Checks the blob-id rule (§4.8): `info.blobId` = SHA-256 of every byte except the chunk-digest
   * array (located through the ToC when the blob has one). An inline-meta blob (a Nydus image
   * layer) is named by its OCI layer digest instead: SHA-256 of every byte (nydus-image.md §2.2).
   * Blobs built with an explicit `--blob-id`, or ref/tarfs conversions, follow neither rule.
   * @throws DigestMismatchError when the id differs
   */
  async verifyBlobId(toc?: BlobToc): Promise<void> {
    let skipOff = this.reader.size;
    let skipLen = 0;
    if (hasFeature(this.info.features, BLOB_FEATURE_HAS_TOC) && !hasFeature(this.info.features, BLOB_FEATURE_INLINED_FS_META)) {
      const t = toc ?? (await this.readToc());
      const d = t.entries.find((e) => e.name === TOC_NAME_BLOB_DIGEST);
      if (d) {
        skipOff = d.compressedOffset;
        skipLen = d.compressedSize;
      }
    }
    const h = await this.sha256Range(0, skipOff);
    await this.sha256Range(skipOff + skipLen, this.reader.size - skipOff - skipLen, h);
    const actual = h.digest("hex");
    if (actual !== this.info.blobId) throw new DigestMismatchError(`id of blob ${this.info.blobId}`, this.info.blobId, actual);
  }
}

function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

/**
 * Writes the uncompressed blob-cache view (spec §1, §4.2) to `destPath`: a file of
 * `info.uncompressedSize` bytes with each chunk's plain bytes at its uncompressed offset and
 * zeros (holes) elsewhere. Streams chunk by chunk (memory bounded by one chunk).
 * (openBlob accepts chunks ending up to `align_up(uncompressedSize, 4096)` like nydusd; only a
 * blob with an unaligned uncompressed size could make the file longer than `uncompressedSize`.)
 */
export async function writeCacheView(blob: DataBlob, destPath: string): Promise<void> {
  const fh = await fsp.open(destPath, "w");
  try {
    await fh.truncate(blob.info.uncompressedSize);
    for (const e of blob.entries) {
      const plain = await blob.readChunk(e);
      let done = 0;
      while (done < plain.length) {
        const { bytesWritten } = await fh.write(plain, done, plain.length - done, e.uncompressedOffset + done);
        done += bytesWritten;
      }
    }
  } finally {
    await fh.close();
  }
}

/** The ToC's trailing tar header (the last 512 bytes), checked for name and size. */
async function locateToc(reader: ReaderAt, struct: string): Promise<{ tar: { name: string; size: number }; tarAt: number }> {
  if (reader.size < TAR_HEADER_SIZE) throw new FormatError(struct, "rafs.blob.toc", 0, "blob too small for a ToC");
  const tarAt = reader.size - TAR_HEADER_SIZE;
  const tar = decodeTarHeader(await reader.readAt(tarAt, TAR_HEADER_SIZE), tarAt);
  if (tar.name !== TOC_NAME_BLOB_TOC) throw new FormatError("TarHeader", "name", tarAt, `expected "${TOC_NAME_BLOB_TOC}", found "${tar.name}"`);
  if (tar.size > tarAt || tar.size % TOC_ENTRY_SIZE !== 0 || tar.size > 0x10000) {
    throw new FormatError("TarHeader", "size", tarAt + 124, `invalid ToC size ${tar.size}`);
  }
  return { tar, tarAt };
}

/**
 * Whether a blob ends with the tar header of a table of contents (`rafs.blob.toc`), as
 * layer blobs of Nydus images do; plain blobs (and anything that is no blob) do not.
 */
export async function hasToc(reader: ReaderAt): Promise<boolean> {
  if (reader.size < TAR_HEADER_SIZE) return false;
  try {
    return decodeTarHeader(await reader.readAt(reader.size - TAR_HEADER_SIZE, TAR_HEADER_SIZE), reader.size - TAR_HEADER_SIZE).name === TOC_NAME_BLOB_TOC;
  } catch (err) {
    if (err instanceof FormatError) return false; // not a tar header at all
    throw err;
  }
}

/**
 * The layer bootstrap stored inside an inline-meta blob (the Nydus image layer format,
 * `image.boot` in the ToC; spec §4.1, §4.7), decompressed and checked against its ToC
 * digest. Needs only the blob bytes: no blob-table entry.
 * @param what names the blob in errors
 * @throws FormatError when there is no ToC or no `image.boot` entry; DigestMismatchError
 */
export async function readInlineBootstrap(reader: ReaderAt, what: string): Promise<Uint8Array> {
  const { tar, tarAt } = await locateToc(reader, `Blob(${what})`);
  const offset = tarAt - tar.size;
  const entries = decodeTocList(await reader.readAt(offset, tar.size), offset);
  const i = entries.findIndex((e) => e.name === TOC_NAME_BOOTSTRAP);
  if (i < 0) throw new FormatError("TocEntryList", TOC_NAME_BOOTSTRAP, offset, `blob ${what} has no inline bootstrap`);
  const e = entries[i]!;
  const at = offset + i * TOC_ENTRY_SIZE;
  if (e.compressedOffset + e.compressedSize > offset) throw new FormatError("TocEntry", "compressed_size", at + 64, `"${e.name}" overlaps the ToC`);
  if (e.uncompressedSize > MAX_TOC_SECTION) throw new FormatError("TocEntry", "uncompressed_size", at + 72, `${e.uncompressedSize} bytes is too large`);
  const stored = await reader.readAt(e.compressedOffset, e.compressedSize);
  const algo = tocEntryCompressor(e.flags);
  let plain: Uint8Array;
  if (algo === "none") {
    if (e.compressedSize !== e.uncompressedSize) throw new FormatError("TocEntry", "uncompressed_size", at + 72, "differs from compressed_size for an uncompressed section");
    plain = stored;
  } else {
    try {
      plain = codecByName(algo).decompress(stored, e.uncompressedSize);
    } catch (cause) {
      throw new FormatError("TocEntry", "(data)", at, `"${e.name}": cannot decompress with ${algo}: ${String(cause)}`);
    }
  }
  const actual = crypto.createHash("sha256").update(plain).digest("hex");
  if (actual !== toHex(e.digest)) throw new DigestMismatchError(`inline bootstrap of blob ${what}`, toHex(e.digest), actual);
  return plain;
}
