/**
 * The on-disk blob cache of the lazy runtime. Per blob, under the cache directory:
 *
 * - `<blobId>.blob.data`: the UNCOMPRESSED blob-cache view, each chunk's plain bytes at its
 *   `uncompressedOffset` (a sparse file: absent chunks are holes);
 * - `<blobId>.chunk_map`: the persisted readiness map ({@link ChunkMap}), one bit per chunk index.
 *
 * A fetched chunk is decompressed and verified before anyone sees it. Then, in order: the data
 * is written, the data file is fdatasync'ed, the bit is set and the map is written and fsync'ed.
 * So a kill at any point leaves a valid cache: a set bit implies durable, verified data.
 *
 * Reads of a chunk that is already being fetched share that fetch (single-flight). Missing chunks
 * of one blob whose compressed ranges are contiguous (or, with a `gap` allowance, at most that
 * far apart: prefetch) are merged into one backend request (up to `mergeLimit` bytes), and at
 * most `maxInFlight` requests run at once, on-demand reads first.
 */
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { DigestMismatchError, FormatError } from "../internal/errors.ts";
import type { BlobInfo, ChunkInfo, RafsImage } from "../rafs/model.ts";
import type { BlobBackend } from "./backend.ts";
import { ChunkMap } from "./chunk_map.ts";
import { StorageMetrics } from "./metrics.ts";
import { RequestSlots, type Priority } from "./slots.ts";
import { checkBlobId, checkChunkBounds, decodeChunk, describeChunk, verifyPlain } from "./verify.ts";

export interface BlobCacheOptions {
  /** Cache directory (created if needed). */
  dir: string;
  backend: BlobBackend;
  image: RafsImage;
  /** Counters to update; a new {@link StorageMetrics} by default. */
  metrics?: StorageMetrics;
  /** Largest merged backend request in bytes. @default 1 MiB */
  mergeLimit?: number;
  /** Backend requests at once. @default 8 */
  maxInFlight?: number;
  /** Re-verify each cached chunk the first time this instance serves it. @default false */
  verifyOnHit?: boolean;
}

export interface ChunkReadOptions {
  /** "low" for prefetch. @default "high" */
  priority?: Priority;
  signal?: AbortSignal;
  /**
   * Bytes of unrequested data one request may span between two wanted chunks of a blob (read
   * and dropped), to save a round trip per gap; the request still stays within `mergeLimit`.
   * @default 0 (only contiguous chunks share a request)
   */
  gap?: number;
}

interface BlobState {
  info: BlobInfo;
  data: fs.FileHandle;
  map: ChunkMap;
  /** Chunk index → its fetch (kept until the chunk is durable, so nobody fetches it twice). */
  inflight: Map<number, Flight>;
  /** Chunks re-verified by this instance (verifyOnHit). */
  checked: Set<number>;
}

interface Flight {
  promise: Promise<Uint8Array>;
  group: Group;
}

interface Group {
  priority: Priority;
  /** Moves a waiting low-priority request ahead and detaches it from the prefetch signal. */
  promote(): void;
}

const abortError = () => new DOMException("The operation was aborted", "AbortError");

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === "AbortError";
}

/** Races `p` against `signal` (the work behind `p` goes on for other waiters). */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason ?? abortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? abortError());
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Host paths of a blob's cache files under `dir`.
 * @throws UnsafePathError when the blob id is not a plain file name
 */
export function cacheFiles(dir: string, blobId: string): { data: string; map: string } {
  checkBlobId(blobId);
  return { data: path.join(dir, `${blobId}.blob.data`), map: path.join(dir, `${blobId}.chunk_map`) };
}

