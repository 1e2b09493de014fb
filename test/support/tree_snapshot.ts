/**
 * Canonical snapshots of a directory tree (a kernel mount, an extraction, a materialised texture) and
 * of a texture spec (the expected side), plus a readable diff.
 *
 * @example
 * const actual = await snapshotTree(mnt);
 * assertSnapshotsEqual(actual, snapshotFromSpec(allTypesTexture()), { ignore: ["nlink"] });
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { native } from "../../src/internal/native.ts";
import { type LayerSpec, contentChunks, contentSize } from "../textures/spec.ts";
import { type WhiteoutStyle, resolveLayer } from "../textures/generate.ts";

export type NodeType = "dir" | "file" | "symlink" | "chr" | "blk" | "fifo" | "socket";

export interface SnapEntry {
  /** "/" for the root, else "/a/b". */
  path: string;
  type: NodeType;
  /** Permission bits incl. setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: byte size; symlinks: target length in bytes. Absent for other types (dir sizes are fs-specific). */
  size?: number;
  mtime: number;
  /** Only when the snapshot was taken with `nsec: true`. */
  mtimeNsec?: number;
  nlink: number;
  rdevMajor?: number;
  rdevMinor?: number;
  target?: string;
  /** name → hex value. Absent when xattrs were not read. */
  xattrs?: Record<string, string>;
  /** Regular files, when content was read. */
  sha256?: string;
  /** Regular files with nlink > 1: the smallest path (within the snapshot) sharing the inode. */
  linkGroup?: string;
}

/** path → entry, in sorted path order. */
export type TreeSnapshot = Map<string, SnapEntry>;

export type SnapField =
  | "type"
  | "mode"
  | "uid"
  | "gid"
  | "size"
  | "mtime"
  | "mtimeNsec"
  | "nlink"
  | "rdev"
  | "target"
  | "xattrs"
  | "sha256"
  | "linkGroup";

export interface SnapshotOptions {
  /** Read xattrs (default true). Reads are synchronous (native addon): pass false when a FUSE server runs on this thread. */
  xattrs?: boolean;
  /** Hash regular file content (default true). */
  content?: boolean;
  /** Record mtime nanoseconds (default false). */
  nsec?: boolean;
  /** xattr names to leave out (exact or RegExp), e.g. [/^security\.selinux$/]. */
  ignoreXattrs?: readonly (string | RegExp)[];
}

function matches(list: readonly (string | RegExp)[] | undefined, s: string): boolean {
  return (list ?? []).some((m) => (typeof m === "string" ? m === s : m.test(s)));
}

function rdevParts(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

function typeOf(st: fs.BigIntStats): NodeType {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "chr";
  if (st.isBlockDevice()) return "blk";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  throw new Error(`Cannot classify file mode 0o${st.mode.toString(8)}`);
}

function readXattrs(p: string, ignore: SnapshotOptions["ignoreXattrs"]): Record<string, string> {
  const out: Record<string, string> = {};
  const names = Buffer.from(native.listXattrs(p))
    .toString("utf8")
    .split("\0")
    .filter((n) => n !== "")
    .sort();
  for (const name of names) {
    if (matches(ignore, name)) continue;
    out[name] = Buffer.from(native.getXattr(p, name)).toString("hex");
  }
  return out;
}

async function sha256File(p: string, size: number): Promise<string> {
  const h = createHash("sha256");
  if (size <= 4 << 20) return h.update(await fsp.readFile(p)).digest("hex");
  await pipeline(fs.createReadStream(p, { highWaterMark: 1 << 20 }), h);
  return h.digest("hex");
}

/**
 * Walks `root` (without following symlinks, without crossing into nothing special: it does not check
 * mount boundaries) and returns the canonical snapshot. All fs calls are sequential async calls.
 */
export async function snapshotTree(root: string, options: SnapshotOptions = {}): Promise<TreeSnapshot> {
  const entries: SnapEntry[] = [];
  const inodes = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === "/" ? root : path.join(root, rel);
    const st = await fsp.lstat(abs, { bigint: true });
    const type = typeOf(st);
    const e: SnapEntry = {
      path: rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
      nlink: Number(st.nlink),
    };
    if (options.nsec) e.mtimeNsec = Number(st.mtimeNs % 1_000_000_000n);
    if (type === "file") {
      e.size = Number(st.size);
      if (options.content !== false) e.sha256 = await sha256File(abs, e.size);
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        inodes.set(key, [...(inodes.get(key) ?? []), rel]);
        e.linkGroup = key; // replaced below
      }
    }
    if (type === "symlink") {
      const t = await fsp.readlink(abs, { encoding: "buffer" });
      e.target = t.toString("utf8");
      e.size = t.length;
    }
    if (type === "chr" || type === "blk") {
      const { major, minor } = rdevParts(st.rdev);
      e.rdevMajor = major;
      e.rdevMinor = minor;
    }
    if (options.xattrs !== false) e.xattrs = readXattrs(abs, options.ignoreXattrs);
    entries.push(e);
    if (type === "dir") {
      const names = (await fsp.readdir(abs)).sort();
      for (const n of names) await walk(rel === "/" ? `/${n}` : `${rel}/${n}`);
    }
  };
  await walk("/");
  for (const e of entries) {
    if (e.linkGroup !== undefined) e.linkGroup = [...inodes.get(e.linkGroup)!].sort()[0];
  }
  return toSnapshot(entries);
}

