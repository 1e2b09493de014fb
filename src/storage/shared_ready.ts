/**
 * Chunk readiness shared between threads: per blob, a `SharedArrayBuffer` bitmap (one bit per
 * `ChunkInfo.index`, 32 per Int32 word) that the thread owning the {@link BlobCache} keeps equal
 * to the cache's persisted map, and that other threads (the FUSE serving worker) read with
 * `Atomics.load` to serve cached chunks straight from the `.blob.data` files.
 *
 * A bit is set only after the cache has made the chunk's verified bytes durable and persisted
 * its own bit; it is cleared as soon as the cache drops a chunk. So a set bit always means the
 * data file holds the chunk's verified bytes.
 *
 * The reading thread counts the chunks it serves per blob in a shared Int32 array; the cache's
 * metrics fold them into their `hits` at each snapshot.
 */
import type { RafsImage } from "../rafs/model.ts";
import type { BlobCache } from "./cache.ts";

/** Words of a bitmap for `bits` chunks. */
const wordsFor = (bits: number): number => Math.max(1, Math.ceil(bits / 32));

/** A view of one blob's shared readiness bitmap. */
export class ReadyBits {
  readonly #words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.#words = new Int32Array(buffer);
  }

  /** A zeroed bitmap for `chunkCount` chunks. */
  static create(chunkCount: number): ReadyBits {
    return new ReadyBits(new SharedArrayBuffer(wordsFor(chunkCount) * 4));
  }

  has(index: number): boolean {
    const w = index >>> 5;
    return index >= 0 && w < this.#words.length && (Atomics.load(this.#words, w) & (1 << (index & 31))) !== 0;
  }

  set(index: number): void {
    const w = index >>> 5;
    if (index >= 0 && w < this.#words.length) Atomics.or(this.#words, w, 1 << (index & 31));
  }

  clear(index: number): void {
    const w = index >>> 5;
    if (index >= 0 && w < this.#words.length) Atomics.and(this.#words, w, ~(1 << (index & 31)));
  }
}

/** What {@link shareReadiness} shares (plain buffers, for `postMessage` / `workerData`). */
export interface SharedReadiness {
  /** Readiness bitmaps ({@link ReadyBits}) by blob index. */
  ready: SharedArrayBuffer[];
  /** Int32 cache-hit counters by blob index, for chunks served by another thread. */
  hits: SharedArrayBuffer;
}

/**
 * Creates one shared bitmap per blob of `image`, hooks it to `cache` (bits follow the cache's
 * persisted map from now on), then loads the chunks the cache already holds. Blobs whose cache
 * files cannot be opened start empty (their reads go through the cache as before). Hits counted
 * in `hits` show in `cache.metrics`.
 */
export async function shareReadiness(cache: BlobCache, image: RafsImage): Promise<SharedReadiness> {
  const bits = image.blobs.map((b) => ReadyBits.create(b.chunkCount));
  cache.onReadyChange = (blobIndex, indices, ready) => {
    const b = bits[blobIndex];
    if (!b) return;
    for (const i of indices) (ready ? b.set(i) : b.clear(i));
  };
  // The blobs' cache files open in parallel (each is a few fs calls, and a new one syncs).
  await Promise.all(
    bits.map(async (b, blobIndex) => {
      for (const i of await cache.readyChunks(blobIndex).catch(() => [] as number[])) b.set(i);
    }),
  );
  const hits = new SharedArrayBuffer(Math.max(1, image.blobs.length) * 4);
  const counts = new Int32Array(hits);
  cache.metrics.addCollector(() => {
    for (let i = 0; i < image.blobs.length; i++) {
      const n = Atomics.exchange(counts, i, 0);
      if (n !== 0) cache.metrics.blob(image.blobs[i]!.blobId).hits += n;
    }
  });
  return { ready: bits.map((b) => b.buffer), hits };
}
