/**
 * External oracles: erofs-utils (mkfs/fsck/dump.erofs 1.5), the kernel EROFS driver through loop
 * devices, kernel overlayfs, and GNU tar.
 *
 * @example
 * const m = canMount();
 * test("mounts", { skip: skipReason(m, haveErofsUtils()) }, async () => {
 *   const mnt = await mountErofs(meta, [blob]);
 *   try { ... } finally { await mnt.close(); }
 * });
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export type Availability = { ok: true; reason?: undefined } | { ok: false; reason: string };

/** For node:test `skip`: false when all are available, else the first reason. */
export function skipReason(...avs: Availability[]): false | string {
  const bad = avs.find((a) => !a.ok);
  return bad ? bad.reason! : false;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; never throws for a non-zero exit (check `code`). */
export function run(cmd: string, args: readonly string[], options: { input?: string | Uint8Array; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const hasInput = options.input !== undefined;
    const child = spawn(cmd, args, { stdio: [hasInput ? "pipe" : "ignore", "pipe", "pipe"], timeout: options.timeoutMs ?? 120_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8") + (signal ? `\n(killed by ${signal})` : ""),
      }),
    );
    if (hasInput) {
      child.stdin!.on("error", (e) => void e); // EPIPE when the child exits early; its exit code tells the story
      child.stdin!.end(options.input);
    }
  });
}

async function runOk(cmd: string, args: readonly string[]): Promise<ExecResult> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`Cannot run "${cmd} ${args.join(" ")}": exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

function which(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v "$1" >/dev/null 2>&1`, "sh", cmd]).status === 0;
}

/** mkfs.erofs, fsck.erofs and dump.erofs are on PATH. */
export function haveErofsUtils(): Availability {
  const missing = ["mkfs.erofs", "fsck.erofs", "dump.erofs"].filter((c) => !which(c));
  return missing.length === 0 ? { ok: true } : { ok: false, reason: `erofs-utils missing (${missing.join(", ")}): apt-get install erofs-utils` };
}

/** Version line of mkfs.erofs, e.g. "mkfs.erofs 1.5", or undefined. */
export function erofsUtilsVersion(): string | undefined {
  const r = spawnSync("mkfs.erofs", ["--version"], { encoding: "utf8" });
  return r.status === 0 || r.stdout ? (r.stdout || r.stderr).trim().split("\n")[0] : undefined;
}

function kernelHasFs(name: string): boolean {
  try {
    return fs
      .readFileSync("/proc/filesystems", "utf8")
      .split("\n")
      .some((l) => l.split("\t").pop() === name);
  } catch (err) {
    void err; // no procfs: treat as unknown → not available
    return false;
  }
}

/** Can this process mount EROFS images through loop devices? Reason says why not. */
export function canMount(): Availability {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not root (mounting needs CAP_SYS_ADMIN)" };
  if (!kernelHasFs("erofs")) return { ok: false, reason: "kernel has no erofs in /proc/filesystems" };
  if (!fs.existsSync("/dev/loop-control") && !fs.existsSync("/dev/loop0")) return { ok: false, reason: "no loop devices (/dev/loop-control missing)" };
  const missing = ["losetup", "mount", "umount"].filter((c) => !which(c));
  if (missing.length) return { ok: false, reason: `missing tools: ${missing.join(", ")}` };
  return { ok: true };
}

/** Can this process serve a FUSE mount (root, /dev/fuse, util-linux mount)? Reason says why not. */
export function canMountFuse(): Availability {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not root (mounting needs CAP_SYS_ADMIN)" };
  if (!fs.existsSync("/dev/fuse")) return { ok: false, reason: "no /dev/fuse" };
  if (spawnSync("mount", ["--version"]).status !== 0) return { ok: false, reason: "no util-linux mount" };
  return { ok: true };
}

/** Root and overlayfs in the kernel. */
export function canMountOverlay(): Availability {
  if (process.getuid?.() !== 0) return { ok: false, reason: "not root (mounting needs CAP_SYS_ADMIN)" };
  if (!kernelHasFs("overlay")) return { ok: false, reason: "kernel has no overlay in /proc/filesystems" };
  return { ok: true };
}

/** GNU tar on PATH. */
export function haveGnuTar(): Availability {
  const r = spawnSync("tar", ["--version"], { encoding: "utf8" });
  return r.status === 0 && /GNU tar/.test(r.stdout) ? { ok: true } : { ok: false, reason: "GNU tar not found" };
}

