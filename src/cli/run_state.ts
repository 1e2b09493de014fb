/**
 * The per-mount state file of `nydus-ts mount`: `<run dir>/<hash of the mountpoint>.json`,
 * holding pid, mountpoint, source, cache dir, readiness and the live metrics snapshot. The
 * daemon rewrites it (atomically) every second and removes it on exit; `umount` and `stats`
 * find it from the mountpoint. Run dir: `$NYDUS_TS_RUN_DIR`, else `/run/nydus-ts` when
 * writable, else `<tmpdir>/nydus-ts-run`.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { MetricsSnapshot } from "../storage/index.ts";

export interface MountState {
  pid: number;
  mountpoint: string;
  source: string;
  cacheDir: string;
  /** True once the mount answers requests. */
  ready: boolean;
  startedAt: string;
  updatedAt: string;
  fetched: { bytes: number; requests: number };
  metrics: MetricsSnapshot;
  prefetch?: { state: "running" | "done" | "failed" | "off"; files?: number; chunks?: number; bytes?: number; error?: string };
  log?: string;
  /** The `nydus-ts serve` socket when that server (pid) serves this mount among others. */
  server?: string;
}

function writable(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function runDir(): string {
  const env = process.env.NYDUS_TS_RUN_DIR;
  if (env) {
    fs.mkdirSync(env, { recursive: true });
    return path.resolve(env);
  }
  if (writable("/run/nydus-ts")) return "/run/nydus-ts";
  const tmp = path.join(os.tmpdir(), "nydus-ts-run");
  fs.mkdirSync(tmp, { recursive: true });
  return tmp;
}

/** Base name (without extension) of a mountpoint's files in the run dir. */
export function mountKey(mountpoint: string): string {
  return "mount-" + crypto.createHash("sha256").update(path.resolve(mountpoint)).digest("hex").slice(0, 16);
}

export function stateFile(mountpoint: string, dir = runDir()): string {
  return path.join(dir, `${mountKey(mountpoint)}.json`);
}

/** Where an exiting daemon leaves its final state for `umount`. */
export function exitFile(stateFile: string): string {
  return stateFile.replace(/\.json$/, ".exit.json");
}

export function writeState(file: string, state: MountState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

export function readState(file: string): MountState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as MountState;
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether `/proc/mounts` lists `mountpoint`. */
export function isMounted(mountpoint: string): boolean {
  const mp = path.resolve(mountpoint).replace(/[ \t\n\\]/g, (c) => "\\" + c.charCodeAt(0).toString(8).padStart(3, "0"));
  try {
    return fs.readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === mp);
  } catch {
    return false;
  }
}

/** Human lines of a metrics snapshot: totals, then one line per blob. */
export function metricsLines(fetched: { bytes: number; requests: number }, m: MetricsSnapshot): string[] {
  const t = m.totals;
  const lines = [
    `fetched: ${fetched.bytes} bytes in ${fetched.requests} requests (bootstrap and manifests included)`,
    `chunks: ${t.hits} cache hits, ${t.misses} misses, ${t.verifiedChunks} verified, ${t.verificationFailures} verification failures; backend: ${t.requests} requests, ${t.bytes} bytes, ${t.failures} failures`,
  ];
  for (const [id, b] of Object.entries(m.blobs)) {
    const eps = Object.entries(b.endpoints).map(([name, e]) => `${name}: ${e.requests} req ${e.bytes} B${e.failures ? ` ${e.failures} failed` : ""}`).join("; ");
    lines.push(`  blob ${id.slice(0, 12)}: hits ${b.hits}, misses ${b.misses}, verified ${b.verifiedChunks}, prefetched ${b.prefetchedChunks}${eps ? `; ${eps}` : ""}`);
  }
  return lines;
}
