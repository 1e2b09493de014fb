/**
 * Streaming writer of a RAFS v6 data blob (spec §4.1–§4.8).
 *
 * Chunks go to the output file as they are added (small ones through a 1 MiB staging
 * buffer, flushed when full and by `finish`); the writer keeps only
 * O(chunk_count) metadata (16 bytes of ci entry, plus 32 bytes of digest with blob-toc,
 * per chunk) and a running SHA-256 for the blob id. `finish()` appends the blob meta
 * (ci table + header) and, with `blobToc`, the tar headers, chunk-digest array and ToC,
 * in exactly upstream's order.
 *
 * Deduplication is the caller's job (keep a digest → ChunkInfo map and skip `addChunk`).
 *
 * @example
 * const w = new BlobWriter({ path: tmp, compressor: "zstd", digester: "blake3", chunkSize: 1 << 20, blobIndex: 0 });
 * const ci = w.addChunk(bytes);
 * const info = await w.finishInto(blobDir); // renames tmp to blobDir/<blobId>
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { codecByName, compressBound, compressChunk, type BuildCompressor, type Codec } from "../compression/codec.ts";
import { createHasher, crc32c, hash, type DigesterName } from "../digest/hasher.ts";
import { alignUp } from "../internal/bytes.ts";
import { InvalidInputError } from "../internal/errors.ts";
import type { BlobInfo, ChunkInfo } from "../rafs/model.ts";
import {
  BLOB_FEATURE_INLINED_FS_META,
  BLOB_FEATURES_BLOB_TOC,
  BLOB_FEATURES_DEFAULT,
  BLOB_META_HEADER_SIZE,
  CI_V1_ENTRY_SIZE,
  TAR_HEADER_SIZE,
  TOC_FLAG_COMPRESSION_NONE,
  TOC_FLAG_COMPRESSION_ZSTD,
  TOC_NAME_BOOTSTRAP,
  TOC_NAME_BLOB_DIGEST,
  TOC_NAME_BLOB_META,
  TOC_NAME_BLOB_META_HEADER,
  TOC_NAME_BLOB_RAW,
  TOC_NAME_BLOB_TOC,
  encodeBlobMetaHeader,
  encodeCiEntryV1,
  encodeTarHeader,
  encodeTocList,
  tocFlagForCompressor,
  type TocEntry,
} from "./format.ts";

/** Options of {@link BlobWriter}. */
export interface BlobWriterOptions {
  /** Temporary file the blob is written to (created or truncated). */
  path: string;
  /** Chunk (and ci table) compressor. */
  compressor: BuildCompressor;
  /** Chunk digest algorithm. */
  digester: DigesterName;
  /** Chunk size of the build: power of two in 4 KiB..16 MiB; every chunk is 1..chunkSize bytes. */
  chunkSize: number;
  /**
   * false (default) = `nydus-image create` default blob (features 0x4000_0001);
   * true = `--features blob-toc`: tar headers, chunk-digest array and ToC (features 0x7000_0021).
   */
  blobToc?: boolean;
  /** Index of this blob in the bootstrap's blob table (stored in every ChunkInfo). */
  blobIndex: number;
  /**
   * `--blob-inline-meta --features blob-toc`, the Nydus image layer format: the layer's
   * bootstrap is stored inside the blob (see {@link BlobWriter.sealMeta}). Implies blobToc.
   * @default false
   */
  inlineMeta?: boolean;
}

/** Blob id written into a layer bootstrap embedded in its own blob (upstream writes 64 "x"; spec §4.8). */
export const INLINE_BLOB_ID_PLACEHOLDER = "x".repeat(64);

/** Result of {@link BlobWriter.finishInline}. */
export interface InlineBlob {
  /** Lowercase hex SHA-256 of the whole blob file: its name, and its OCI layer digest. */
  digest: string;
  size: number;
  /** Blob-table entry for a merged bootstrap; absent when the layer stored no chunk. */
  info?: BlobInfo;
}

/** Largest ci_index upstream allows: the builder errors at index >= 0xFF_FFFF (spec §2.9). */
const MAX_CHUNKS = 0xff_ffff;
/**
 * Writes smaller than this are staged and written (and fed to the blob-id hash) together.
 * On a 45,000-file tar (4 KiB average chunk) this turns 45,000 `writeSync` and hash updates
 * into ~180 of each; the file bytes are the same.
 */
