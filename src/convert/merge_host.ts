/**
 * The merge of one manifest's layer bootstraps, served on a layer worker once its own layer
 * is built (`layer_worker.ts`; the main thread's side is `mergeInLayerWorker`). The host's own
 * layer is taken from the tree it was just built from, not read back from its bootstrap; every
 * other layer's bootstrap is read into a tree as it arrives (while later layers still build),
 * and adjacent upper layers are combined at once ({@link LayerMerge}). `merge` then finishes
 * the merge and packs the bootstrap layer, on code the layer's own bootstrap write has warmed.
 * Messages: `host` (whiteout spec, the host layer's index and name), `layer` (index,
 * bootstrap, own blob entry), `merge`; replies `merged` or `error`.
 */
import type { MessagePort } from "node:worker_threads";
import { LayerMerge, prepareLayer, type MergeOptions, type PreparedLayer } from "../builder/merge.ts";
import type { BlobInfo } from "../rafs/model.ts";
import { openRafs } from "../rafs/open.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { makeBootstrapLayer } from "./bootstrap_layer.ts";
import { serializeError } from "./worker_errors.ts";

export type MergeMessage =
  | { type: "host"; whiteoutSpec: WhiteoutSpec; index: number; what: string }
  | { type: "layer"; index: number; bootstrap: Uint8Array; blob?: BlobInfo; what: string }
  | { type: "merge"; count: number; options: Omit<MergeOptions, "layerBlobs" | "whiteoutSpec"> };

/** Serves the merge messages after `host` on `port`, the thread's parent port. */
export class MergeHost {
  private readonly merge: LayerMerge;
  /** The first error of a layer, reported when the merge is asked for. */
  private failure: unknown;

  constructor(
    private readonly port: MessagePort,
    whiteoutSpec: WhiteoutSpec,
  ) {
    this.merge = new LayerMerge({ whiteoutSpec });
  }

  /** Adds a layer prepared here (the host's own); `prepare` runs unless an earlier layer failed. */
  add(index: number, prepare: () => PreparedLayer, what: string): void {
    if (this.failure !== undefined) return;
    try {
      this.merge.add(index, prepare(), what);
    } catch (err) {
      this.failure = err;
    }
  }

  handle(m: Exclude<MergeMessage, { type: "host" }>): void {
    if (m.type === "layer") {
      this.add(m.index, () => prepareLayer(openRafs(m.bootstrap), m.blob, m.what), m.what);
      return;
    }
    try {
      if (this.failure !== undefined) throw this.failure;
      const merged = this.merge.finish(m.count, m.options);
      const layer = makeBootstrapLayer(merged.bootstrap);
      const gzip = new Uint8Array(layer.gzip); // an own buffer, transferable
      this.port.postMessage({ type: "merged", blobs: merged.blobs, layer: { ...layer, gzip } }, [gzip.buffer]);
    } catch (err) {
      this.port.postMessage({ type: "error", error: serializeError(err) });
    }
  }
}
