/**
 * Synchronous reads of file data that the blob cache already holds, for a thread that must not
 * wait on the cache's owner (the FUSE serving worker). It reads the `<blobId>.blob.data` files
 * with `fs.readSync` (each opened read-only once, on first use) and trusts only the shared
 * readiness bits ({@link ReadyBits}): when any chunk a read touches is not ready, or a data file
 * is shorter than its bits claim, it reads nothing and the caller goes the slow way (the
 * {@link BlobCache}, which fetches, verifies and persists).
 */
import fs from "node:fs";
import { InvalidInputError } from "../internal/errors.ts";
import type { RafsImage, RafsInode } from "../rafs/model.ts";
import { cacheFiles } from "./cache.ts";
import { ChunkLists, firstChunkAfter, type FileDataReader } from "./reader.ts";
import { ReadyBits } from "./shared_ready.ts";

/** Thrown by {@link CachedFileReader.read} when the bytes are not all in the cache. */
export class NotCachedError extends Error {
  override name = "NotCachedError";
}

export class CachedFileReader implements FileDataReader {
  readonly #bits: ReadyBits[];
  readonly #fds: (number | undefined)[];
  readonly #chunks: ChunkLists;
  readonly #hits: Int32Array | undefined;

  /**
   * @param dir the cache directory of the {@link BlobCache} that owns the files
   * @param shared readiness bitmaps and, optionally, hit counters (from {@link shareReadiness})
   */
  constructor(
    readonly image: RafsImage,
    readonly dir: string,
    shared: { ready: readonly SharedArrayBuffer[]; hits?: SharedArrayBuffer },
  ) {
    this.#bits = shared.ready.map((b) => new ReadyBits(b));
    this.#hits = shared.hits ? new Int32Array(shared.hits) : undefined;
    this.#fds = new Array(image.blobs.length).fill(undefined);
    this.#chunks = new ChunkLists(image);
  }

  /**
   * Reads `[offset, offset + out.length)` of a regular file into `out` (clamped to the file's
   * end; holes between chunks become zeros).
   * @returns the number of bytes read, or -1 when some touched chunk is not ready (nothing usable
   *   was read)
   * @throws FormatError for a malformed chunk list; fs errors other than a short file
   */
  readInto(inode: RafsInode, offset: number, out: Uint8Array): number {
    const end = Math.min(inode.size, offset + out.length);
    if (end <= offset) return 0;
    const list = this.#chunks.of(inode);
    const first = firstChunkAfter(list, offset);
    for (let i = first; i < list.length && list[i]!.fileOffset < end; i++) {
      const c = list[i]!.chunk;
      if (!this.#bits[c.blobIndex]?.has(c.index)) return -1;
    }
    let pos = offset; // bytes before pos are filled
    for (let i = first; i < list.length && list[i]!.fileOffset < end; i++) {
      const fc = list[i]!;
      const from = Math.max(offset, fc.fileOffset);
      const to = Math.min(end, fc.fileOffset + fc.chunk.uncompressedSize);
      if (from > pos) out.fill(0, pos - offset, from - offset);
      const fd = this.#fd(fc.chunk.blobIndex);
      let done = 0;
      while (done < to - from) {
        const n = fs.readSync(fd, out, from - offset + done, to - from - done, fc.chunk.uncompressedOffset + (from - fc.fileOffset) + done);
        if (n === 0) return -1; // shorter than the bits claim: let the cache sort it out
        done += n;
      }
      if (this.#hits) Atomics.add(this.#hits, fc.chunk.blobIndex, 1);
      pos = to;
    }
    if (pos < end) out.fill(0, pos - offset, end - offset);
    return end - offset;
  }

  /** {@link FileDataReader} form of {@link readInto}. @throws NotCachedError when not all cached */
  async read(inode: RafsInode, offset: number, length: number): Promise<Uint8Array> {
    if (inode.kind !== "reg") throw new InvalidInputError(`Cannot read inode ${inode.ino}: it is a ${inode.kind}, not a regular file`);
    const out = new Uint8Array(Math.max(0, Math.min(length, inode.size - offset)));
    const n = this.readInto(inode, offset, out);
    if (n < 0) throw new NotCachedError(`inode ${inode.ino} [${offset}, +${length}) is not all in the cache`);
    return out.subarray(0, n);
  }

  #fd(blobIndex: number): number {
    let fd = this.#fds[blobIndex];
    if (fd === undefined) {
      fd = fs.openSync(cacheFiles(this.dir, this.image.blobs[blobIndex]!.blobId).data, "r");
      this.#fds[blobIndex] = fd;
    }
    return fd;
  }

  /** Closes the data files opened so far. */
  close(): void {
    for (let i = 0; i < this.#fds.length; i++) {
      const fd = this.#fds[i];
      if (fd !== undefined) fs.closeSync(fd);
      this.#fds[i] = undefined;
    }
  }
}
