/**
 * File data of an image read from a local blob directory (`<blobDir>/<blobId>`), for RAFS v5
 * and v6 alike: everything goes through the image's {@link ChunkInfo} records (v5 blobs have no
 * blob meta, and the v6 chunk table carries the same fields), so there is one read path.
 *
 * Every chunk is bounds-checked against its blob file, decompressed with the blob's compressor
 * when flagged, and **verified** against its digest (and CRC-32C when recorded) before any byte
 * is handed out. Memory is bounded by one chunk. Open blob files are cached until {@link
 * ChunkSource.close}.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { codecByName, type Codec } from "../compression/codec.ts";
import { crc32c, hash } from "../digest/hasher.ts";
import { toHex } from "../internal/bytes.ts";
import { DigestMismatchError, FormatError, NotFoundError, UnsafePathError } from "../internal/errors.ts";
import type { ChunkInfo, FileChunk, RafsImage, RafsInode } from "../rafs/model.ts";

/** Largest chunk RAFS allows (spec §2.9: chunk size ≤ 16 MiB). */
const MAX_CHUNK = 0x100_0000;

/** Options of {@link ChunkSource}. */
export interface ChunkSourceOptions {
  /** Directory holding the data blobs, each named by its blob id. */
  blobDir: string;
}

/** Where a chunk is used, for error messages. */
export interface ChunkContext {
  /** Path of the file in the image ("/a/b"). */
  path?: string;
  fileOffset?: number;
}

interface OpenBlob {
  fh: fsp.FileHandle;
  size: number;
  codec: Codec;
}

/**
 * Blob ids name files in the blob directory: only a plain file name is acceptable, so a hostile
 * bootstrap cannot make us read `../../etc/shadow`.
 * @throws UnsafePathError
 */
export function checkBlobFileName(blobId: string): void {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(blobId) || blobId === "." || blobId === "..") {
    throw new UnsafePathError(blobId, "a blob id must be a plain file name (letters, digits, '.', '_', '-')");
  }
}

/**
 * Reads verified chunk data of an image from a blob directory.
 *
 * @example
 * const src = new ChunkSource(image, { blobDir: "blobs" });
 * try {
 *   for await (const { fileOffset, data } of src.fileData(inode, "/etc/passwd")) out.write(data);
 * } finally {
 *   await src.close();
 * }
 */
export class ChunkSource {
  private readonly open = new Map<number, Promise<OpenBlob>>();
  private readonly maxChunk: number;

  constructor(
    readonly image: RafsImage,
    readonly options: ChunkSourceOptions,
  ) {
    this.maxChunk = Math.min(MAX_CHUNK, Math.max(image.superBlock.chunkSize, 4096));
  }

  /** Host path of a blob's data file. @throws UnsafePathError, FormatError for a bad blob index */
  blobPath(blobIndex: number): string {
    const info = this.image.blobs[blobIndex];
    if (info === undefined) throw new FormatError("BlobTable", "blob_index", 0, `blob index ${blobIndex} of ${this.image.blobs.length} blobs`);
    checkBlobFileName(info.blobId);
    return path.join(this.options.blobDir, info.blobId);
  }

  private blob(blobIndex: number): Promise<OpenBlob> {
    let p = this.open.get(blobIndex);
    if (p === undefined) {
      p = (async () => {
        const file = this.blobPath(blobIndex);
        const info = this.image.blobs[blobIndex];
        let fh: fsp.FileHandle;
        try {
          fh = await fsp.open(file, "r");
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") throw new NotFoundError(`blob "${info.blobId}"`, `no file "${file}" in the blob directory`);
          throw err;
        }
        const { size } = await fh.stat();
        // v5 images record the image compressor per blob; chunks flagged uncompressed ignore it.
        return { fh, size, codec: codecByName(info.compressor) };
      })();
      this.open.set(blobIndex, p);
      // A failed open is not cached: the next call reports the same error afresh.
      p.catch(() => this.open.delete(blobIndex));
    }
    return p;
  }