export class BlobCache {
  readonly dir: string;
  readonly backend: BlobBackend;
  readonly image: RafsImage;
  readonly metrics: StorageMetrics;
  readonly slots: RequestSlots;
  readonly mergeLimit: number;
  readonly verifyOnHit: boolean;
  /**
   * Told when chunks become ready (after their data and their persisted bit are durable) and
   * when a cached chunk is dropped (before its data is rewritten). See shared_ready.ts.
   */
  onReadyChange?: (blobIndex: number, chunkIndices: readonly number[], ready: boolean) => void;
  readonly #states = new Map<number, Promise<BlobState>>();
  /** Background persistence of fetched chunks (awaited by {@link flush}). */
  readonly #pending = new Set<Promise<void>>();
  #persistError: unknown;

  constructor(options: BlobCacheOptions) {
    this.dir = options.dir;
    this.backend = options.backend;
    this.image = options.image;
    this.metrics = options.metrics ?? new StorageMetrics();
    this.backend.onFetch ??= (blobId, endpoint, bytes, ok) => this.metrics.recordFetch(blobId, endpoint, bytes, ok);
    this.slots = new RequestSlots(options.maxInFlight ?? 8);
    this.mergeLimit = options.mergeLimit ?? 1 << 20;
    this.verifyOnHit = options.verifyOnHit ?? false;
  }

  /** Host paths of a blob's cache files. @throws UnsafePathError, FormatError */
  files(blobIndex: number): { data: string; map: string } {
    return cacheFiles(this.dir, this.#info(blobIndex).blobId);
  }

  #info(blobIndex: number): BlobInfo {
    const info = this.image.blobs[blobIndex];
    if (info === undefined) throw new FormatError("BlobTable", "blob_index", 0, `blob index ${blobIndex} of ${this.image.blobs.length} blobs`);
    return info;
  }

  #state(blobIndex: number): Promise<BlobState> {
    let p = this.#states.get(blobIndex);
    if (!p) {
      p = (async () => {
        const info = this.#info(blobIndex);
        const files = this.files(blobIndex);
        await fs.mkdir(this.dir, { recursive: true });
        let data: fs.FileHandle;
        let created = false;
        try {
          data = await fs.open(files.data, "r+");
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
          data = await fs.open(files.data, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
          created = true;
        }
        try {
          // A new data file makes any old map meaningless: start it empty.
          const map = await ChunkMap.open(files.map, info.chunkCount, created);
          if (created) {
            await data.sync();
            const dirHandle = await fs.open(this.dir, "r");
            await dirHandle.sync().finally(() => dirHandle.close());
          }
          return { info, data, map, inflight: new Map(), checked: new Set() };
        } catch (err) {
          await data.close();
          throw err;
        }
      })();
      this.#states.set(blobIndex, p);
      p.catch(() => this.#states.delete(blobIndex));
    }
    return p;
  }

  /** Whether a chunk's verified bytes are in the cache. */
  async isReady(chunk: ChunkInfo): Promise<boolean> {
    return (await this.#state(chunk.blobIndex)).map.has(chunk.index);
  }

  /** The plain, verified bytes of one chunk. */
  async readChunk(chunk: ChunkInfo, options: ChunkReadOptions = {}): Promise<Uint8Array> {
    return (await this.readChunks([chunk], options))[0]!;
  }

  /**
   * The plain, verified bytes of each chunk (same order), fetching the missing ones in merged
   * requests.
   * @throws DigestMismatchError naming blob id, chunk index and offsets; NotFoundError,
   *   RegistryError from the backend; FormatError for chunk records outside their blob
   */
  async readChunks(chunks: readonly ChunkInfo[], options: ChunkReadOptions = {}): Promise<Uint8Array[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#readChunksOnce(chunks, options);
      } catch (err) {
        // A shared fetch started by a cancelled prefetch: our own read goes on.
        if (!isAbort(err) || options.signal?.aborted || attempt >= 3) throw err;
      }
    }
  }

