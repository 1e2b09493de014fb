/**
 * Materialise a {@link LayerSpec} as (a) a directory on disk and (b) a tar (hand-written PAX/ustar,
 * so hostile names and whiteouts are exact).
 *
 * @example
 * await materializeDir(allTypesTexture(), "/tmp/x/tree");
 * await writeTar(allTypesTexture(), "/tmp/x/layer.tar");
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type Attrs,
  type ContentSpec,
  type EntrySpec,
  type LayerSpec,
  type RawTarEntry,
  DEFAULT_MODE,
  DEFAULT_MTIME,
  baseOf,
  contentBytes,
  contentChunks,
  contentSize,
  normalizeLayer,
  parentOf,
  xattrValue,
} from "./spec.ts";
import { native } from "../../src/internal/native.ts";

/** How whiteouts/opaque markers are represented: OCI `.wh.` files or overlayfs chr 0:0 + trusted.overlay.opaque. */
export type WhiteoutStyle = "oci" | "overlayfs";

export const OPAQUE_MARKER = ".wh..wh..opq";
export const WHITEOUT_PREFIX = ".wh.";

export interface MaterializeOptions {
  whiteouts?: WhiteoutStyle;
}

export interface TarOptions {
  whiteouts?: WhiteoutStyle;
  /** Long names/link targets: PAX `path`/`linkpath` records (default) or GNU `L`/`K` entries. */
  longNames?: "pax" | "gnu";
  /** Prefix for every member name, e.g. "./" (default ""). */
  namePrefix?: string;
}

// ---------- resolved view (shared by tar and dir; also used by snapshotFromSpec) ----------

/** One concrete filesystem object after whiteout representation is chosen. */
export interface ResolvedNode {
  path: string;
  type: "dir" | "file" | "symlink" | "hardlink" | "chr" | "blk" | "fifo" | "socket";
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  xattrs: Map<string, Uint8Array>;
  content?: ContentSpec;
  target?: string;
  major?: number;
  minor?: number;
}

function attrsOf(a: Attrs, type: keyof typeof DEFAULT_MODE, defMtime: number): Omit<ResolvedNode, "path" | "type"> {
  const xattrs = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(a.xattrs ?? {})) xattrs.set(k, xattrValue(v));
  return {
    mode: a.mode ?? DEFAULT_MODE[type],
    uid: a.uid ?? 0,
    gid: a.gid ?? 0,
    mtime: a.mtime ?? defMtime,
    mtimeNsec: a.mtimeNsec ?? 0,
    xattrs,
  };
}

/**
 * Turns a layer into concrete nodes in write order (parents first). Whiteouts become `.wh.` files or
 * chr 0:0 nodes; opaque markers become `.wh..wh..opq` files or a `trusted.overlay.opaque` xattr.
 * The root (path "") comes first, with `layer.root` or default attributes.
 */
export function resolveLayer(layer: LayerSpec, whiteouts: WhiteoutStyle = "oci"): ResolvedNode[] {
  const norm = normalizeLayer(layer);
  const defMtime = layer.defaultMtime ?? DEFAULT_MTIME;
  const out: ResolvedNode[] = [];
  const byPath = new Map<string, ResolvedNode>();
  const root: ResolvedNode = { path: "", type: "dir", ...attrsOf(layer.root ?? {}, "dir", defMtime) };
  out.push(root);
  byPath.set("", root);
  const opaqueDirs: string[] = [];
  for (const e of norm.entries) {
    let n: ResolvedNode;
    switch (e.type) {
      case "dir":
      case "fifo":
      case "socket":
        n = { path: e.path, type: e.type, ...attrsOf(e, e.type, defMtime) };
        break;
      case "file":
        n = { path: e.path, type: "file", ...attrsOf(e, "file", defMtime), content: e.content };
        break;
      case "symlink":
        n = { path: e.path, type: "symlink", ...attrsOf(e, "symlink", defMtime), target: e.target };
        break;
      case "chr":
      case "blk":
        n = { path: e.path, type: e.type, ...attrsOf(e, e.type, defMtime), major: e.major, minor: e.minor };
        break;
      case "hardlink": {
        const t = byPath.get(e.target);
        if (!t) throw new RangeError(`Cannot hardlink "${e.path}": unknown target "${e.target}"`);
        const rootPath = t.type === "hardlink" ? t.target! : t.path;
        const root = byPath.get(rootPath)!;
        n = { ...root, path: e.path, type: "hardlink", target: rootPath };
        break;
      }
      case "whiteout":
        n =
          whiteouts === "oci"
            ? { path: joinPath(parentOf(e.path), WHITEOUT_PREFIX + baseOf(e.path)), type: "file", ...attrsOf({}, "file", defMtime), content: { kind: "zeros", size: 0 } }
            : { path: e.path, type: "chr", ...attrsOf({ mode: 0 }, "chr", defMtime), major: 0, minor: 0 };
        break;
      case "opaque":
        if (whiteouts === "oci") {
          n = { path: joinPath(e.path, OPAQUE_MARKER), type: "file", ...attrsOf({}, "file", defMtime), content: { kind: "zeros", size: 0 } };
        } else {
          opaqueDirs.push(e.path);
          continue;
        }
        break;
    }
    if (byPath.has(n.path)) throw new RangeError(`Cannot resolve layer: "${n.path}" appears twice`);
    byPath.set(n.path, n);
    out.push(n);
  }
  for (const d of opaqueDirs) {
    const n = byPath.get(d);
    if (!n || n.type !== "dir") throw new RangeError(`Cannot mark "${d}" opaque: not a directory of the layer`);
    n.xattrs.set("trusted.overlay.opaque", new Uint8Array([0x79]));
  }
  return out;
}

