/**
 * Counters of the lazy runtime storage, per blob: what was fetched from which endpoint
 * (a mirror host, the origin registry, a local directory), cache hits and misses, chunks
 * verified and verification failures. {@link StorageMetrics.snapshot} returns plain JSON.
 */

/** Requests and bytes of one endpoint for one blob. */
export interface EndpointCounters {
  requests: number;
  bytes: number;
  /** Requests that failed (connection errors, bad statuses, short bodies). */
  failures: number;
}

/** Counters of one blob. */
export interface BlobCounters {
  /** Keyed by endpoint name, e.g. `mirror 127.0.0.1:5001`, `origin 127.0.0.1:5000`, `local /dir`. */
  endpoints: Record<string, EndpointCounters>;
  /** Chunk reads served from the cache / that needed a fetch. */
  hits: number;
  misses: number;
  /** Chunks decompressed and verified after a fetch (or re-verified from the cache). */
  verifiedChunks: number;
  verificationFailures: number;
  /** Chunks fetched by prefetch (also counted in misses). */
  prefetchedChunks: number;
}

/** What {@link StorageMetrics.snapshot} returns: per blob id, plus totals. */
export interface MetricsSnapshot {
  blobs: Record<string, BlobCounters>;
  totals: { requests: number; bytes: number; failures: number; hits: number; misses: number; verifiedChunks: number; verificationFailures: number };
}

/** Mutable counters shared by a backend and a cache. */
export class StorageMetrics {
  readonly #blobs = new Map<string, BlobCounters>();
  readonly #collectors: (() => void)[] = [];

  /** Registers a function that folds counts kept elsewhere (another thread) into these counters before each snapshot. */
  addCollector(collect: () => void): void {
    this.#collectors.push(collect);
  }

  /** The counters of a blob (created on first use). */
  blob(blobId: string): BlobCounters {
    let b = this.#blobs.get(blobId);
    if (!b) {
      b = { endpoints: {}, hits: 0, misses: 0, verifiedChunks: 0, verificationFailures: 0, prefetchedChunks: 0 };
      this.#blobs.set(blobId, b);
    }
    return b;
  }

  /** Records one request to `endpoint` for `blobId` that delivered `bytes` (0 and `ok` false on failure). */
  recordFetch(blobId: string, endpoint: string, bytes: number, ok: boolean): void {
    const b = this.blob(blobId);
    const e = (b.endpoints[endpoint] ??= { requests: 0, bytes: 0, failures: 0 });
    e.requests++;
    e.bytes += bytes;
    if (!ok) e.failures++;
  }

  /** A deep copy as plain JSON, with totals. */
  snapshot(): MetricsSnapshot {
    for (const collect of this.#collectors) collect();
    const blobs: Record<string, BlobCounters> = {};
    const totals = { requests: 0, bytes: 0, failures: 0, hits: 0, misses: 0, verifiedChunks: 0, verificationFailures: 0 };
    for (const [id, b] of this.#blobs) {
      blobs[id] = JSON.parse(JSON.stringify(b)) as BlobCounters;
      for (const e of Object.values(b.endpoints)) {
        totals.requests += e.requests;
        totals.bytes += e.bytes;
        totals.failures += e.failures;
      }
      totals.hits += b.hits;
      totals.misses += b.misses;
      totals.verifiedChunks += b.verifiedChunks;
      totals.verificationFailures += b.verificationFailures;
    }
    return { blobs, totals };
  }
}
