/**
 * Background prefetch: warms the blob cache with the data of given inodes (the image's
 * prefetch table by default, or paths), directories meaning their whole subtree. It reads
 * through the same cache as on-demand reads, at low priority (an on-demand request waiting
 * for a request slot goes first), in batches, and stops when its signal aborts.
 */
import { InvalidInputError } from "../internal/errors.ts";
import type { ChunkInfo, RafsImage } from "../rafs/model.ts";
import type { BlobCache } from "./cache.ts";

/** Default {@link PrefetchOptions.gap}. */
export const PREFETCH_GAP = 128 * 1024;

export interface PrefetchOptions {
  /** Inode numbers to prefetch. @default image.prefetch */
  inodes?: readonly number[];
  /** Absolute paths to prefetch (added to `inodes`). */
  paths?: readonly string[];
  /** Chunks handed to the cache at once. @default 64 */
  batch?: number;
  /**
   * Bytes between two wanted chunks that one request may read through rather than split in two
   * (prefetched files are read soon anyway; a round trip costs more than a few KiB on most links).
   * @default 128 KiB
   */
  gap?: number;
  signal?: AbortSignal;
}

export interface PrefetchReport {
  files: number;
  chunks: number;
  /** Plain bytes of the chunks read. */
  bytes: number;
}

/** Unique chunks of the regular files under the given inodes, in the order given. */
export function prefetchChunks(image: RafsImage, inodes: readonly number[]): { files: number; chunks: ChunkInfo[] } {
  const seenIno = new Set<number>();
  const seenChunk = new Set<string>();
  const chunks: ChunkInfo[] = [];
  let files = 0;
  const stack = [...inodes].reverse();
  while (stack.length > 0) {
    const ino = stack.pop()!;
    if (seenIno.has(ino)) continue;
    seenIno.add(ino);
    const inode = image.inode(ino);
    if (inode.kind === "dir") {
      const kids = image.readdir(inode);
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!.ino);
    } else if (inode.kind === "reg") {
      files++;
      for (const fc of image.chunks(inode)) {
        const key = `${fc.chunk.blobIndex}:${fc.chunk.index}`;
        if (seenChunk.has(key)) continue;
        seenChunk.add(key);
        chunks.push(fc.chunk);
      }
    }
  }
  return { files, chunks };
}

/**
 * Prefetches through `cache`; resolves when done, rejects with the abort reason when cancelled.
 * @throws InvalidInputError for a path that is not in the image
 */
export async function prefetch(cache: BlobCache, options: PrefetchOptions = {}): Promise<PrefetchReport> {
  const image = cache.image;
  const inodes = [...(options.inodes ?? (options.paths ? [] : image.prefetch))];
  for (const p of options.paths ?? []) {
    const inode = image.lookup(p);
    if (!inode) throw new InvalidInputError(`Cannot prefetch "${p}": no such path in the image`);
    inodes.push(inode.ino);
  }
  const { files, chunks } = prefetchChunks(image, inodes);
  const batch = Math.max(1, options.batch ?? 64);
  let bytes = 0;
  for (let i = 0; i < chunks.length; i += batch) {
    options.signal?.throwIfAborted();
    const part = chunks.slice(i, i + batch);
    await cache.readChunks(part, { priority: "low", signal: options.signal, gap: options.gap ?? PREFETCH_GAP });
    for (const c of part) bytes += c.uncompressedSize;
  }
  return { files, chunks: chunks.length, bytes };
}
