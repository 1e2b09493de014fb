/**
 * What server.ts hands the serving thread (fuse/worker.ts): its `workerData`, the messages that
 * follow, and the layout of the shared counters the thread keeps for {@link FuseMount.stats}.
 */

/** `workerData` of the serving thread. */
export interface WorkerData {
  /** The /dev/fuse fd. */
  fd: number;
  /** Int32 go flag: 0 wait, 1 serve, 2 stop (mount failed). */
  go: SharedArrayBuffer;
  /** Size of the request buffer. */
  bufSize: number;
  /** Largest READ. */
  maxRead: number;
  cacheSeconds: number;
  /** BigInt64 counters indexed by {@link Stat}. */
  stats: SharedArrayBuffer;
}

/** What the serving thread answers itself (see worker.ts), sent with `serve`. */
export interface ServeFast {
  /** Directory of the blob cache's `<blobId>.blob.data` files. */
  cacheDir: string;
  /** Readiness bitmaps by blob index; without them every READ goes to the main thread. */
  ready?: SharedArrayBuffer[];
  /** Int32 cache-hit counters by blob index, bumped per chunk served. */
  hits?: SharedArrayBuffer;
}

/**
 * Messages to the serving thread, after it said `loaded`: `image` (at most once, any time before
 * `serve`) hands it the bootstrap to decode its own copy; `serve` (last) sets up the fast path
 * when given (it needs the image), answers `ready`, and starts serving on the go flag.
 */
export type ToWorker = { type: "image"; bootstrap: Uint8Array } | { type: "serve"; fast?: ServeFast };

/** Indices of the shared counters. */
export const Stat = {
  /** Requests other than READ answered by the serving thread. */
  answered: 0,
  /** READs answered by the serving thread from the cache files. */
  fastReads: 1,
  /** Payload bytes of those READs. */
  fastReadBytes: 2,
  /** Requests passed to the main thread. */
  forwarded: 3,
} as const;
export type Stat = (typeof Stat)[keyof typeof Stat];

export const STAT_COUNT = 4;