// ---------- erofs-utils ----------

export interface MkfsOptions {
  /** --chunksize (bytes); needed with blobdev. */
  chunkSize?: number;
  /** --blobdev=FILE: file data goes to this extra device. */
  blobdev?: string;
  extraArgs?: readonly string[];
}

/** mkfs.erofs --quiet [--chunksize] [--blobdev] META DIR; throws on failure. */
export async function mkfsErofs(meta: string, srcDir: string, options: MkfsOptions = {}): Promise<ExecResult> {
  const args = ["--quiet"];
  if (options.chunkSize !== undefined) args.push(`--chunksize=${options.chunkSize}`);
  if (options.blobdev !== undefined) args.push(`--blobdev=${options.blobdev}`);
  args.push(...(options.extraArgs ?? []), meta, srcDir);
  return runOk("mkfs.erofs", args);
}

export interface FsckOptions {
  /** --extract=DIR (created by fsck.erofs). 1.5 drops setuid/setgid, splits hard links, writes no xattrs. */
  extractTo?: string;
  extraArgs?: readonly string[];
}

/** fsck.erofs --device=… [--extract=DIR] BOOTSTRAP. Check `code` (0 = clean). */
export async function fsckErofs(bootstrap: string, devices: readonly string[], options: FsckOptions = {}): Promise<ExecResult> {
  const args = devices.map((d) => `--device=${d}`);
  if (options.extractTo !== undefined) args.push(`--extract=${options.extractTo}`);
  args.push(...(options.extraArgs ?? []), bootstrap);
  return run("fsck.erofs", args);
}

/** dump.erofs with raw arguments. */
export async function dumpErofs(args: readonly string[]): Promise<ExecResult> {
  return run("dump.erofs", args);
}

/** dump.erofs --device=… ARGS BOOTSTRAP, e.g. `dumpErofsImage(meta, [blob], ["-s"])`. */
export async function dumpErofsImage(bootstrap: string, devices: readonly string[], args: readonly string[] = []): Promise<ExecResult> {
  return run("dump.erofs", [...devices.map((d) => `--device=${d}`), ...args, bootstrap]);
}

// ---------- loop devices and mounts ----------

const RETRYABLE = /busy|EBUSY|failed to set up loop device|could not find any free loop device|Resource temporarily unavailable/i;

/** losetup -f --show -r FILE, retrying on EBUSY-like races. Returns "/dev/loopN". */
export async function attachLoop(file: string, options: { readOnly?: boolean } = {}): Promise<string> {
  let last = "";
  for (let attempt = 0; attempt < 12; attempt++) {
    const r = await run("losetup", ["-f", "--show", ...(options.readOnly === false ? [] : ["-r"]), file]);
    if (r.code === 0 && r.stdout.trim().startsWith("/dev/")) return r.stdout.trim();
    last = r.stderr.trim();
    if (!RETRYABLE.test(last)) break;
    await sleep(20 * (attempt + 1));
  }
  throw new Error(`Cannot attach loop device for "${file}": ${last}`);
}

/** losetup -d, retrying while busy. Returns false if it never succeeded. */
export async function detachLoop(dev: string): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await run("losetup", ["-d", dev]);
    if (r.code === 0) return true;
    if (/No such device|not a block device|No such device or address/i.test(r.stderr)) return true;
    await sleep(30 * (attempt + 1));
  }
  return false;
}

/** umount with retries while busy, then lazy umount as a last resort. */
export async function unmount(mountpoint: string): Promise<void> {
  let last = "";
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await run("umount", [mountpoint]);
    if (r.code === 0) return;
    last = r.stderr.trim();
    if (/not mounted|no mount point/i.test(last)) return;
    await sleep(30 * (attempt + 1));
  }
  const lazy = await run("umount", ["-l", mountpoint]);
  if (lazy.code !== 0 && !/not mounted/i.test(lazy.stderr)) throw new Error(`Cannot unmount "${mountpoint}": ${last}; lazy: ${lazy.stderr.trim()}`);
}

export interface MountHandle {
  mountpoint: string;
  /** Loop devices used: [bootstrap, ...devices]. */
  loops: string[];
  /** Unmounts, detaches loops and removes a mountpoint this module created. Idempotent. */
  close(): Promise<void>;
}

async function kernelLogTail(filter: RegExp): Promise<string> {
  const r = await run("dmesg", []);
  if (r.code !== 0) return "";
  return r.stdout.split("\n").filter((l) => filter.test(l)).slice(-5).join("\n");
}

