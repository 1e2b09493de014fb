/**
 * The converter's worker threads, started ahead of need: layer workers (`layer_worker.ts`,
 * one per layer build; the first to finish then merges its manifest, `merge_host.ts`). A worker
 * spends its first ~80 ms loading the builder's modules; started while the main thread is
 * still loading the CLI and resolving the source, that time overlaps instead of delaying the
 * first layer. This module imports nothing heavy, so a caller can start workers before
 * importing the converter.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

/**
 * A small young generation (8 MiB): a layer build makes short-lived garbage at a high rate,
 * and with V8's default the workers' heaps grow well past what they keep. Measured on the
 * bench image: peak RSS 222 MiB instead of 265 MiB, at the same speed.
 */
const WORKER_OPTIONS = { resourceLimits: { maxYoungGenerationSizeMb: 8 } };

/** Which worker: its entry module is `<kind>_worker`. */
export type WorkerKind = "layer";

function startWorker(kind: WorkerKind): Worker {
  const ext = path.extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./${kind}_worker${ext}`, import.meta.url);
  if (ext !== ".ts") return new Worker(entry, WORKER_OPTIONS);
  // From the TypeScript sources (tests; the CLI before `npm run build`), the worker registers
  // the tsx loader itself: it does not inherit one registered through tsx's API.
  const api = import.meta.resolve("tsx/esm/api");
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`, { eval: true });
}

interface Idle {
  worker: Worker;
  /** Set when the worker died before anyone took it (it is then not handed out). */
  dead: boolean;
}

const idle: Record<WorkerKind, Idle[]> = { layer: [] };

/**
 * Starts workers until `count` of `kind` are idle and waiting. Idle workers do not keep the
 * process alive; unused ones simply end with it.
 */
export function prewarmWorkers(kind: WorkerKind, count: number): void {
  const list = idle[kind];
  while (list.length < count) {
    const w: Idle = { worker: startWorker(kind), dead: false };
    // Listeners before anyone takes it: a load failure must not be an unhandled 'error'.
    w.worker.once("error", () => (w.dead = true));
    w.worker.once("exit", () => (w.dead = true));
    w.worker.unref();
    list.push(w);
  }
}

/** Layer workers for `concurrency` builds, started ahead of need. */
export function prewarmConvertWorkers(concurrency: number): void {
  prewarmWorkers("layer", concurrency);
}

/** A worker for one job: an idle prewarmed one when there is one, else a new one. */
export function takeWorker(kind: WorkerKind): Worker {
  const list = idle[kind];
  for (let w = list.shift(); w; w = list.shift()) {
    if (w.dead) continue;
    w.worker.ref();
    return w.worker;
  }
  return startWorker(kind);
}