  async #readChunksOnce(chunks: readonly ChunkInfo[], options: ChunkReadOptions): Promise<Uint8Array[]> {
    const priority = options.priority ?? "high";
    const results = new Array<Promise<Uint8Array>>(chunks.length);
    const byBlob = new Map<number, number[]>();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      checkChunkBounds(this.#info(c.blobIndex), c);
      let list = byBlob.get(c.blobIndex);
      if (!list) byBlob.set(c.blobIndex, (list = []));
      list.push(i);
    }
    for (const [blobIndex, positions] of byBlob) {
      const state = await this.#state(blobIndex);
      const counters = this.metrics.blob(state.info.blobId);
      const missing: number[] = [];
      for (const i of positions) {
        const c = chunks[i]!;
        const flight = state.inflight.get(c.index);
        if (flight) {
          if (priority === "high") flight.group.promote();
          results[i] = flight.promise;
        } else if (state.map.has(c.index)) {
          counters.hits++;
          results[i] = this.#readCached(state, c, options);
        } else {
          missing.push(i);
        }
      }
      // Register every missing chunk's flight before any await, so concurrent readers join them.
      const seen = new Map<number, number>();
      const unique: ChunkInfo[] = [];
      for (const i of missing) {
        const c = chunks[i]!;
        const first = seen.get(c.index);
        if (first !== undefined) continue;
        seen.set(c.index, i);
        unique.push(c);
      }
      counters.misses += unique.length;
      if (priority === "low") counters.prefetchedChunks += unique.length;
      for (const group of this.#groups(unique, options.gap ?? 0)) this.#startGroup(state, group, priority, options.signal);
      for (const i of missing) results[i] = state.inflight.get(chunks[i]!.index)!.promise;
    }
    return Promise.all(results.map((p) => abortable(p, options.signal)));
  }

  /**
   * Missing chunks sorted by compressed offset, cut into runs of at most mergeLimit bytes whose
   * chunks are contiguous, or at most `gap` bytes apart.
   */
  #groups(chunks: ChunkInfo[], gap: number): ChunkInfo[][] {
    const sorted = [...chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    const groups: ChunkInfo[][] = [];
    let cur: ChunkInfo[] = [];
    let start = 0;
    let end = 0;
    for (const c of sorted) {
      const contiguous = cur.length > 0 && c.compressedOffset >= end && c.compressedOffset - end <= gap;
      if (contiguous && c.compressedOffset + c.compressedSize - start <= this.mergeLimit) {
        cur.push(c);
      } else {
        if (cur.length > 0) groups.push(cur);
        cur = [c];
        start = c.compressedOffset;
      }
      end = c.compressedOffset + c.compressedSize;
    }
    if (cur.length > 0) groups.push(cur);
    return groups;
  }