function joinPath(a: string, b: string): string {
  return a === "" ? b : `${a}/${b}`;
}

// ---------- directory form ----------

function runOk(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`Cannot run ${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
}

async function writeContent(file: string, c: ContentSpec): Promise<void> {
  if (c.kind === "zeros" && c.sparse) {
    const fh = await fsp.open(file, "w");
    try {
      await fh.truncate(c.size);
    } finally {
      await fh.close();
    }
    return;
  }
  if (contentSize(c) <= 4 << 20) fs.writeFileSync(file, contentBytes(c), { flag: "wx" });
  else await pipeline(Readable.from(contentChunks(c)), fs.createWriteStream(file, { flags: "wx" }));
}

/**
 * Creates the tree of `layer` under `dest` (created if missing; must be empty). Needs root for
 * devices, ownership, trusted.* and security.* xattrs. Order per node: create, write, lchown,
 * chmod (after chown, which clears setuid), xattrs (after chown, which clears security.capability);
 * times last, so creating children does not disturb directory mtimes.
 */
export async function materializeDir(layer: LayerSpec, dest: string, options: MaterializeOptions = {}): Promise<void> {
  const nodes = resolveLayer(layer, options.whiteouts ?? "oci");
  await fsp.mkdir(dest, { recursive: true });
  if ((await fsp.readdir(dest)).length > 0) throw new Error(`Cannot materialise into "${dest}": not empty`);
  const abs = (p: string) => (p === "" ? dest : path.join(dest, p));
  const specials: ResolvedNode[] = [];
  for (const n of nodes) {
    const p = abs(n.path);
    switch (n.type) {
      case "dir":
        if (n.path !== "") fs.mkdirSync(p);
        break;
      case "file":
        await writeContent(p, n.content!);
        break;
      case "symlink":
        fs.symlinkSync(n.target!, p);
        break;
      case "hardlink":
        break; // after the target's attributes are final
      default:
        specials.push(n);
    }
  }
  if (specials.length > 0) makeSpecials(specials.map((n) => ({ ...n, path: abs(n.path) })));
  for (const n of nodes) {
    if (n.type === "hardlink") continue;
    const p = abs(n.path);
    fs.lchownSync(p, n.uid, n.gid);
    if (n.type !== "symlink") fs.chmodSync(p, n.mode);
    for (const [k, v] of n.xattrs) native.setXattr(p, k, v);
  }
  for (const n of nodes) if (n.type === "hardlink") fs.linkSync(abs(n.target!), abs(n.path));
  // Times: nanosecond values go through touch(1), whole seconds through lutimes.
  const byNsec = new Map<string, string[]>();
  for (const n of nodes) {
    if (n.type === "hardlink") continue;
    const p = abs(n.path);
    if (n.mtimeNsec === 0) {
      fs.lutimesSync(p, n.mtime, n.mtime);
    } else {
      const stamp = `@${n.mtime}.${String(n.mtimeNsec).padStart(9, "0")}`;
      byNsec.set(stamp, [...(byNsec.get(stamp) ?? []), p]);
    }
  }
  for (const [stamp, paths] of byNsec) runOk("touch", ["-h", "-d", stamp, "--", ...paths]);
}

/** mknod for chr/blk/fifo/socket in one python3 call (Node has no mknod); falls back to mknod(1) without sockets. */
function makeSpecials(nodes: ResolvedNode[]): void {
  const list = nodes.map((n) => [n.path, n.type, n.major ?? 0, n.minor ?? 0]);
  const script =
    "import json,os,stat,sys\n" +
    "T={'chr':stat.S_IFCHR,'blk':stat.S_IFBLK,'fifo':stat.S_IFIFO,'socket':stat.S_IFSOCK}\n" +
    "for p,t,ma,mi in json.load(sys.stdin): os.mknod(p, T[t]|0o600, os.makedev(ma,mi))\n";
  const r = spawnSync("python3", ["-c", script], { input: JSON.stringify(list), encoding: "utf8" });
  if (!r.error && r.status === 0) return;
  for (const n of nodes) {
    if (n.type === "socket") throw new Error(`Cannot create socket "${n.path}": python3 unavailable (${r.error?.message ?? r.stderr})`);
    if (n.type === "fifo") runOk("mknod", [n.path, "p"]);
    else runOk("mknod", [n.path, n.type === "chr" ? "c" : "b", String(n.major), String(n.minor)]);
  }
}

// ---------- tar form ----------

const BLOCK = 512;
const enc = new TextEncoder();

function octal(value: number, width: number): string {
  // width includes the trailing NUL
  return value.toString(8).padStart(width - 1, "0");
}

function fitsOctal(value: number, width: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < 8 ** (width - 1);
}

function putString(h: Uint8Array, off: number, len: number, s: string | Uint8Array): void {
  const b = typeof s === "string" ? enc.encode(s) : s;
  h.set(b.subarray(0, len), off);
}

interface HeaderFields {
  name: Uint8Array;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: Uint8Array;
  major?: number;
  minor?: number;
}

function ustarHeader(f: HeaderFields): Uint8Array {
  const h = new Uint8Array(BLOCK);
  putString(h, 0, 100, f.name);
  putString(h, 100, 8, octal(f.mode & 0o7777, 8));
  putString(h, 108, 8, octal(fitsOctal(f.uid, 8) ? f.uid : 0, 8));
  putString(h, 116, 8, octal(fitsOctal(f.gid, 8) ? f.gid : 0, 8));
  putString(h, 124, 12, octal(fitsOctal(f.size, 12) ? f.size : 0, 12));
  putString(h, 136, 12, octal(fitsOctal(f.mtime, 12) ? f.mtime : 0, 12));
  h.fill(0x20, 148, 156);
  putString(h, 156, 1, f.typeflag);
  if (f.linkname) putString(h, 157, 100, f.linkname);
  putString(h, 257, 6, "ustar\0");
  putString(h, 263, 2, "00");
  putString(h, 265, 32, f.uid === 0 ? "root" : "");
  putString(h, 297, 32, f.gid === 0 ? "root" : "");
  putString(h, 329, 8, octal(f.major ?? 0, 8));
  putString(h, 337, 8, octal(f.minor ?? 0, 8));
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, octal(sum, 7) + "\0 ");
  return h;
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const body = new Uint8Array([...enc.encode(` ${key}=`), ...value, 0x0a]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  const out = new Uint8Array(len);
  out.set(enc.encode(String(len)), 0);
  out.set(body, String(len).length);
  return out;
}

function padTo512(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

function* dataEntry(header: HeaderFields, data: Uint8Array): Generator<Uint8Array> {
  yield ustarHeader({ ...header, size: data.length });
  yield data;
  const pad = padTo512(data.length);
  if (pad) yield new Uint8Array(pad);
}

interface MemberSpec {
  name: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  linkname?: string;
  major?: number;
  minor?: number;
  xattrs: Map<string, Uint8Array>;
  content?: ContentSpec;
}

function* member(m: MemberSpec, opts: TarOptions): Generator<Uint8Array> {
  const nameB = enc.encode(m.name);
  const linkB = m.linkname !== undefined ? enc.encode(m.linkname) : undefined;
  const size = m.content ? contentSize(m.content) : 0;
  const records: Uint8Array[] = [];
  const gnu = opts.longNames === "gnu";
  if (nameB.length > 100 && gnu) yield* dataEntry(gnuLongHeader("L"), new Uint8Array([...nameB, 0]));
  if (linkB && linkB.length > 100 && gnu) yield* dataEntry(gnuLongHeader("K"), new Uint8Array([...linkB, 0]));
  if (nameB.length > 100 && !gnu) records.push(paxRecord("path", nameB));
  if (linkB && linkB.length > 100 && !gnu) records.push(paxRecord("linkpath", linkB));
  if (!fitsOctal(m.uid, 8)) records.push(paxRecord("uid", enc.encode(String(m.uid))));
  if (!fitsOctal(m.gid, 8)) records.push(paxRecord("gid", enc.encode(String(m.gid))));
  if (!fitsOctal(size, 12)) records.push(paxRecord("size", enc.encode(String(size))));
  if (m.mtimeNsec !== 0 || !fitsOctal(m.mtime, 12)) {
    const frac = m.mtimeNsec !== 0 ? "." + String(m.mtimeNsec).padStart(9, "0") : "";
    records.push(paxRecord("mtime", enc.encode(`${m.mtime}${frac}`)));
  }
  for (const [k, v] of [...m.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  if (records.length > 0) {
    const body = new Uint8Array(records.reduce((s, r) => s + r.length, 0));
    let off = 0;
    for (const r of records) {
      body.set(r, off);
      off += r.length;
    }
    const paxName = enc.encode(`PaxHeaders/${baseOf(m.name.replace(/\/+$/, "")) || "root"}`.slice(0, 99));
    yield* dataEntry({ name: paxName, typeflag: "x", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: Math.max(0, Math.min(m.mtime, 8 ** 11 - 1)) }, body);
  }
  yield ustarHeader({
    name: nameB,
    typeflag: m.typeflag,
    mode: m.mode,
    uid: m.uid,
    gid: m.gid,
    size,
    mtime: m.mtime,
    linkname: linkB,
    major: m.major,
    minor: m.minor,
  });
  if (m.content && size > 0) {
    for (const part of contentChunks(m.content)) yield part;
    const pad = padTo512(size);
    if (pad) yield new Uint8Array(pad);
  }
}

function gnuLongHeader(flag: "L" | "K"): HeaderFields {
  return { name: enc.encode("././@LongLink"), typeflag: flag, mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 };
}

const TYPEFLAG: Record<string, string> = { file: "0", hardlink: "1", symlink: "2", chr: "3", blk: "4", dir: "5", fifo: "6" };

function rawMember(e: RawTarEntry): MemberSpec {
  return {
    name: e.name,
    typeflag: TYPEFLAG[e.type],
    mode: e.mode ?? (e.type === "dir" ? 0o755 : e.type === "symlink" ? 0o777 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    mtime: e.mtime ?? DEFAULT_MTIME,
    mtimeNsec: 0,
    linkname: e.linkname,
    major: e.major,
    minor: e.minor,
    xattrs: new Map(),
    content: e.type === "file" ? e.content ?? { kind: "zeros", size: 0 } : undefined,
  };
}

/**
 * The tar stream of `layer` as byte pieces (streaming: file data is generated lazily).
 * Sockets are skipped (tar cannot carry them). Ends with two zero blocks.
 */
export function* tarChunks(layer: LayerSpec, options: TarOptions = {}): Generator<Uint8Array> {
  const prefix = options.namePrefix ?? "";
  for (const n of resolveLayer(layer, options.whiteouts ?? "oci")) {
    if (n.type === "socket" || (n.path === "" && !layer.root)) continue;
    const name = n.path === "" ? "./" : prefix + n.path + (n.type === "dir" ? "/" : "");
    yield* member(
      {
        name,
        typeflag: TYPEFLAG[n.type],
        mode: n.mode,
        uid: n.uid,
        gid: n.gid,
        mtime: n.mtime,
        mtimeNsec: n.mtimeNsec,
        linkname: n.type === "hardlink" ? prefix + n.target! : n.type === "symlink" ? n.target : undefined,
        major: n.major,
        minor: n.minor,
        xattrs: n.type === "hardlink" ? new Map() : n.xattrs,
        content: n.type === "file" ? n.content : undefined,
      },
      options,
    );
  }
  for (const raw of layer.tarOnly ?? []) yield* member(rawMember(raw), options);
  yield new Uint8Array(BLOCK * 2);
}

/** The tar as a Node Readable stream. */
export function tarStream(layer: LayerSpec, options: TarOptions = {}): Readable {
  return Readable.from(tarChunks(layer, options), { objectMode: false });
}

/** The whole tar in memory. */
export function tarBytes(layer: LayerSpec, options: TarOptions = {}): Uint8Array {
  const parts = [...tarChunks(layer, options)];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Writes the tar to `file`. */
export async function writeTar(layer: LayerSpec, file: string, options: TarOptions = {}): Promise<void> {
  await pipeline(tarStream(layer, options), fs.createWriteStream(file));
}

/** Re-export for convenience: entries of a layer after normalisation (explicit parents). */
export function layerEntries(layer: LayerSpec): EntrySpec[] {
  return normalizeLayer(layer).entries;
}
