/**
 * Temporary directories that are always cleaned up — including mounts and loop devices left under
 * them by a failed test.
 *
 * @example
 * await withTempDir(async (dir) => { await materializeDir(allTypesTexture(), path.join(dir, "tree")); });
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export interface TempDirOptions {
  /** Name prefix under os.tmpdir() (default "nydus-ts-"). */
  prefix?: string;
}

/** Creates a unique directory under os.tmpdir(). The caller must call {@link removeTree}. */
export async function makeTempDir(options: TempDirOptions = {}): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), options.prefix ?? "nydus-ts-"));
}

/**
 * Runs `fn` with a fresh temp dir and removes it afterwards, whether `fn` throws or not.
 * Set NYDUS_KEEP_TMP=1 to keep it for debugging (its path is printed).
 */
export async function withTempDir<T>(fn: (dir: string) => Promise<T> | T, options: TempDirOptions = {}): Promise<T> {
  const dir = await makeTempDir(options);
  try {
    return await fn(dir);
  } finally {
    if (process.env.NYDUS_KEEP_TMP === "1") {
      process.stderr.write(`withTempDir: kept ${dir}\n`);
    } else {
      await removeTree(dir);
    }
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith("/") ? dir : dir + "/");
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const real = path.resolve(dir);
  let text: string;
  try {
    text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch (err) {
    // No procfs: nothing we can discover; callers fall back to plain removal.
    void err;
    return [];
  }
  const points = text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => unescapeMountinfo(l.split(" ")[4]))
    .filter((mp) => isUnder(mp, real));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Loop devices (e.g. "/dev/loop3") whose backing file is at or below `dir` (from /sys/block). */
export function loopsBackedUnder(dir: string): string[] {
  const real = path.resolve(dir);
  const out: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n));
  } catch (err) {
    void err; // no sysfs: no loop devices to find
    return [];
  }
  for (const n of names) {
    let backing: string;
    try {
      backing = fs.readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").trim();
    } catch (err) {
      void err; // unbound loop device: no backing_file attribute
      continue;
    }
    backing = backing.replace(/ \(deleted\)$/, "");
    if (isUnder(backing, real)) out.push(`/dev/${n}`);
  }
  return out;
}

async function tryRun(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args);
    return true;
  } catch (err) {
    void err; // the caller decides what a failure means
    return false;
  }
}

/** Unmounts everything under `dir` (lazily if busy), detaches loop devices backed there, then rm -rf. */
export async function removeTree(dir: string): Promise<void> {
  for (const mp of mountsUnder(dir)) {
    if (!(await tryRun("umount", [mp]))) await tryRun("umount", ["-l", mp]);
  }
  // `losetup -d` on a device the kernel still holds (a just-unmounted filesystem releases it
  // asynchronously) only marks it for auto-clear, and the kernel gives no event to wait on.
  // So re-check for a bounded time (2 s) until the devices are really gone.
  for (let attempt = 0; attempt < 40; attempt++) {
    const loops = loopsBackedUnder(dir);
    if (loops.length === 0) break;
    for (const loop of loops) await tryRun("losetup", ["-d", loop]);
    if (loopsBackedUnder(dir).length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
