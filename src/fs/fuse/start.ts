/**
 * Starting the FUSE serving thread (fuse/worker.ts) ahead of a mount. Light on purpose (node
 * built-ins and the message types only): `nydus-ts mount` calls it before loading the rest of
 * the runtime, so the thread's own start-up overlaps the main thread's.
 */
import fs from "node:fs";
import { Worker } from "node:worker_threads";
import { OUT_HEADER_SIZE } from "./protocol.ts";
import { STAT_COUNT, type ToWorker, type WorkerData } from "./worker_data.ts";

/** The serving thread's module: TypeScript under tsx (registered in the thread too), else dist's .js. */
const WORKER_URL = new URL(`./worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url).href;

/** Bootstraps worker.ts (worker threads do not inherit the parent's module hooks). */
const WORKER_BOOT = `
const { workerData } = require("node:worker_threads");
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.url);
})().catch((e) => { throw e; });
`;

/**
 * A serving thread started ahead of the mount by {@link startFuseServer}: its code loads, and
 * its copy of the image decodes, while the caller is still fetching and opening the image.
 */
export interface FuseServer {
  /** Hands the thread the image's bootstrap now, so it decodes it in parallel (once). */
  preload(bootstrap: Uint8Array): void;
  /** Stops the thread and closes /dev/fuse, for when no mount follows (idempotent). */
  cancel(): void;
  /** @internal used by {@link mountFuse} */
  readonly parts: ServerParts;
}

export interface ServerParts {
  fd: number;
  worker: Worker;
  maxRead: number;
  cacheSeconds: number;
  go: Int32Array;
  counters: BigInt64Array;
  /** Resolves once the thread's code has loaded (rejects if it failed to start). */
  loaded: Promise<void>;
  preloaded: boolean;
  used: boolean;
}

/**
 * Opens /dev/fuse and starts the serving thread without mounting anything yet, so that the
 * thread's start-up (its code, then its copy of the image after {@link FuseServer.preload})
 * overlaps the caller's own work; pass it to {@link mountFuse} as `server`.
 * @example
 * const server = startFuseServer();
 * const image = await fetchAndOpen();            // meanwhile the thread loads
 * server.preload(image.bootstrap);               // and decodes its copy in parallel
 * const m = await mountFuse(rfs, "/mnt/img", { server, fastPath: { … } });
 */
export function startFuseServer(options: { maxRead?: number; cacheSeconds?: number } = {}): FuseServer {
  const maxRead = options.maxRead ?? 0x100000;
  const cacheSeconds = options.cacheSeconds ?? 60;
  const fd = fs.openSync("/dev/fuse", "r+");
  const goBuf = new SharedArrayBuffer(4);
  const statsBuf = new SharedArrayBuffer(STAT_COUNT * 8);
  const workerData: WorkerData = { fd, go: goBuf, bufSize: maxRead + 0x10000 + OUT_HEADER_SIZE, maxRead, cacheSeconds, stats: statsBuf };
  const tsx = WORKER_URL.endsWith(".ts") ? import.meta.resolve("tsx/esm/api") : undefined;
  const worker = new Worker(WORKER_BOOT, { eval: true, workerData: { ...workerData, url: WORKER_URL, tsx } });
  const loaded = new Promise<void>((res, rej) => {
    const onError = (e: Error) => rej(e);
    const onExit = () => rej(new Error("the FUSE serving thread exited while starting"));
    worker.once("error", onError);
    worker.once("exit", onExit);
    worker.on("message", function onLoaded(m: { type?: string }) {
      if (m.type !== "loaded") return;
      worker.off("message", onLoaded);
      worker.off("error", onError);
      worker.off("exit", onExit);
      res();
    });
  });
  loaded.catch(() => {}); // reported by mountFuse
  worker.unref(); // an unused server never keeps the process alive
  const parts: ServerParts = {
    fd, worker, maxRead, cacheSeconds, go: new Int32Array(goBuf), counters: new BigInt64Array(statsBuf), loaded, preloaded: false, used: false,
  };
  let cancelled = false;
  return {
    parts,
    preload(bootstrap: Uint8Array): void {
      if (parts.preloaded || cancelled) return;
      parts.preloaded = true;
      worker.postMessage({ type: "image", bootstrap } satisfies ToWorker);
    },
    cancel(): void {
      if (parts.used || cancelled) return;
      cancelled = true;
      Atomics.store(parts.go, 0, 2);
      Atomics.notify(parts.go, 0);
      void worker.terminate().finally(() => fs.closeSync(fd));
    },
  };
}