  /**
   * The plain, verified bytes of one chunk.
   * @throws NotFoundError when the blob file is missing
   * @throws FormatError when the chunk lies outside its blob or does not decompress
   * @throws DigestMismatchError naming the blob id, chunk index and file path
   */
  async read(chunk: ChunkInfo, ctx: ChunkContext = {}): Promise<Uint8Array> {
    const info = this.image.blobs[chunk.blobIndex];
    const b = await this.blob(chunk.blobIndex);
    const where = `chunk ${chunk.index} of blob ${info.blobId}${ctx.path !== undefined ? ` (file "${ctx.path}"${ctx.fileOffset !== undefined ? ` at ${ctx.fileOffset}` : ""})` : ""}`;
    const struct = `Blob(${info.blobId})`;
    const { compressedOffset: off, compressedSize: clen, uncompressedSize: ulen } = chunk;
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(clen) || off < 0 || clen < 0 || off + clen > b.size) {
      throw new FormatError(struct, "compressed_offset", off, `${where}: ${clen} bytes at ${off} lie beyond the ${b.size}-byte blob file`);
    }
    if (ulen < 0 || ulen > this.maxChunk) throw new FormatError(struct, "uncompressed_size", off, `${where}: ${ulen} bytes exceeds the chunk size ${this.maxChunk}`);
    if (!chunk.compressed && clen !== ulen) throw new FormatError(struct, "compressed_size", off, `${where}: uncompressed chunk stores ${clen} bytes for ${ulen}`);
    if (clen > 2 * this.maxChunk + 4096) throw new FormatError(struct, "compressed_size", off, `${where}: ${clen} stored bytes is implausibly large`);
    const stored = new Uint8Array(clen);
    for (let done = 0; done < clen; ) {
      const { bytesRead } = await b.fh.read(stored, done, clen - done, off + done);
      if (bytesRead === 0) throw new FormatError(struct, "compressed_offset", off, `${where}: unexpected end of the blob file`);
      done += bytesRead;
    }
    let plain: Uint8Array = stored;
    if (chunk.compressed) {
      try {
        plain = b.codec.decompress(stored, ulen);
      } catch (cause) {
        throw new FormatError(struct, "(chunk data)", off, `${where}: cannot decompress with ${b.codec.name}: ${String(cause)}`, { cause });
      }
    }
    const actual = hash(this.image.superBlock.digester, plain);
    if (toHex(actual) !== toHex(chunk.digest)) throw new DigestMismatchError(where, toHex(chunk.digest), toHex(actual));
    if (chunk.crc32 !== undefined) {
      const crc = crc32c(plain);
      if (crc !== chunk.crc32 >>> 0) throw new DigestMismatchError(`CRC-32C of ${where}`, hex32(chunk.crc32), hex32(crc));
    }
    return plain;
  }

  /**
   * The verified data of a regular file, chunk by chunk in file order (sorted by file offset;
   * gaps, which v5 hole files may have, are the caller's to zero-fill).
   * @throws FormatError when a chunk lies outside the file size or overlaps the previous one
   */
  async *fileData(inode: RafsInode, filePath?: string): AsyncGenerator<{ fileOffset: number; data: Uint8Array; chunk: FileChunk }> {
    const chunks = [...this.image.chunks(inode)].sort((a, b) => a.fileOffset - b.fileOffset);
    let end = 0;
    for (const fc of chunks) {
      if (fc.fileOffset < end || fc.fileOffset + fc.chunk.uncompressedSize > inode.size) {
        throw new FormatError("FileChunks", "file_offset", fc.fileOffset, `file "${filePath ?? inode.ino}": chunk at ${fc.fileOffset} (+${fc.chunk.uncompressedSize}) overlaps or exceeds the ${inode.size}-byte file`);
      }
      end = fc.fileOffset + fc.chunk.uncompressedSize;
      const data = await this.read(fc.chunk, { path: filePath, fileOffset: fc.fileOffset });
      yield { fileOffset: fc.fileOffset, data, chunk: fc };
    }
  }

  /** Closes every cached blob file. */
  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const p of all) {
      const b = await p.catch((err: unknown) => {
        void err; // the open failed and was reported to its caller; nothing to close
        return undefined;
      });
      await b?.fh.close();
    }
  }
}

function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