function toSnapshot(entries: SnapEntry[]): TreeSnapshot {
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return new Map(entries.map((e) => [e.path, e] as const));
}

export interface SpecSnapshotOptions {
  /** Whiteout representation used when materialising (default "oci"). */
  whiteouts?: WhiteoutStyle;
  /** "dir" (default) includes sockets; "tar" leaves them out (tar cannot carry them). */
  form?: "dir" | "tar";
  /** Whether the compared snapshot records xattrs / content / nsec (match the snapshotTree options). */
  xattrs?: boolean;
  content?: boolean;
  nsec?: boolean;
}

/** The snapshot a faithful materialisation of `layer` must have. */
export function snapshotFromSpec(layer: LayerSpec, options: SpecSnapshotOptions = {}): TreeSnapshot {
  const nodes = resolveLayer(layer, options.whiteouts ?? "oci").filter((n) => !(options.form === "tar" && n.type === "socket"));
  const groups = new Map<string, string[]>();
  const subdirs = new Map<string, number>();
  for (const n of nodes) {
    if (n.type === "file") groups.set(n.path, [n.path]);
    if (n.type === "hardlink") groups.get(n.target!)!.push(n.path);
    if (n.type === "dir" && n.path !== "") {
      const parent = n.path.includes("/") ? n.path.slice(0, n.path.lastIndexOf("/")) : "";
      subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
    }
  }
  const abs = (p: string) => (p === "" ? "/" : `/${p}`);
  const byPath = new Map(nodes.map((n) => [n.path, n] as const));
  const hashes = new Map<string, string>();
  const entries: SnapEntry[] = [];
  for (const n of nodes) {
    const base = n.type === "hardlink" ? byPath.get(n.target!)! : n;
    const type = base.type as NodeType;
    const e: SnapEntry = { path: abs(n.path), type, mode: base.mode, uid: base.uid, gid: base.gid, mtime: base.mtime, nlink: 1 };
    if (options.nsec) e.mtimeNsec = base.mtimeNsec;
    if (type === "dir") e.nlink = 2 + (subdirs.get(n.path) ?? 0);
    if (type === "file") {
      const group = groups.get(base.path)!;
      e.size = contentSize(base.content!);
      e.nlink = group.length;
      if (group.length > 1) e.linkGroup = abs([...group].sort()[0]);
      if (options.content !== false) {
        let h = hashes.get(base.path);
        if (h === undefined) {
          const hasher = createHash("sha256");
          for (const part of contentChunks(base.content!)) hasher.update(part);
          h = hasher.digest("hex");
          hashes.set(base.path, h);
        }
        e.sha256 = h;
      }
    }
    if (type === "symlink") {
      e.target = base.target;
      e.size = Buffer.byteLength(base.target!, "utf8");
    }
    if (type === "chr" || type === "blk") {
      e.rdevMajor = base.major;
      e.rdevMinor = base.minor;
    }
    if (options.xattrs !== false) {
      e.xattrs = Object.fromEntries(
        [...base.xattrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, Buffer.from(v).toString("hex")]),
      );
    }
    entries.push(e);
  }
  return toSnapshot(entries);
}

export interface DiffOptions {
  /** Fields not compared at all. */
  ignore?: readonly SnapField[];
  /** Fields not compared for entries of the given types, e.g. `{ dir: ["nlink", "mtime"] }`. */
  ignoreByType?: Partial<Record<NodeType, readonly SnapField[]>>;
  /** Paths left out on both sides: exact path ("/a/b"), or RegExp. A string ending in "/**" drops a subtree. */
  ignorePaths?: readonly (string | RegExp)[];
  /** xattr names not compared. */
  ignoreXattrs?: readonly (string | RegExp)[];
  /** Mode bits compared (default 0o7777), e.g. 0o777 to ignore setuid/setgid/sticky. */
  modeMask?: number;
  /** Names of the two sides in messages (default ["left", "right"]). */
  names?: readonly [string, string];
}

function pathIgnored(p: string, list: DiffOptions["ignorePaths"]): boolean {
  return (list ?? []).some((m) => {
    if (typeof m !== "string") return m.test(p);
    if (m.endsWith("/**")) {
      const base = m.slice(0, -3) || "/";
      return p === base || p.startsWith(base === "/" ? "/" : base + "/");
    }
    return m === p;
  });
}

