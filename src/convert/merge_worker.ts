/**
 * Worker-thread entry of {@link MergeRunner}: reads each layer bootstrap into a tree as it
 * arrives (while later layers still build) and combines adjacent upper layers at once
 * ({@link LayerMerge}), then finishes the merge and packs the bootstrap layer. The main thread
 * thus only moves bytes, and never stalls the layer workers it feeds.
 * Messages: `start` (whiteout spec), `layer` (index, bootstrap, own blob entry), `merge`;
 * replies `merged` or `error`.
 */
import { parentPort } from "node:worker_threads";
import { LayerMerge, prepareLayer, type MergeOptions } from "../builder/merge.ts";
import type { BlobInfo } from "../rafs/model.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { openRafs } from "../rafs/open.ts";
import { makeBootstrapLayer } from "./bootstrap_layer.ts";
import { serializeError } from "./worker_errors.ts";

type Incoming =
  | { type: "start"; whiteoutSpec: WhiteoutSpec }
  | { type: "layer"; index: number; bootstrap: Uint8Array; blob?: BlobInfo; what: string }
  | { type: "merge"; count: number; options: Omit<MergeOptions, "layerBlobs" | "whiteoutSpec"> };

const port = parentPort!;
let merge: LayerMerge | undefined;
let failure: unknown;

port.on("message", (m: Incoming) => {
  try {
    if (m.type === "start") {
      merge = new LayerMerge({ whiteoutSpec: m.whiteoutSpec });
      return;
    }
    if (m.type === "layer") {
      if (failure === undefined) merge!.add(m.index, prepareLayer(openRafs(m.bootstrap), m.blob, m.what), m.what);
      return;
    }
    if (failure !== undefined) throw failure;
    const merged = merge!.finish(m.count, m.options);
    merge = undefined;
    const layer = makeBootstrapLayer(merged.bootstrap);
    const gzip = new Uint8Array(layer.gzip); // an own buffer, transferable
    port.postMessage({ type: "merged", blobs: merged.blobs, layer: { ...layer, gzip } }, [gzip.buffer]);
  } catch (err) {
    if (m.type === "layer") failure = err; // reported when the merge is asked for
    else port.postMessage({ type: "error", error: serializeError(err) });
  }
});
