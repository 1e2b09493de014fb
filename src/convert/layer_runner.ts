/**
 * Builds one Nydus layer blob on a worker thread (see `layer_worker.ts`). The main thread
 * streams the verified source bytes to it with bounded read-ahead; the worker decompresses,
 * builds and writes the blob, and returns the layer bootstrap and blob entry. Each layer of
 * an image then builds on its own core, where in one thread they would take turns.
 */
import { buildLayer, type BuildResult } from "../builder/build.ts";
import type { BuildCompressor } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import { openRafs } from "../rafs/open.ts";
import { decompressLayer, type LayerCompression } from "./decompress.ts";
import { rebuildError } from "./worker_errors.ts";
import { takeWorker } from "./worker_pool.ts";
import type { Worker } from "node:worker_threads";

export interface WorkerBuildOptions {
  blobDir: string;
  compression: LayerCompression;
  /** Names the layer in errors. */
  what: string;
  compressor?: BuildCompressor;
  digester?: DigesterName;
  chunkSize?: number;
  prefetchPaths?: readonly string[];
  /** Bootstrap of the chunk dictionary (the worker opens it itself). */
  chunkDict?: Uint8Array;
}

/** What a layer build returns to the converter. */
export type LayerBuild = Pick<BuildResult, "bootstrap" | "blob" | "layerBlob" | "stats">;

/**
 * Builds one Nydus layer blob on this thread: the layer format (inline bootstrap, ToC) with
 * its whiteouts kept as files, for the merge to apply (nydus-image.md §4.2). Layer workers
 * run this (and keep the result's tree for a merge they may host); so does the converter for
 * small layers, and for all of them when told not to use workers.
 */
export function buildLayerHere(source: AsyncIterable<Uint8Array>, options: WorkerBuildOptions): Promise<BuildResult> {
  return buildLayer(
    { type: "tar", stream: decompressLayer(source, options.compression, options.what) },
    {
      blobDir: options.blobDir,
      inlineBootstrap: true,
      whiteoutSpec: "none",
      compressor: options.compressor,
      digester: options.digester,
      chunkSize: options.chunkSize,
      chunkDicts: options.chunkDict ? [openRafs(options.chunkDict)] : undefined,
      prefetchPaths: options.prefetchPaths,
    },
  );
}

/** Source pieces sent ahead of the worker's reading: bounds memory to a few MiB. */
const READ_AHEAD = 8;

/** A layer built on a worker that was kept ({@link buildLayerInWorker}'s `keep`). */
export interface KeptLayerBuild extends LayerBuild {
  /**
   * The worker, done with the build and unref'd (it never holds the process open): the caller
   * terminates it, or makes it its manifest's merge host (`merge_host.ts`).
   */
  worker: Worker;
}

/**
 * Builds the layer whose compressed bytes `source` yields (already verified while it
 * streams: its error, e.g. a digest mismatch, aborts the build and is rethrown). Its pieces
 * are transferred to the worker: fetch them with `FetchOptions.transferable`; a piece that
 * does not span a whole ArrayBuffer is copied. The worker ends with the build, unless `keep`
 * asks for it back (after a successful build).
 */
export function buildLayerInWorker(source: AsyncIterable<Uint8Array>, options: WorkerBuildOptions): Promise<LayerBuild>;
export function buildLayerInWorker(source: AsyncIterable<Uint8Array>, options: WorkerBuildOptions, keep: { keep: true }): Promise<KeptLayerBuild>;
export async function buildLayerInWorker(source: AsyncIterable<Uint8Array>, options: WorkerBuildOptions, keep?: { keep: true }): Promise<LayerBuild | KeptLayerBuild> {
  const worker = takeWorker("layer");
  let unacked = 0;
  let room: (() => void) | undefined;
  let sourceError: unknown;
  // Our listeners, to remove when the worker is kept. Not removeAllListeners(): that also drops
  // the Worker's own listeners that start its message port when a "message" listener is added
  // (the next owner's messages then never arrive).
  const listeners: [string, Parameters<Worker["on"]>[1]][] = [];
  const listen = (event: string, fn: Parameters<Worker["on"]>[1]) => {
    worker.on(event, fn);
    listeners.push([event, fn]);
  };
  const finished = new Promise<LayerBuild>((resolve, reject) => {
    listen("message", (m: { type: string; pieces?: number; error?: Record<string, unknown> } & LayerBuild) => {
      if (m.type === "ack") {
        unacked -= m.pieces ?? 1;
        const r = room;
        room = undefined;
        r?.();
      } else if (m.type === "done") {
        resolve({ bootstrap: m.bootstrap, blob: m.blob, layerBlob: m.layerBlob, stats: m.stats });
      } else if (m.type === "error") {
        reject(sourceError ?? rebuildError(m.error!, "layer worker"));
      }
    });
    listen("error", (err: Error) => reject(sourceError ?? err));
    listen("exit", (code: number) => reject(sourceError ?? new Error(`Cannot build ${options.what}: the layer worker exited (code ${code})`)));
  });
  finished.catch(() => undefined); // awaited below
  const { compression, ...rest } = options;
  worker.postMessage({ type: "start", options: { ...rest, compression } });
  let kept = false;
  try {
    const feeding = (async () => {
      try {
        for await (const piece of source) {
          // A piece sharing its ArrayBuffer is copied (Buffer#slice would not copy): a transfer detaches the whole buffer.
          const own = piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength ? piece : new Uint8Array(piece);
          worker.postMessage({ type: "data", piece: own }, [own.buffer as ArrayBuffer]);
          if (++unacked >= READ_AHEAD) await Promise.race([new Promise<void>((r) => (room = r)), finished]);
        }
        worker.postMessage({ type: "end" });
      } catch (err) {
        sourceError = err;
        worker.postMessage({ type: "abort" });
      }
    })();
    await Promise.race([feeding, finished]);
    const build = await finished;
    if (!keep) return build;
    for (const [event, fn] of listeners) worker.off(event, fn);
    worker.on("error", () => undefined); // until the next owner listens: a late error is not unhandled
    worker.unref();
    kept = true;
    return { ...build, worker };
  } finally {
    // Not awaited: the result goes on (to the merge) while the worker's heap is torn down,
    // which took 5-30 ms on the benchmark image.
    if (!kept) worker.terminate().catch(() => undefined);
  }
}