function show(v: unknown): string {
  if (typeof v === "number") return String(v);
  return JSON.stringify(v);
}

/** Differences between two snapshots as readable lines; empty when equal under the options. */
export function diffSnapshots(a: TreeSnapshot, b: TreeSnapshot, options: DiffOptions = {}): string[] {
  const [na, nb] = options.names ?? ["left", "right"];
  const out: string[] = [];
  const ignore = new Set(options.ignore ?? []);
  const mask = options.modeMask ?? 0o7777;
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const p of paths) {
    if (pathIgnored(p, options.ignorePaths)) continue;
    const x = a.get(p);
    const y = b.get(p);
    if (!x || !y) {
      out.push(`${p}: only in ${x ? na : nb} (${(x ?? y)!.type})`);
      continue;
    }
    if (!ignore.has("type") && x.type !== y.type) {
      out.push(`${p}: type ${na}=${x.type} ${nb}=${y.type}`);
      continue;
    }
    const skip = new Set([...ignore, ...(options.ignoreByType?.[x.type] ?? [])]);
    const cmp = (field: SnapField, vx: unknown, vy: unknown, fmt: (v: unknown) => string = show) => {
      if (skip.has(field)) return;
      if (vx === undefined || vy === undefined) return; // not recorded on one side
      if (JSON.stringify(vx) !== JSON.stringify(vy)) out.push(`${p}: ${field} ${na}=${fmt(vx)} ${nb}=${fmt(vy)}`);
    };
    const oct = (v: unknown) => "0o" + (v as number).toString(8);
    cmp("mode", x.mode & mask, y.mode & mask, oct);
    cmp("uid", x.uid, y.uid);
    cmp("gid", x.gid, y.gid);
    cmp("size", x.size, y.size);
    cmp("mtime", x.mtime, y.mtime);
    cmp("mtimeNsec", x.mtimeNsec, y.mtimeNsec);
    cmp("nlink", x.nlink, y.nlink);
    if (x.type === "chr" || x.type === "blk") cmp("rdev", `${x.rdevMajor}:${x.rdevMinor}`, `${y.rdevMajor}:${y.rdevMinor}`);
    cmp("target", x.target, y.target);
    cmp("sha256", x.sha256, y.sha256);
    cmp("linkGroup", x.linkGroup ?? null, y.linkGroup ?? null);
    if (!skip.has("xattrs") && x.xattrs && y.xattrs) {
      const names = [...new Set([...Object.keys(x.xattrs), ...Object.keys(y.xattrs)])].sort();
      for (const n of names) {
        if (matches(options.ignoreXattrs, n)) continue;
        const vx = x.xattrs[n];
        const vy = y.xattrs[n];
        if (vx === vy) continue;
        const fmt = (v: string | undefined) => (v === undefined ? "(absent)" : `0x${v.length > 64 ? v.slice(0, 64) + "…" : v}`);
        out.push(`${p}: xattr ${n} ${na}=${fmt(vx)} ${nb}=${fmt(vy)}`);
      }
    }
  }
  return out;
}

/** Asserts no differences; the message lists up to `maxLines` of them. */
export function assertSnapshotsEqual(
  actual: TreeSnapshot,
  expected: TreeSnapshot,
  options: DiffOptions & { maxLines?: number; message?: string } = {},
): void {
  const diffs = diffSnapshots(actual, expected, { names: ["actual", "expected"], ...options });
  if (diffs.length === 0) return;
  const max = options.maxLines ?? 40;
  const more = diffs.length > max ? `\n… and ${diffs.length - max} more` : "";
  assert.fail(`${options.message ?? "Snapshots differ"} (${diffs.length} differences):\n${diffs.slice(0, max).join("\n")}${more}`);
}

/** One line per entry, for debugging output. */
export function formatSnapshot(snap: TreeSnapshot): string {
  return [...snap.values()]
    .map((e) => {
      const extra = [
        e.size !== undefined ? `size=${e.size}` : "",
        e.target !== undefined ? `-> ${e.target.length > 40 ? e.target.slice(0, 40) + "…" : e.target}` : "",
        e.rdevMajor !== undefined ? `rdev=${e.rdevMajor}:${e.rdevMinor}` : "",
        e.linkGroup ? `link=${e.linkGroup}` : "",
        e.xattrs && Object.keys(e.xattrs).length ? `xattrs=${Object.keys(e.xattrs).join(",")}` : "",
      ]
        .filter(Boolean)
        .join(" ");
      return `${e.type.padEnd(7)} 0o${e.mode.toString(8).padStart(4, "0")} ${e.uid}:${e.gid} n${e.nlink} t${e.mtime} ${e.path} ${extra}`;
    })
    .join("\n");
}
