/**
 * Worker-thread entry of {@link MergeRunner}: reads each layer bootstrap into a tree as it
 * arrives (while later layers still build), then merges them and packs the bootstrap layer.
 * The main thread thus only moves bytes, and never stalls the layer workers it feeds.
 * Messages: `layer` (index, bootstrap, own blob entry), `merge`; replies `merged` or `error`.
 */
import { parentPort } from "node:worker_threads";
import { mergePrepared, prepareLayer, type MergeOptions, type PreparedLayer } from "../builder/merge.ts";
import type { BlobInfo } from "../rafs/model.ts";
import { openRafs } from "../rafs/open.ts";
import { makeBootstrapLayer } from "./bootstrap_layer.ts";
import { serializeError } from "./worker_errors.ts";

type Incoming =
  | { type: "layer"; index: number; bootstrap: Uint8Array; blob?: BlobInfo; what: string }
  | { type: "merge"; count: number; options: Omit<MergeOptions, "layerBlobs"> };

const port = parentPort!;
const prepared: PreparedLayer[] = [];
let failure: unknown;

port.on("message", (m: Incoming) => {
  try {
    if (m.type === "layer") {
      if (failure === undefined) prepared[m.index] = prepareLayer(openRafs(m.bootstrap), m.blob, m.what);
      return;
    }
    if (failure !== undefined) throw failure;
    const layers = Array.from({ length: m.count }, (_, i) => {
      const l = prepared[i];
      if (!l) throw new Error(`Cannot merge: layer ${i} was never sent to the merge worker`);
      return l;
    });
    const merged = mergePrepared(layers, m.options);
    const layer = makeBootstrapLayer(merged.bootstrap);
    const gzip = new Uint8Array(layer.gzip); // an own buffer, transferable
    port.postMessage({ type: "merged", blobs: merged.blobs, layer: { ...layer, gzip } }, [gzip.buffer]);
  } catch (err) {
    if (m.type === "layer") failure = err; // reported when the merge is asked for
    else port.postMessage({ type: "error", error: serializeError(err) });
  }
});
