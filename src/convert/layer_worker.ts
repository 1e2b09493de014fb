/**
 * Worker-thread entry of {@link buildLayerInWorker}: builds one Nydus layer blob from the
 * compressed layer bytes the main thread sends, so that the layers of an image build on
 * separate cores. Messages: `start` (options), `data` (a piece, acknowledged once read),
 * `end`, `abort`; replies `ack`, `done` or `error`.
 */
import { parentPort } from "node:worker_threads";
import { serializeError } from "./worker_errors.ts";
import { buildLayerHere, type WorkerBuildOptions } from "./layer_runner.ts";

type Incoming =
  | { type: "start"; options: WorkerBuildOptions }
  | { type: "data"; piece: Uint8Array }
  | { type: "end" }
  | { type: "abort" };

const port = parentPort!;
const queue: Uint8Array[] = [];
let ended = false;
let aborted = false;
let wake: (() => void) | undefined;

async function* pieces(): AsyncGenerator<Uint8Array> {
  for (;;) {
    if (aborted) throw new Error("Cannot build the layer: its source failed");
    const p = queue.shift();
    if (p) {
      port.postMessage({ type: "ack" });
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
  }
  const w = wake;
  wake = undefined;
  w?.();
});
