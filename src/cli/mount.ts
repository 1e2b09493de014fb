/**
 * `nydus-ts mount SOURCE MOUNTPOINT`: serves a Nydus image read-only over FUSE, fetching
 * chunks on demand into a persistent cache, until `nydus-ts umount`, an external `umount`,
 * or SIGINT/SIGTERM (which unmount cleanly). Keeps a state file in the run dir (pid, source,
 * cache dir, live metrics; see run_state.ts), prints the metrics summary on exit. `--daemon`
 * is mount_daemon.ts (this then runs in its child).
 */
import fs from "node:fs";
import { mountFuse, RafsFs, startFuseServer, type FuseMount, type FuseServer } from "../fs/index.ts";
import { prefetch, shareReadiness } from "../storage/index.ts";
import { emit } from "./output.ts";
import { checkMountpoint, claimDaemonLog, signalReady } from "./mount_daemon.ts";
import { exitFile, metricsLines, writeState, type MountState } from "./run_state.ts";
import { openRuntime, type Runtime, type RuntimeFlags } from "./runtime.ts";

export interface MountFlags extends RuntimeFlags {
  prefetch?: boolean;
  prefetchPaths?: string;
}

/** One timestamped line on stderr (the daemon's or server's log). */
export const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);

/** One served mount: the FUSE mount, its live state, and its end. */
export interface MountSession {
  mountpoint: string;
  stateFile: string;
  source: string;
  cacheDir: string;
  fuse: FuseMount;
  /** The live state (as written to the state file every second). */
  state(): MountState;
  /** Unmounts (lazily when a plain umount fails); `done` follows. */
  stop(why: string): void;
  /** Resolves with the final state once unmounted and cleaned up (exit file written, state file removed). */
  done: Promise<MountState>;
}

export interface SessionOptions {
  /** A serving thread started ahead (fuse/start.ts); used, or stopped on failure. */
  server?: FuseServer;
  log: (line: string) => void;
  /** The daemon's log file, recorded in the state file. */
  daemonLog?: string;
  /** The `nydus-ts serve` socket serving this mount, recorded in the state file. */
  serverSocket?: string;
}

/**
 * Opens `source` and mounts it at the checked mountpoint `at` (see {@link checkMountpoint});
 * resolves once the mount serves and its state file is written. Used by `mount` (one session
 * per process) and by `serve` (many).
 */
export async function startMountSession(source: string, at: { mp: string; sf: string }, flags: MountFlags, options: SessionOptions): Promise<MountSession> {
  const { mp, sf } = at;
  const log = options.log;
  let server = options.server;
  let rt: Runtime;
  try {
    // The serving thread starts before the image is fetched: its start-up overlaps the fetch, and
    // it decodes its copy of the bootstrap while this thread decodes its own.
    server ??= startFuseServer();
    const s = server;
    rt = await openRuntime(source, flags, { persistentCache: true, onBootstrap: (b) => s.preload(b) });
  } catch (err) {
    server?.cancel();
    throw err;
  }
  const rfs = new RafsFs(rt.image, rt.reader, { log });
  // The serving thread answers metadata and cached reads itself; with re-verification of cache
  // hits every READ must go through the cache on this thread.
  const shared = rt.cache.verifyOnHit ? undefined : await shareReadiness(rt.cache, rt.image);
  // Prefetch starts before the mount: its first requests are in flight while the kernel mounts.
  const controller = new AbortController();
  let pf: MountState["prefetch"] = { state: "off" };
  let prefetching: Promise<void> = Promise.resolve();
  if (flags.prefetch || flags.prefetchPaths) {
    const paths = flags.prefetchPaths?.split(",").map((s) => s.trim()).filter(Boolean);
    pf = { state: "running" };
    prefetching = prefetch(rt.cache, { paths, signal: controller.signal }).then(
      (r) => {
        pf = { state: "done", ...r };
        log(`prefetch done: ${r.files} files, ${r.chunks} chunks, ${r.bytes} bytes`);
      },
      (err: Error) => {
        if (controller.signal.aborted) return;
        pf = { state: "failed", error: err.message };
        log(`prefetch failed: ${err.message}`);
      },
    );
  }
  let m: FuseMount;
  try {
    m = await mountFuse(rfs, mp, { source, log, server, fastPath: { bootstrap: rt.nydus.bootstrap, cacheDir: rt.cacheDir, ...shared } });
  } catch (err) {
    controller.abort();
    await prefetching;
    await rt.close();
    throw err;
  }
  const startedAt = new Date().toISOString();
  const state = (): MountState => ({
    pid: process.pid, mountpoint: mp, source, cacheDir: rt.cacheDir, ready: true, startedAt, updatedAt: new Date().toISOString(),
    fetched: rt.fetched(), metrics: rt.metrics.snapshot(), prefetch: pf, log: options.daemonLog, server: options.serverSocket,
  });
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: unmounting ${mp}`);
    m.unmount().catch((err: Error) => {
      log(`umount ${mp} failed (${err.message}); detaching it lazily`);
      return m.unmount({ lazy: true });
    }).catch((err: Error) => log(`umount -l ${mp} failed: ${err.message}`));
  };
  const refresh = () => {
    try {
      writeState(sf, state());
    } catch (err) {
      log(`cannot write state file ${sf}: ${(err as Error).message}`);
    }
  };
  refresh();
  const timer = setInterval(refresh, 1000);
  const done = (async () => {
    await m.closed;
    clearInterval(timer);
    const fst = m.stats();
    log(`fuse: ${fst.answeredInWorker} requests and ${fst.fastReads} cached reads (${fst.fastReadBytes} bytes) answered by the serving thread, ${fst.forwarded} by the main thread`);
    controller.abort();
    await prefetching;
    const final = { ...state(), ready: false };
    await rt.close();
    // The final metrics for `nydus-ts umount` (which removes this file), then the state file goes.
    writeState(exitFile(sf), final);
    fs.rmSync(sf, { force: true });
    return final;
  })();
  return { mountpoint: mp, stateFile: sf, source, cacheDir: rt.cacheDir, fuse: m, state, stop, done };
}

/**
 * Serves `source` at `mountpoint` until unmounted. `started` is a serving thread the caller
 * started ahead (see fuse/start.ts); it is used, or stopped on failure.
 */
export async function runMount(source: string, mountpoint: string, flags: MountFlags, started?: FuseServer): Promise<void> {
  let at: { mp: string; sf: string };
  let daemonLog: string | undefined;
  try {
    at = checkMountpoint(mountpoint);
    daemonLog = claimDaemonLog(at.mp);
  } catch (err) {
    started?.cancel();
    throw err;
  }
  const session = await startMountSession(source, at, flags, { server: started, log, daemonLog });
  process.on("SIGINT", () => session.stop("SIGINT"));
  process.on("SIGTERM", () => session.stop("SIGTERM"));
  // Logged before the parent is told, so its log already says so when `mount --daemon` returns.
  log(`serving ${source} at ${session.mountpoint} (pid ${process.pid}, cache ${session.cacheDir}, state ${session.stateFile})`);
  signalReady({ mountpoint: session.mountpoint, stateFile: session.stateFile, log: daemonLog });
  const final = await session.done;
  emit(flags, { unmounted: session.mountpoint, source, cacheDir: session.cacheDir, fetched: final.fetched, metrics: final.metrics, prefetch: final.prefetch }, () =>
    [`unmounted ${session.mountpoint}`, ...metricsLines(final.fetched, final.metrics)].join("\n"));
  process.exit(process.exitCode ?? 0);
}