/**
 * Mounts an EROFS image read-only: every image (bootstrap and each extra device, in device-table
 * order) gets its own read-only loop device (the kernel refuses to mix block and file backing), then
 * `mount -t erofs -o ro,device=/dev/loopB,… /dev/loopM MOUNTPOINT`. Without `mountpoint`, a unique
 * directory under os.tmpdir() is created (and removed on close). On failure everything is undone.
 */
export async function mountErofs(bootstrap: string, devices: readonly string[], mountpoint?: string): Promise<MountHandle> {
  const created = mountpoint === undefined;
  const mp = mountpoint ?? (await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-ts-mnt-")));
  await fsp.mkdir(mp, { recursive: true });
  const loops: string[] = [];
  let mounted = false;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    const errors: string[] = [];
    if (mounted) {
      try {
        await unmount(mp);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    for (const l of loops.reverse()) if (!(await detachLoop(l))) errors.push(`Cannot detach ${l}`);
    if (created) await fsp.rm(mp, { recursive: true, force: true }).catch((err: Error) => errors.push(err.message));
    if (errors.length) throw new Error(`Cannot clean up EROFS mount "${mp}": ${errors.join("; ")}`);
  };
  try {
    for (const img of [bootstrap, ...devices]) loops.push(await attachLoop(img));
    const opts = ["ro", ...loops.slice(1).map((l) => `device=${l}`)].join(",");
    let last: ExecResult | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      last = await run("mount", ["-t", "erofs", "-o", opts, loops[0], mp]);
      if (last.code === 0) break;
      if (!RETRYABLE.test(last.stderr)) break;
      await sleep(30 * (attempt + 1));
    }
    if (last!.code !== 0) {
      const log = await kernelLogTail(/erofs/i);
      throw new Error(`Cannot mount EROFS "${bootstrap}" (devices ${devices.join(", ") || "none"}): ${last!.stderr.trim()}${log ? "\nkernel: " + log : ""}`);
    }
    mounted = true;
    return { mountpoint: mp, loops: [...loops], close };
  } catch (err) {
    await close().catch((e: Error) => process.stderr.write(`mountErofs cleanup: ${e.message}\n`));
    throw err;
  }
}

/** Mounts, runs `fn(mountpoint)`, always unmounts. */
export async function withErofsMount<T>(bootstrap: string, devices: readonly string[], fn: (mountpoint: string) => Promise<T>): Promise<T> {
  const m = await mountErofs(bootstrap, devices);
  try {
    return await fn(m.mountpoint);
  } finally {
    await m.close();
  }
}

/**
 * Read-only overlayfs over `lowers` (top layer FIRST, like `lowerdir=`), e.g. to check an expected
 * merge against the kernel. Lowers use overlayfs whiteouts (chr 0:0, trusted.overlay.opaque=y).
 */
export async function mountOverlay(lowers: readonly string[], mountpoint: string): Promise<MountHandle> {
  await fsp.mkdir(mountpoint, { recursive: true });
  await runOk("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${lowers.join(":")}`, mountpoint]);
  let closed = false;
  return {
    mountpoint,
    loops: [],
    close: async () => {
      if (closed) return;
      closed = true;
      await unmount(mountpoint);
    },
  };
}

// ---------- GNU tar ----------

/**
 * Extracts `tarFile` into `dest` (created) with GNU tar, keeping owners, modes, xattrs (all
 * namespaces), devices. `extraArgs` come after `-C dest` (options or member names).
 */
export async function gnuTarExtract(tarFile: string, dest: string, extraArgs: readonly string[] = []): Promise<ExecResult> {
  await fsp.mkdir(dest, { recursive: true });
  return runOk("tar", [
    "--xattrs",
    "--xattrs-include=*",
    "--numeric-owner",
    "--same-owner",
    "--same-permissions",
    "-xf",
    tarFile,
    "-C",
    dest,
    ...extraArgs,
  ]);
}

/** Creates a PAX tar of `srcDir` with GNU tar (sorted, numeric owners, xattrs). Sockets are skipped by tar. */
export async function gnuTarCreate(srcDir: string, tarFile: string, extraArgs: readonly string[] = []): Promise<ExecResult> {
  return runOk("tar", [
    "--xattrs",
    "--xattrs-include=*",
    "--numeric-owner",
    "--format=pax",
    "--sort=name",
    ...extraArgs,
    "-cf",
    tarFile,
    "-C",
    srcDir,
    ".",
  ]);
}