const STAGING_SIZE = 1 << 20;
const ZERO_DIGEST = new Uint8Array(32);

/** Append-only byte buffer with amortised doubling. */
class ByteBuf {
  private buf: Uint8Array;
  length = 0;
  constructor(initial: number) {
    this.buf = new Uint8Array(initial);
  }
  /** Reserves `n` bytes at the end and returns them for writing. */
  reserve(n: number): Uint8Array {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    const out = this.buf.subarray(this.length, this.length + n);
    this.length += n;
    return out;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Streaming RAFS v6 data-blob writer. Methods are synchronous except `finish`/`finishInto`/`abort`. */
export class BlobWriter {
  /** The temporary file being written. */
  readonly path: string;
  readonly compressor: BuildCompressor;
  readonly digester: DigesterName;
  readonly chunkSize: number;
  readonly blobToc: boolean;
  readonly blobIndex: number;

  private readonly codec: Codec;
  private fd: number | undefined;
  private state: "open" | "finished" | "failed" | "aborted" = "open";
  /** Bytes written so far (= next compressed offset). */
  private pos = 0;
  /** Next uncompressed offset (4096-aligned). */
  private uncompressedCursor = 0;
  private count = 0;
  /** SHA-256 of every byte written except the chunk-digest array (spec §4.8). */
  private readonly blobHash = crypto.createHash("sha256");
  private readonly ciTable = new ByteBuf(CI_V1_ENTRY_SIZE * 64);
  private readonly digests: ByteBuf | undefined;
  private readonly inlineMeta: boolean;
  /** ToC entries of the sections written so far (blob-toc). */
  private readonly toc: TocEntry[] = [];
  /** Set by {@link sealMeta}. */
  private sealed: Omit<BlobInfo, "blobId" | "compressedSize" | "tocSize" | "tocDigest"> | undefined;
  /** Reused compression output (see {@link compress}). */
  private out: Uint8Array | undefined;
  /** Hashed bytes not yet written: file bytes [pos - staged, pos). */
  private staging: Uint8Array | undefined;
  private staged = 0;

  /**
   * Creates (or truncates) `opts.path` and prepares to write.
   * @throws RangeError for a bad chunk size or blob index; TypeError for an unknown compressor
   */
  constructor(opts: BlobWriterOptions) {
    const { chunkSize, blobIndex } = opts;
    if (!Number.isInteger(chunkSize) || chunkSize < 0x1000 || chunkSize > 0x100_0000 || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new RangeError(`Cannot use chunk size ${chunkSize}: expected a power of two in 4096..16777216`);
    }
    if (!Number.isInteger(blobIndex) || blobIndex < 0 || blobIndex > 253) {
      throw new RangeError(`Cannot use blob index ${blobIndex}: expected 0..253`);
    }
    this.codec = codecByName(opts.compressor);
    if (this.codec.id === 2) throw new TypeError(`Cannot write blobs with compressor "gzip": expected none, lz4_block or zstd`);
    createHasher(opts.digester); // validates the digester name early
    this.path = opts.path;
    this.compressor = opts.compressor;
    this.digester = opts.digester;
    this.chunkSize = chunkSize;
    this.inlineMeta = opts.inlineMeta ?? false;
    this.blobToc = (opts.blobToc ?? false) || this.inlineMeta;
    this.blobIndex = blobIndex;
    this.digests = this.blobToc ? new ByteBuf(32 * 64) : undefined;
    this.fd = fs.openSync(opts.path, "w");
  }

  /** Number of chunks stored so far (the next chunk's ci_index). */
  get chunkCount(): number {
    return this.count;
  }

  /** Bytes written to the file so far. */
  get size(): number {
    return this.pos;
  }

  private ensureOpen(action: string): number {
    if (this.state !== "open" || this.fd === undefined) {
      throw new InvalidInputError(`Cannot ${action}: blob writer is ${this.state}`);
    }
    return this.fd;
  }

  /** Writes `data` at file offset `at`, no hashing. */
  private writeAt(fd: number, data: Uint8Array, at: number): void {
    try {
      let done = 0;
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, at + done);
    } catch (err) {
      this.state = "failed";
      throw err;
    }
  }

  /** Writes and hashes the staged bytes. */
  private flush(): void {
    if (this.staged === 0) return;
    const fd = this.ensureOpen("write");
    const data = this.staging!.subarray(0, this.staged);
    this.writeAt(fd, data, this.pos - this.staged);
    this.blobHash.update(data);
    this.staged = 0;
  }

  /**
   * Appends all of `data` at the end of the file (small writes are staged, see STAGING_SIZE);
   * `hashed` feeds the blob-id hash. `data` may be reused by the caller once this returns.
   */
  private write(data: Uint8Array, hashed = true): void {
    const fd = this.ensureOpen("write");
    if (hashed && data.length < STAGING_SIZE) {
      if (this.staged + data.length > STAGING_SIZE) this.flush();
      this.staging ??= new Uint8Array(STAGING_SIZE);
      this.staging.set(data, this.staged);
      this.staged += data.length;
      this.pos += data.length;
      return;
    }
    this.flush();
    this.writeAt(fd, data, this.pos);
    if (hashed) this.blobHash.update(data);
    this.pos += data.length;
  }

  /**
   * Compresses a chunk with the keep-or-discard rule, into one reused output buffer when the
   * codec can (no allocation per chunk: on a rootfs of 19,000 chunks that garbage cost more
   * RSS and GC time than it saved). The result is valid until the next call.
   */
  private compress(plain: Uint8Array): { stored: Uint8Array; compressed: boolean } {
    const into = this.codec.compressInto;
    if (!into || this.codec.id === 0) return compressChunk(this.codec, plain);
    this.out ??= new Uint8Array(compressBound(this.chunkSize));
    const n = into(plain, this.out);
    return n < plain.length ? { stored: this.out.subarray(0, n), compressed: true } : { stored: plain, compressed: false };
  }

  /**
   * Stores one chunk: digest, CRC-32C, compression with keep-or-discard, append.
   * @param plain the chunk's uncompressed bytes, 1..chunkSize long
   * @param digest the chunk's digest with this writer's digester, when the caller already has it
   *   (a deduplicating builder computes it first); computed here otherwise
   * @returns its ChunkInfo (ci_index = previous chunkCount, 4096-aligned uncompressed offset, crc32 set)
   */
  addChunk(plain: Uint8Array, digest?: Uint8Array): ChunkInfo {
    this.ensureOpen("add a chunk");
    if (plain.length < 1 || plain.length > this.chunkSize) {
      throw new RangeError(`Cannot add a chunk of ${plain.length} bytes: expected 1..${this.chunkSize}`);
    }
    if (this.count >= MAX_CHUNKS) throw new InvalidInputError(`Cannot add a chunk: blob already holds ${this.count} chunks (limit ${MAX_CHUNKS})`);
    if (digest !== undefined && digest.length !== 32) throw new RangeError(`Cannot add a chunk: digest has ${digest.length} bytes, expected 32`);
    digest ??= createHasher(this.digester).update(plain).digest();
    const crc32 = crc32c(plain);
    const { stored, compressed } = this.compress(plain);
    const info: ChunkInfo = {
      digest,
      blobIndex: this.blobIndex,
      index: this.count,
      compressedOffset: this.pos,
      compressedSize: stored.length,
      uncompressedOffset: this.uncompressedCursor,
      uncompressedSize: plain.length,
      compressed,
      crc32,
    };
    // Encode the ci entry first: it range-checks the offsets before anything is written.
    const entry = this.ciTable.reserve(CI_V1_ENTRY_SIZE);
    try {
      encodeCiEntryV1(info, entry);
    } catch (err) {
      this.ciTable.length -= CI_V1_ENTRY_SIZE;
      throw err;
    }
    this.write(stored);
    this.digests?.reserve(32).set(digest);
    this.uncompressedCursor += alignUp(plain.length, 4096);
    this.count++;
    return info;
  }

  /**
   * Writes the sections after the chunk data: the "image.blob" tar header (blob-toc), and
   * when there are chunks the ci table, its header and (blob-toc) the digest array, each
   * followed by its tar header. Returns the blob-table fields these determine; the ToC
   * entries written so far are kept in `this.toc`.
   */
  private writeMeta(): Omit<BlobInfo, "blobId" | "compressedSize" | "tocSize" | "tocDigest"> {
    const chunkDataSize = this.pos;
    if (this.blobToc) {
      this.write(encodeTarHeader(TOC_NAME_BLOB_RAW, chunkDataSize));
      this.flush(); // the hash below must cover the header
      this.toc.push({
        flags: TOC_FLAG_COMPRESSION_NONE,
        name: TOC_NAME_BLOB_RAW,
        digest: new Uint8Array(this.blobHash.copy().digest()),
        compressedOffset: 0, // upstream: `--blob-offset`, 0 by default (spec §4.7, §12)
        compressedSize: chunkDataSize,
        uncompressedSize: this.uncompressedCursor,
      });
    }
    let features = this.blobToc ? BLOB_FEATURES_BLOB_TOC : BLOB_FEATURES_DEFAULT;
    if (this.inlineMeta) features |= BLOB_FEATURE_INLINED_FS_META;
    const base = {
      chunkSize: this.chunkSize,
      chunkCount: this.count,
      compressor: this.compressor,
      digester: this.digester,
      features,
      uncompressedSize: this.uncompressedCursor,
    };
    if (this.count === 0) {
      return { ...base, ciCompressor: "none", ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0 };
    }

    // ci table: compressed with the blob compressor, kept raw when that does not shrink it.
    const ciPlain = this.ciTable.bytes();
    const ci = compressChunk(this.codec, ciPlain);
    const ciCompressor = ci.compressed ? this.codec : codecByName("none");
    const ciOffset = this.pos;
    const header = encodeBlobMetaHeader({
      features,
      ciCompressor: ciCompressor.id,
      ciEntries: this.count,
      ciOffset,
      ciCompressedSize: ci.stored.length,
      ciUncompressedSize: ciPlain.length,
      ciZranOffset: 0,
      ciZranSize: 0,
      ciZranCount: 0,
    });
    this.write(ci.stored);
    this.write(header);

    if (this.blobToc) {
      this.write(encodeTarHeader(TOC_NAME_BLOB_META, ci.stored.length + BLOB_META_HEADER_SIZE));
      this.toc.push(
        {
          flags: tocFlagForCompressor(ciCompressor.name),
          name: TOC_NAME_BLOB_META,
          digest: hash("sha256", ciPlain),
          compressedOffset: ciOffset,
          compressedSize: ci.stored.length,
          uncompressedSize: ciPlain.length,
        },
        {
          flags: TOC_FLAG_COMPRESSION_NONE,
          name: TOC_NAME_BLOB_META_HEADER,
          digest: hash("sha256", header),
          compressedOffset: ciOffset + ci.stored.length,
          compressedSize: BLOB_META_HEADER_SIZE,
          uncompressedSize: BLOB_META_HEADER_SIZE,
        },
      );
      const digests = this.digests!.bytes();
      const digestOffset = this.pos;
      // The digest array is not part of the blob id (spec §4.5, §4.8); with inline meta the
      // blob is named by the hash of the whole file instead, so it is hashed then.
      this.write(digests, this.inlineMeta);
      this.write(encodeTarHeader(TOC_NAME_BLOB_DIGEST, digests.length));
      this.toc.push({
        flags: TOC_FLAG_COMPRESSION_NONE,
        name: TOC_NAME_BLOB_DIGEST,
        digest: hash("sha256", digests),
        compressedOffset: digestOffset,
        compressedSize: digests.length,
        uncompressedSize: digests.length,
      });
    }
    return { ...base, ciCompressor: ciCompressor.name, ciOffset, ciCompressedSize: ci.stored.length, ciUncompressedSize: ciPlain.length };
  }

  /** Writes the ToC and its tar header; returns the blob-table toc size and digest. */
  private writeToc(): { tocSize: number; tocDigest: Uint8Array } {
    const toc = encodeTocList(this.toc);
    const tocTar = encodeTarHeader(TOC_NAME_BLOB_TOC, toc.length);
    this.write(toc);
    this.write(tocTar);
    return { tocSize: toc.length + TAR_HEADER_SIZE, tocDigest: new Uint8Array(crypto.createHash("sha256").update(toc).update(tocTar).digest()) };
  }

  private close(fd: number): void {
    this.flush();
    this.state = "finished";
    this.fd = undefined;
    fs.closeSync(fd);
  }

  /**
   * Appends the blob meta (and with blobToc the digest array and ToC), closes the file and
   * returns the blob-table entry. With no chunks the file is deleted and `undefined` returned
   * (upstream emits no blob then). The file stays at `path`; see {@link finishInto}.
   */
  async finish(): Promise<BlobInfo | undefined> {
    const fd = this.ensureOpen("finish");
    if (this.inlineMeta) throw new InvalidInputError("Cannot finish an inline-meta blob with finish(): use sealMeta() and finishInline()");
    if (this.count === 0) {
      this.state = "finished";
      this.fd = undefined;
      fs.closeSync(fd);
      await fsp.rm(this.path, { force: true });
      return undefined;
    }
    const meta = this.writeMeta();
    const { tocSize, tocDigest } = this.blobToc ? this.writeToc() : { tocSize: 0, tocDigest: ZERO_DIGEST };
    this.close(fd);
    return { ...meta, blobId: this.blobHash.digest("hex"), compressedSize: this.pos, tocSize, tocDigest };
  }

  /**
   * Inline-meta blobs, step 1 (`--blob-inline-meta`, spec §4.1): writes everything up to the
   * bootstrap and returns the blob-table entry the layer's own bootstrap must carry: the
   * placeholder id {@link INLINE_BLOB_ID_PLACEHOLDER} and `compressedSize` = where the
   * bootstrap will start, as upstream writes it. Undefined when there are no chunks (the
   * bootstrap then references no blob of this layer, but the blob file is still written).
   */
  sealMeta(): BlobInfo | undefined {
    this.ensureOpen("seal the blob meta");
    if (!this.inlineMeta) throw new InvalidInputError("Cannot seal the blob meta: the writer was not created with inlineMeta");
    if (this.sealed) throw new InvalidInputError("Cannot seal the blob meta twice");
    const meta = this.writeMeta();
    this.sealed = meta;
    if (this.count === 0) return undefined;
    this.flush();
    return { ...meta, blobId: INLINE_BLOB_ID_PLACEHOLDER, compressedSize: this.pos, tocSize: 0, tocDigest: ZERO_DIGEST };
  }

  /**
   * Inline-meta blobs, step 2: appends the layer bootstrap (zstd-compressed when that
   * shrinks it) and the ToC, closes the file and renames it to `<blobDir>/<sha256 hex>`:
   * such a blob is named by the SHA-256 of all its bytes, which is also its OCI layer
   * digest (spec nydus-image.md §2.2).
   * @returns the layer digest and size, and the blob-table entry a merged bootstrap should
   *   carry for it (real id, file size, ToC digest), absent when there are no chunks
   */
  async finishInline(bootstrap: Uint8Array, blobDir: string): Promise<InlineBlob> {
    const fd = this.ensureOpen("finish the blob");
    if (!this.sealed) throw new InvalidInputError("Cannot finish the blob: sealMeta() was not called");
    const bootOffset = this.pos;
    const zstd = codecByName("zstd");
    const boot = compressChunk(zstd, bootstrap);
    this.write(boot.stored);
    this.write(encodeTarHeader(TOC_NAME_BOOTSTRAP, boot.stored.length));
    this.toc.push({
      flags: boot.compressed ? TOC_FLAG_COMPRESSION_ZSTD : TOC_FLAG_COMPRESSION_NONE,
      name: TOC_NAME_BOOTSTRAP,
      digest: hash("sha256", bootstrap),
      compressedOffset: bootOffset,
      compressedSize: boot.stored.length,
      uncompressedSize: bootstrap.length,
    });
    const { tocSize, tocDigest } = this.writeToc();
    this.close(fd);
    const digest = this.blobHash.digest("hex");
    await fsp.rename(this.path, path.join(blobDir, digest));
    const info = this.count > 0 ? { ...this.sealed, blobId: digest, compressedSize: this.pos, tocSize, tocDigest } : undefined;
    return { digest, size: this.pos, info };
  }

  /**
   * {@link finish}, then atomically renames the file to `<blobDir>/<blobId>` (same file system
   * as `path` required). Returns undefined (and leaves nothing behind) when there were no chunks.
   */
  async finishInto(blobDir: string): Promise<BlobInfo | undefined> {
    const info = await this.finish();
    if (info) await fsp.rename(this.path, path.join(blobDir, info.blobId));
    return info;
  }

  /** Closes and deletes the temporary file. Safe to call in any state, also after a failed write. */
  async abort(): Promise<void> {
    const fd = this.fd;
    this.fd = undefined;
    this.state = "aborted";
    if (fd !== undefined) fs.closeSync(fd);
    await fsp.rm(this.path, { force: true });
  }
}
