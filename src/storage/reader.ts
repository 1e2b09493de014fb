/**
 * Regular-file reads through the blob cache: the bytes of `[offset, offset + length)` of an
 * inode, shorter only at end of file; holes between chunks (v5) read as zeros. This is the
 * {@link FileDataReader} the filesystem layer calls.
 */
import { FormatError, InvalidInputError } from "../internal/errors.ts";
import type { FileChunk, RafsImage, RafsInode } from "../rafs/model.ts";
import type { BlobCache, ChunkReadOptions } from "./cache.ts";

/** What the filesystem layer needs to read file data. */
export interface FileDataReader {
  /**
   * Bytes [offset, offset + length) of a regular file, verified; shorter only at EOF.
   * Throws (e.g. DigestMismatchError) when a chunk cannot be read or verified.
   */
  read(inode: RafsInode, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** Largest single read. FUSE asks for at most 1 MiB; larger reads are the caller's to split. */
export const MAX_READ = 64 << 20;

/** Sorted, checked chunk lists of recently read files (ino → chunks), bounded (LRU). */
export class ChunkLists {
  readonly #lists = new Map<number, FileChunk[]>();

  constructor(
    readonly image: RafsImage,
    readonly limit = 256,
  ) {}

  /**
   * A file's chunks sorted by file offset, checked to lie inside the file without overlap.
   * @throws FormatError for overlapping chunks or chunks past the end of the file
   */
  of(inode: RafsInode): FileChunk[] {
    let list = this.#lists.get(inode.ino);
    if (list) {
      this.#lists.delete(inode.ino);
      this.#lists.set(inode.ino, list); // most recently used last
      return list;
    }
    list = [...this.image.chunks(inode)].sort((a, b) => a.fileOffset - b.fileOffset);
    let end = 0;
    for (const fc of list) {
      if (fc.fileOffset < end || fc.fileOffset + fc.chunk.uncompressedSize > inode.size) {
        throw new FormatError("FileChunks", "file_offset", fc.fileOffset, `inode ${inode.ino}: chunk at ${fc.fileOffset} (+${fc.chunk.uncompressedSize}) overlaps or exceeds the ${inode.size}-byte file`);
      }
      end = fc.fileOffset + fc.chunk.uncompressedSize;
    }
    this.#lists.set(inode.ino, list);
    while (this.#lists.size > this.limit) this.#lists.delete(this.#lists.keys().next().value!);
    return list;
  }
}

/** Index of the first chunk of a sorted list that ends after `offset` (binary search). */
export function firstChunkAfter(list: readonly FileChunk[], offset: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const fc = list[mid]!;
    if (fc.fileOffset + fc.chunk.uncompressedSize <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class FileReader implements FileDataReader {
  readonly #chunks: ChunkLists;

  constructor(
    readonly image: RafsImage,
    readonly cache: BlobCache,
    readonly options: { chunkListCache?: number } = {},
  ) {
    this.#chunks = new ChunkLists(image, options.chunkListCache ?? 256);
  }

  /** A file's chunks sorted by file offset, checked to lie inside the file without overlap. */
  chunksOf(inode: RafsInode): FileChunk[] {
    return this.#chunks.of(inode);
  }

  /**
   * Bytes of a regular file.
   * @throws InvalidInputError for a non-file inode; RangeError for bad arguments; the cache's errors
   */
  read(inode: RafsInode, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    return this.readWith(inode, offset, length, { signal });
  }

  /** {@link read} with cache options (priority). */
  async readWith(inode: RafsInode, offset: number, length: number, options: ChunkReadOptions = {}): Promise<Uint8Array> {
    if (inode.kind !== "reg") throw new InvalidInputError(`Cannot read inode ${inode.ino}: it is a ${inode.kind}, not a regular file`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > MAX_READ) {
      throw new RangeError(`Cannot read ${length} bytes at ${offset}: offset must be ≥ 0 and length in [0, ${MAX_READ}]`);
    }
    const end = Math.min(inode.size, offset + length);
    if (end <= offset) return new Uint8Array();
    const list = this.chunksOf(inode);
    const wanted: FileChunk[] = [];
    for (let i = firstChunkAfter(list, offset); i < list.length && list[i]!.fileOffset < end; i++) wanted.push(list[i]!);
    const out = new Uint8Array(end - offset); // zeros for holes
    const data = await this.cache.readChunks(wanted.map((fc) => fc.chunk), options);
    for (let k = 0; k < wanted.length; k++) {
      const fc = wanted[k]!;
      const plain = data[k]!;
      const from = Math.max(offset, fc.fileOffset);
      const to = Math.min(end, fc.fileOffset + plain.length);
      if (to > from) out.set(plain.subarray(from - fc.fileOffset, to - fc.fileOffset), from - offset);
    }
    return out;
  }
}
