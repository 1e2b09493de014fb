/**
 * What server.ts hands the serving thread (fuse/worker.ts) as `workerData`, and the layout of
 * the shared counters the thread keeps for {@link FuseMount.stats}.
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
  /** Present when the thread answers what it can itself (see worker.ts). */
  fast?: {
    bootstrap: Uint8Array;
    cacheDir: string;
    /** Readiness bitmaps by blob index; without them every READ goes to the main thread. */
    ready?: SharedArrayBuffer[];
    /** Int32 cache-hit counters by blob index, bumped per chunk served. */
    hits?: SharedArrayBuffer;
  };
}

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
