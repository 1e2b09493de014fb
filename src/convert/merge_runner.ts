/**
 * Merging the layer bootstraps of one manifest into its bootstrap layer, on a layer worker
 * whose build is done (`merge_host.ts`) or on this thread. Layers are handed over one by one
 * as they finish, in any order; {@link MergeRunner.merge} then merges them bottom first.
 */
import { LayerMerge, prepareLayer, type MergeOptions } from "../builder/merge.ts";
import type { BlobInfo } from "../rafs/model.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { openRafs } from "../rafs/open.ts";
import { makeBootstrapLayer, type BootstrapLayer } from "./bootstrap_layer.ts";
import { rebuildError } from "./worker_errors.ts";
import type { Worker } from "node:worker_threads";

export interface MergeOutcome {
  /** The packed bootstrap layer. */
  layer: BootstrapLayer;
  /** The merged bootstrap's blob table. */
  blobs: BlobInfo[];
}

export interface MergeRunner {
  /**
   * Hands over layer `index`'s bootstrap (the caller keeps its bytes; a copy is taken), and
   * the worker that built it when it was kept (`KeptLayerBuild`): the runner owns that worker
   * from then on, and merges on it or ends it.
   */
  add(index: number, bootstrap: Uint8Array, blob: BlobInfo | undefined, what: string, worker?: Worker): void;
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
    add(index, bootstrap, blob, what, worker) {
      worker?.terminate().catch(() => undefined);
      layers.add(index, prepareLayer(openRafs(bootstrap), blob, what), what);
    },
    async merge(count, options) {
      const merged = layers.finish(count, options);
      return { layer: makeBootstrapLayer(merged.bootstrap), blobs: merged.blobs };
    },
    async close() {},
  };
}

interface Waiting {
  index: number;
  bootstrap: Uint8Array;
  blob: BlobInfo | undefined;
  what: string;
}

function sendLayer(worker: Worker, l: Waiting): void {
  const copy = l.bootstrap.slice();
  worker.postMessage({ type: "layer", index: l.index, bootstrap: copy, blob: l.blob, what: l.what }, [copy.buffer]);
}

/**
 * Runs on the worker of the first layer handed over with one (`merge_host.ts`): that layer
 * joins the merge from the tree it was built from, unread, the worker's code is warm for the
 * final write, and no thread starts for the merge alone. Layers added before it wait here;
 * later layers' workers are ended. With no worker at all (every layer small or cached), the
 * merge runs on this thread.
 */
export function mergeInLayerWorker(options: MergeRunnerOptions = {}): MergeRunner {
  const whiteoutSpec = options.whiteoutSpec ?? "oci";
  const waiting: Waiting[] = [];
  let host: { worker: Worker; outcome: Promise<MergeOutcome> } | undefined;
  let ended = false;
  return {
    add(index, bootstrap, blob, what, worker) {
      if (host || !worker) {
        worker?.terminate().catch(() => undefined);
        const layer = { index, bootstrap, blob, what };
        if (host) sendLayer(host.worker, layer);
        else waiting.push(layer);
        return;
      }
      const outcome = new Promise<MergeOutcome>((resolve, reject) => {
        worker.on("message", (m: { type: string; error?: Record<string, unknown> } & MergeOutcome) => {
          if (m.type === "merged") resolve({ layer: m.layer, blobs: m.blobs });
          else if (m.type === "error") reject(rebuildError(m.error!, "merge"));
        });
        worker.on("error", reject);
        worker.on("exit", (code) => reject(new Error(`Cannot merge the layer bootstraps: the worker merging them exited (code ${code})`)));
      });
      outcome.catch(() => undefined); // awaited by merge()
      host = { worker, outcome };
      worker.ref();
      worker.postMessage({ type: "host", whiteoutSpec, index, what });
      for (const l of waiting.splice(0)) sendLayer(worker, l);
    },
    async merge(count, options) {
      if (!host) {
        const here = mergeHere({ whiteoutSpec });
        for (const l of waiting.splice(0)) here.add(l.index, l.bootstrap, l.blob, l.what);
        return here.merge(count, options);
      }
      host.worker.postMessage({ type: "merge", count, options });
      try {
        return await host.outcome;
      } finally {
        // Not awaited (nor by close()): the outcome is used while the worker's heap is torn down (~8 ms).
        ended = true;
        host.worker.terminate().catch(() => undefined);
      }
    },
    async close() {
      if (host && !ended) await host.worker.terminate();
    },
  };
}
