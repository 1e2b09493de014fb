/**
 * Merging the layer bootstraps of one manifest into its bootstrap layer, on a worker thread
 * (`merge_worker.ts`) or on this one. Layers are handed over one by one as they finish, in any
 * order; {@link MergeRunner.merge} then merges them bottom first.
 */
import { LayerMerge, prepareLayer, type MergeOptions } from "../builder/merge.ts";
import type { BlobInfo } from "../rafs/model.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { openRafs } from "../rafs/open.ts";
import { makeBootstrapLayer, type BootstrapLayer } from "./bootstrap_layer.ts";
import { rebuildError } from "./worker_errors.ts";
import { takeWorker } from "./worker_pool.ts";
import type { Worker } from "node:worker_threads";

export interface MergeOutcome {
  /** The packed bootstrap layer. */
  layer: BootstrapLayer;
  /** The merged bootstrap's blob table. */
  blobs: BlobInfo[];
}

export interface MergeRunner {
  /** Hands over layer `index`'s bootstrap (the caller keeps its bytes; a copy is taken). */
  add(index: number, bootstrap: Uint8Array, blob: BlobInfo | undefined, what: string): void;
  /** Merges layers 0..count-1 (all added before) and packs the result. Ends the runner. */
  merge(count: number, options: Omit<MergeOptions, "layerBlobs" | "whiteoutSpec">): Promise<MergeOutcome>;
  /** Ends the runner without merging (idempotent; after {@link merge}, nothing is left to end). */
  close(): Promise<void>;
}

/** Options of {@link mergeHere} and {@link mergeInWorker}. */
export interface MergeRunnerOptions {
  /** Whiteout convention of the layers. @default "oci" */
  whiteoutSpec?: WhiteoutSpec;
}

/** Runs on this thread: each layer is read into a tree (and combined with its neighbours) when added. */
export function mergeHere(options: MergeRunnerOptions = {}): MergeRunner {
  const layers = new LayerMerge(options);
  return {
    add(index, bootstrap, blob, what) {
      layers.add(index, prepareLayer(openRafs(bootstrap), blob, what), what);
    },
    async merge(count, options) {
      const merged = layers.finish(count, options);
      return { layer: makeBootstrapLayer(merged.bootstrap), blobs: merged.blobs };
    },
    async close() {},
  };
}

/** Runs on a worker thread. */
export function mergeInWorker(options: MergeRunnerOptions = {}): MergeRunner {
  const worker: Worker = takeWorker("merge");
  worker.postMessage({ type: "start", whiteoutSpec: options.whiteoutSpec ?? "oci" });
  const outcome = new Promise<MergeOutcome>((resolve, reject) => {
    worker.on("message", (m: { type: string; error?: Record<string, unknown> } & MergeOutcome) => {
      if (m.type === "merged") resolve({ layer: m.layer, blobs: m.blobs });
      else reject(rebuildError(m.error!, "merge worker"));
    });
    worker.on("error", reject);
    worker.on("exit", (code) => reject(new Error(`Cannot merge the layer bootstraps: the merge worker exited (code ${code})`)));
  });
  outcome.catch(() => undefined); // awaited by merge()
  let ended = false;
  return {
    add(index, bootstrap, blob, what) {
      const copy = bootstrap.slice();
      worker.postMessage({ type: "layer", index, bootstrap: copy, blob, what }, [copy.buffer]);
    },
    async merge(count, options) {
      worker.postMessage({ type: "merge", count, options });
      try {
        return await outcome;
      } finally {
        // Not awaited (nor by close()): the outcome is used while the worker's heap is torn down (~8 ms).
        ended = true;
        worker.terminate().catch(() => undefined);
      }
    },
    async close() {
      if (!ended) await worker.terminate();
    },
  };
}
