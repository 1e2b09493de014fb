/**
 * A {@link FileDataReader} over any verified chunk reader (`(chunk) => Promise<bytes>`), e.g.
 * `src/local/chunk_source.ts` or a lazy storage backend: maps a file range to the chunks that
 * cover it and copies the pieces out. Keeps the chunk lists of recently read files and the last
 * few chunks, because the kernel reads a file in 128 KiB pieces and a chunk can be 1 MiB or more.
 */
import type { ChunkInfo, FileChunk, RafsImage, RafsInode } from "../rafs/model.ts";
import type { FileDataReader } from "./rafs_fs.ts";

/** Options of {@link fileReaderFromChunks}. */
export interface ChunkFileReaderOptions {
  /** Decoded chunks kept (by blob index and compressed offset). @default 16 */
  cachedChunks?: number;
  /** Chunk lists kept (by inode). @default 256 */
  cachedFiles?: number;
}

/**
 * @example
 * const src = new ChunkSource(image, { blobDir });
 * const reader = fileReaderFromChunks(image, (c) => src.read(c));
 */
export function fileReaderFromChunks(
  image: RafsImage,
  readChunk: (chunk: ChunkInfo, inode: RafsInode, fileOffset: number) => Promise<Uint8Array>,
  options: ChunkFileReaderOptions = {},
): FileDataReader {
  const maxChunks = options.cachedChunks ?? 16;
  const maxFiles = options.cachedFiles ?? 256;
  const lists = new Map<number, FileChunk[]>();
  const chunks = new Map<string, Promise<Uint8Array>>();

  const listOf = (inode: RafsInode): FileChunk[] => {
    let l = lists.get(inode.ino);
    if (l === undefined) {
      l = image.chunks(inode);
      if (lists.size >= maxFiles) lists.delete(lists.keys().next().value as number);
      lists.set(inode.ino, l);
    }
    return l;
  };

  const chunkData = (fc: FileChunk, inode: RafsInode): Promise<Uint8Array> => {
    const key = `${fc.chunk.blobIndex}:${fc.chunk.compressedOffset}:${fc.chunk.index}`;
    let p = chunks.get(key);
    if (p !== undefined) {
      chunks.delete(key); // refresh LRU position
      chunks.set(key, p);
      return p;
    }
    p = readChunk(fc.chunk, inode, fc.fileOffset);
    if (maxChunks > 0) {
      if (chunks.size >= maxChunks) chunks.delete(chunks.keys().next().value as string);
      chunks.set(key, p);
      // A failed chunk is not kept: a later read retries it (and fails again if still bad).
      p.catch(() => {
        if (chunks.get(key) === p) chunks.delete(key);
      });
    }
    return p;
  };

  return {
    async read(inode: RafsInode, offset: number, length: number): Promise<Uint8Array> {
      const end = Math.min(inode.size, offset + length);
      if (end <= offset) return new Uint8Array(0);
      const list = listOf(inode);
      // First chunk whose end is past offset.
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (list[mid].fileOffset + list[mid].chunk.uncompressedSize <= offset) lo = mid + 1;
        else hi = mid;
      }
      const pieces: { fc: FileChunk; p: Promise<Uint8Array> }[] = [];
      for (let i = lo; i < list.length && list[i].fileOffset < end; i++) {
        const p = chunkData(list[i], inode);
        p.catch(() => {}); // awaited below; a later piece may fail while an earlier one is awaited
        pieces.push({ fc: list[i], p });
      }
      const out = new Uint8Array(end - offset);
      let filled = offset;
      for (const { fc, p } of pieces) {
        const data = await p;
        if (fc.fileOffset > filled) throw new RangeError(`Cannot read inode ${inode.ino}: no chunk covers offset ${filled}`);
        const from = filled - fc.fileOffset;
        const to = Math.min(data.length, end - fc.fileOffset);
        if (to <= from) throw new RangeError(`Cannot read inode ${inode.ino}: chunk at ${fc.fileOffset} is ${data.length} bytes, short of ${filled}`);
        out.set(data.subarray(from, to), filled - offset);
        filled = fc.fileOffset + to;
      }
      if (filled !== end) throw new RangeError(`Cannot read inode ${inode.ino}: chunks end at ${filled}, file data at ${end}`);
      return out;
    },
  };
}
