/**
 * Worker-thread entry of {@link buildLayerInWorker}: builds one Nydus layer blob from the
 * compressed layer bytes the main thread sends, so that the layers of an image build on
 * separate cores. Messages: `start` (options), `data` (a piece; taken pieces are acknowledged
 * a few at a time), `end`, `abort`; replies `ack` (with a count), `done` or `error`. After
 * `done` the converter ends the worker, or makes it the merge host of its manifest
 * (`merge_host.ts`), which then takes this layer from the tree just built.
 */
import { parentPort } from "node:worker_threads";
import { serializeError } from "./worker_errors.ts";
import { buildLayerHere, type WorkerBuildOptions } from "./layer_runner.ts";
import { MergeHost, type MergeMessage } from "./merge_host.ts";
import { preparedLayer } from "../builder/merge.ts";
import type { BuildResult } from "../builder/build.ts";
import { openRafs } from "../rafs/open.ts";

type Incoming =
  | { type: "start"; options: WorkerBuildOptions }
  | { type: "data"; piece: Uint8Array }
  | { type: "end" }
  | { type: "abort" }
  | MergeMessage;

const port = parentPort!;
/** Pieces per acknowledgement: each is a cross-thread message (the read-ahead is 8 pieces). */
const ACK_EVERY = 4;
const queue: Uint8Array[] = [];
let ended = false;
let aborted = false;
let wake: (() => void) | undefined;
/** The finished build, kept for a `host` message (which consumes its tree). */
let built: Pick<BuildResult, "bootstrap" | "blobs" | "blob" | "tree"> | undefined;
let host: MergeHost | undefined;

/** Pieces taken but not yet acknowledged. */
let unacked = 0;

/**
 * Acknowledges taken pieces to the feeding thread: every {@link ACK_EVERY} pieces, or at once
 * when the queue ran dry (the feeder must never wait on an ack while this thread waits on it).
 */
function ackTaken(force: boolean): void {
  if (unacked === 0 || (!force && unacked < ACK_EVERY)) return;
  port.postMessage({ type: "ack", pieces: unacked });
  unacked = 0;
}

async function* pieces(): AsyncGenerator<Uint8Array> {
  for (;;) {
    if (aborted) throw new Error("Cannot build the layer: its source failed");
    const p = queue.shift();
    if (p) {
      unacked++;
      ackTaken(queue.length === 0);
      yield p;
      continue;
    }
    if (ended) return;
    await new Promise<void>((r) => (wake = r));
  }
}

async function run(options: WorkerBuildOptions): Promise<void> {
  try {
    const r = await buildLayerHere(pieces(), options);
    built = { bootstrap: r.bootstrap, blobs: r.blobs, blob: r.blob, tree: r.tree };
    const bootstrap = new Uint8Array(r.bootstrap); // an own buffer, transferable
    port.postMessage({ type: "done", bootstrap, blob: r.blob, layerBlob: r.layerBlob, stats: r.stats }, [bootstrap.buffer]);
  } catch (err) {
    port.postMessage({ type: "error", error: serializeError(err) });
  }
}

port.on("message", (m: Incoming) => {
  switch (m.type) {
    case "start":
      void run(m.options);
      break;
    case "data":
      queue.push(m.piece);
      break;
    case "end":
      ended = true;
      break;
    case "abort":
      aborted = true;
      break;
    case "host": {
      const own = built!;
      built = undefined;
      host = new MergeHost(port, m.whiteoutSpec);
      host.add(m.index, () => preparedLayer(openRafs(own.bootstrap).superBlock, own.blobs, own.tree, own.blob, m.what), m.what);
      return;
    }
    case "layer":
    case "merge":
      host!.handle(m);
      return;
  }
  const w = wake;
  wake = undefined;
  w?.();
});