  /** A cached chunk; falls back to a fetch when the file is short or (verifyOnHit) the bytes are wrong. */
  async #readCached(state: BlobState, c: ChunkInfo, options: ChunkReadOptions): Promise<Uint8Array> {
    const buf = new Uint8Array(c.uncompressedSize);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await state.data.read(buf, done, buf.length - done, c.uncompressedOffset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    let good = done === buf.length;
    if (good && this.verifyOnHit && !state.checked.has(c.index)) {
      try {
        verifyPlain(state.info, this.image.superBlock.digester, c, buf);
        state.checked.add(c.index);
        this.metrics.blob(state.info.blobId).verifiedChunks++;
      } catch (err) {
        if (!(err instanceof DigestMismatchError)) throw err;
        this.metrics.blob(state.info.blobId).verificationFailures++;
        good = false;
      }
    }
    if (good) return buf;
    // The cached copy is unusable: make the cleared bit durable before the data is rewritten.
    state.map.clear(c.index);
    this.onReadyChange?.(c.blobIndex, [c.index], false);
    await state.map.persist();
    const counters = this.metrics.blob(state.info.blobId);
    counters.hits--;
    return (await this.#readChunksOnce([c], options))[0]!;
  }

  #startGroup(state: BlobState, chunks: ChunkInfo[], priority: Priority, signal: AbortSignal | undefined): void {
    const controller = new AbortController();
    const lowSignal = priority === "low" ? signal : undefined;
    const onAbort = () => controller.abort(lowSignal?.reason ?? abortError());
    lowSignal?.addEventListener("abort", onAbort, { once: true });
    const slot = this.slots.acquire(priority, controller.signal);
    const group: Group = {
      priority,
      promote() {
        lowSignal?.removeEventListener("abort", onAbort);
        if (group.priority === "low") {
          group.priority = "high";
          slot.promote();
        }
      },
    };
    const fetched = (async () => {
      const release = await slot.granted;
      try {
        lowSignal?.removeEventListener("abort", onAbort);
        const first = chunks[0]!;
        const last = chunks[chunks.length - 1]!;
        const start = first.compressedOffset;
        const length = last.compressedOffset + last.compressedSize - start;
        return { start, bytes: await this.backend.readRange(state.info.blobId, start, length, controller.signal) };
      } finally {
        release();
      }
    })();
    fetched.catch(() => lowSignal?.removeEventListener("abort", onAbort));
    const verified: Promise<Uint8Array>[] = [];
    for (const c of chunks) {
      const promise = fetched.then(({ start, bytes }) => {
        const stored = bytes.subarray(c.compressedOffset - start, c.compressedOffset - start + c.compressedSize);
        const counters = this.metrics.blob(state.info.blobId);
        try {
          const plain = decodeChunk(state.info, this.image.superBlock.digester, c, stored);
          counters.verifiedChunks++;
          return plain;
        } catch (err) {
          counters.verificationFailures++;
          throw err;
        }
      });
      // Failed chunks leave the in-flight table at once, so the next read tries afresh.
      promise.catch(() => {
        if (state.inflight.get(c.index)?.promise === promise) state.inflight.delete(c.index);
      });
      state.inflight.set(c.index, { promise, group });
      verified.push(promise);
    }
    this.#track(this.#persist(state, chunks, verified));
  }

  /** Writes the verified chunks of a group, makes them durable, then marks them ready. */
  async #persist(state: BlobState, chunks: ChunkInfo[], verified: Promise<Uint8Array>[]): Promise<void> {
    const outcomes = await Promise.allSettled(verified);
    const good: ChunkInfo[] = [];
    try {
      for (let k = 0; k < chunks.length; k++) {
        const o = outcomes[k]!;
        if (o.status !== "fulfilled") continue;
        const c = chunks[k]!;
        const plain = o.value;
        for (let done = 0; done < plain.length; ) {
          const { bytesWritten } = await state.data.write(plain, done, plain.length - done, c.uncompressedOffset + done);
          done += bytesWritten;
        }
        good.push(c);
      }
      if (good.length === 0) return;
      await state.data.datasync();
      const indices = good.map((c) => c.index);
      state.map.set(indices);
      await state.map.persist();
      this.onReadyChange?.(good[0]!.blobIndex, indices, true);
    } finally {
      for (let k = 0; k < chunks.length; k++) {
        const c = chunks[k]!;
        if (state.inflight.get(c.index)?.promise === verified[k]) state.inflight.delete(c.index);
      }
    }
  }

  #track(p: Promise<void>): void {
    const tracked = p.catch((err: unknown) => {
      this.#persistError ??= err; // reported by flush(); the chunks simply stay not-ready
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  /**
   * Waits until every chunk fetched so far is durable (or has failed to persist).
   * @throws the first error met while writing the cache since the last flush
   */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
    const err = this.#persistError;
    this.#persistError = undefined;
    if (err) throw err;
  }

  /** Chunk indices marked ready in a blob's map (for checks and tests). */
  async readyChunks(blobIndex: number): Promise<number[]> {
    return [...(await this.#state(blobIndex)).map.ready()];
  }

  /** Flushes, then closes the cache files and the backend. */
  async close(options: { keepBackend?: boolean } = {}): Promise<void> {
    await this.flush().catch(() => undefined);
    const states = [...this.#states.values()];
    this.#states.clear();
    for (const p of states) {
      const s = await p.catch(() => undefined);
      if (!s) continue;
      await s.map.close();
      await s.data.close();
    }
    if (!options.keepBackend) await this.backend.close?.();
  }
}

export { describeChunk };
