/**
 * Declarative texture specs ("layer specs"): the content of one filesystem tree / image layer,
 * from which `generate.ts` materialises a directory and a tar, and `test/support/tree_snapshot.ts`
 * computes the expected snapshot.
 *
 * Paths are relative ("a/b/c"), without "./", leading "/", trailing "/" or ".." components.
 * Tar-only hostile entries (../x, /abs, ...) go in {@link LayerSpec.tarOnly}, written verbatim.
 *
 * @example
 * const layer = layer([dir("d", { mode: 0o1777 }), file("d/f", random(5000, 1))]);
 */
import { Prng } from "../support/fuzz.ts";

export type EntryType = "dir" | "file" | "symlink" | "hardlink" | "chr" | "blk" | "fifo" | "socket" | "whiteout" | "opaque";

/** Inode attributes. Missing values take the defaults in {@link DEFAULTS} (mode depends on type). */
export interface Attrs {
  /** Permission bits incl. setuid 0o4000 / setgid 0o2000 / sticky 0o1000 (no file-type bits). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch (non-negative integer). */
  mtime?: number;
  /** Nanoseconds part of mtime, 0..999999999. */
  mtimeNsec?: number;
  /** xattr name → value (string = UTF-8). Note: user.* is only allowed on files and dirs (kernel rule). */
  xattrs?: Record<string, Uint8Array | string>;
}

export type ContentSpec =
  /** `size` pseudo-random bytes from a seeded PRNG. */
  | { kind: "random"; size: number; seed: number }
  /** One random block of `blockSize` bytes (from `seed`) repeated up to `size` (chunk dedup). */
  | { kind: "repeat"; size: number; blockSize: number; seed: number }
  /** `size` zero bytes; with `sparse`, the directory form is made with ftruncate (a hole). */
  | { kind: "zeros"; size: number; sparse?: boolean }
  | { kind: "text"; text: string }
  | { kind: "bytes"; data: Uint8Array };

export interface DirEntry extends Attrs { type: "dir"; path: string }
export interface FileEntry extends Attrs { type: "file"; path: string; content: ContentSpec }
export interface SymlinkEntry extends Attrs { type: "symlink"; path: string; target: string }
/** Hard link to an earlier regular file of the same layer (`target` is its path). Attributes come from the target. */
export interface HardlinkEntry { type: "hardlink"; path: string; target: string }
export interface DeviceEntry extends Attrs { type: "chr" | "blk"; path: string; major: number; minor: number }
export interface FifoEntry extends Attrs { type: "fifo"; path: string }
/** Unix socket: directory form only (tar cannot carry sockets; the tar writer skips it). */
export interface SocketEntry extends Attrs { type: "socket"; path: string }
/** Removal of `path` from lower layers: OCI `.wh.<name>` or overlayfs chr 0:0, per materialisation option. */
export interface WhiteoutEntry { type: "whiteout"; path: string }
/** Directory `path` hides all lower children: OCI `.wh..wh..opq` or xattr trusted.overlay.opaque=y. */
export interface OpaqueEntry { type: "opaque"; path: string }

export type EntrySpec =
  | DirEntry
  | FileEntry
  | SymlinkEntry
  | HardlinkEntry
  | DeviceEntry
  | FifoEntry
  | SocketEntry
  | WhiteoutEntry
  | OpaqueEntry;

/** A raw tar entry written verbatim (hostile names, links out of the tree). Ignored by the directory form. */
export interface RawTarEntry {
  /** Name exactly as written to the header (may contain "../", start with "/", end with "/"). */
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "chr" | "blk" | "fifo";
  linkname?: string;
  content?: ContentSpec;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  major?: number;
  minor?: number;
}

export interface LayerSpec {
  name?: string;
  /** Attributes of the root directory. When set, the tar gets a "./" entry and the directory form applies them. */
  root?: Attrs;
  entries: EntrySpec[];
  /** Extra raw entries appended to the tar (hostile cases). */
  tarOnly?: RawTarEntry[];
  /** Default mtime for entries that set none (default {@link DEFAULT_MTIME}). */
  defaultMtime?: number;
}

export const DEFAULT_MTIME = 1_700_000_000;

export const DEFAULT_MODE: Record<Exclude<EntryType, "hardlink" | "whiteout" | "opaque">, number> = {
  dir: 0o755,
  file: 0o644,
  symlink: 0o777,
  chr: 0o644,
  blk: 0o644,
  fifo: 0o644,
  socket: 0o755,
};

// ---------- small constructors ----------

export const dir = (path: string, attrs: Attrs = {}): DirEntry => ({ type: "dir", path, ...attrs });
export const file = (path: string, content: ContentSpec, attrs: Attrs = {}): FileEntry => ({ type: "file", path, content, ...attrs });
export const symlink = (path: string, target: string, attrs: Attrs = {}): SymlinkEntry => ({ type: "symlink", path, target, ...attrs });
export const hardlink = (path: string, target: string): HardlinkEntry => ({ type: "hardlink", path, target });
export const chr = (path: string, major: number, minor: number, attrs: Attrs = {}): DeviceEntry => ({ type: "chr", path, major, minor, ...attrs });
export const blk = (path: string, major: number, minor: number, attrs: Attrs = {}): DeviceEntry => ({ type: "blk", path, major, minor, ...attrs });
export const fifo = (path: string, attrs: Attrs = {}): FifoEntry => ({ type: "fifo", path, ...attrs });
export const socket = (path: string, attrs: Attrs = {}): SocketEntry => ({ type: "socket", path, ...attrs });
export const whiteout = (path: string): WhiteoutEntry => ({ type: "whiteout", path });
export const opaque = (path: string): OpaqueEntry => ({ type: "opaque", path });

export const random = (size: number, seed: number): ContentSpec => ({ kind: "random", size, seed });
export const repeat = (size: number, blockSize: number, seed: number): ContentSpec => ({ kind: "repeat", size, blockSize, seed });
export const zeros = (size: number, sparse = false): ContentSpec => ({ kind: "zeros", size, sparse });
export const text = (t: string): ContentSpec => ({ kind: "text", text: t });
export const bytes = (data: Uint8Array): ContentSpec => ({ kind: "bytes", data });

/** A valid 20-byte VFS_CAP_REVISION_2 security.capability value: LE u32 0x02000001, then permitted/inheritable lo/hi. */
export function capabilityV2(permitted: bigint, inheritable = 0n, effective = true): Uint8Array {
  const out = new Uint8Array(20);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x02000000 | (effective ? 1 : 0), true);
  v.setUint32(4, Number(permitted & 0xffffffffn), true);
  v.setUint32(8, Number(inheritable & 0xffffffffn), true);
  v.setUint32(12, Number((permitted >> 32n) & 0xffffffffn), true);
  v.setUint32(16, Number((inheritable >> 32n) & 0xffffffffn), true);
  return out;
}

// ---------- content ----------

/** Size in bytes of a content spec. */
export function contentSize(c: ContentSpec): number {
  switch (c.kind) {
    case "text":
      return Buffer.byteLength(c.text, "utf8");
    case "bytes":
      return c.data.length;
    default:
      return c.size;
  }
}

/** Streams the content in pieces of at most `piece` bytes (deterministic). */
export function* contentChunks(c: ContentSpec, piece = 1 << 20): Generator<Uint8Array> {
  switch (c.kind) {
    case "text":
      yield new Uint8Array(Buffer.from(c.text, "utf8"));
      return;
    case "bytes":
      yield c.data;
      return;
    case "zeros": {
      let left = c.size;
      const z = new Uint8Array(Math.min(piece, Math.max(left, 1)));
      while (left > 0) {
        const n = Math.min(left, z.length);
        yield n === z.length ? z : z.subarray(0, n);
        left -= n;
      }
      return;
    }
    case "random": {
      // Piece size must be a multiple of 4 so the stream equals one big fill().
      const p = Math.max(4, piece & ~3);
      const rng = new Prng(c.seed);
      let left = c.size;
      while (left > 0) {
        const n = Math.min(left, p);
        yield rng.fill(new Uint8Array(n));
        left -= n;
      }
      return;
    }
    case "repeat": {
      if (c.blockSize <= 0) throw new RangeError(`Cannot repeat a block of size ${c.blockSize}`);
      const block = new Prng(c.seed).fill(new Uint8Array(c.blockSize));
      let left = c.size;
      while (left > 0) {
        const n = Math.min(left, block.length);
        yield n === block.length ? block : block.subarray(0, n);
        left -= n;
      }
      return;
    }
  }
}

/** The whole content in memory. */
export function contentBytes(c: ContentSpec): Uint8Array {
  const out = new Uint8Array(contentSize(c));
  let off = 0;
  for (const part of contentChunks(c)) {
    out.set(part, off);
    off += part.length;
  }
  return out;
}

export function xattrValue(v: Uint8Array | string): Uint8Array {
  return typeof v === "string" ? new Uint8Array(Buffer.from(v, "utf8")) : v;
}

// ---------- validation / normalisation ----------

/** Throws RangeError unless `p` is a clean relative path. */
export function checkPath(p: string): void {
  if (p === "" || p.startsWith("/") || p.endsWith("/") || p.includes("\0")) {
    throw new RangeError(`Cannot use spec path "${p}": must be relative, non-empty, no trailing "/"`);
  }
  for (const part of p.split("/")) {
    if (part === "" || part === "." || part === "..") throw new RangeError(`Cannot use spec path "${p}": bad component "${part}"`);
    if (Buffer.byteLength(part) > 255) throw new RangeError(`Cannot use spec path "${p}": component longer than 255 bytes`);
  }
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

export function baseOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** Parent paths not declared in the layer become explicit dirs with default attributes. */
export function normalizeLayer(layer: LayerSpec): LayerSpec {
  const seen = new Map<string, EntrySpec>();
  const out: EntrySpec[] = [];
  const ensureDir = (p: string): void => {
    if (p === "") return;
    const e = seen.get(p);
    if (e) {
      if (e.type !== "dir") throw new RangeError(`Cannot use "${p}" as a parent directory: it is a ${e.type} in the same layer`);
      return;
    }
    ensureDir(parentOf(p));
    const d: DirEntry = { type: "dir", path: p };
    seen.set(p, d);
    out.push(d);
  };
  for (const e of layer.entries) {
    checkPath(e.path);
    ensureDir(parentOf(e.path));
    if (e.type === "opaque") {
      ensureDir(e.path);
      out.push(e);
      continue;
    }
    const prev = seen.get(e.path);
    if (prev) throw new RangeError(`Cannot declare "${e.path}" twice in layer ${layer.name ?? "(unnamed)"}`);
    if (e.type === "hardlink") {
      const t = seen.get(e.target);
      if (!t || (t.type !== "file" && t.type !== "hardlink")) {
        throw new RangeError(`Cannot hardlink "${e.path}" to "${e.target}": target must be an earlier regular file of the same layer`);
      }
    }
    seen.set(e.path, e);
    out.push(e);
  }
  return { ...layer, entries: out };
}

/** Resolves a hardlink chain to the path of the regular file entry. */
export function hardlinkRoot(layer: LayerSpec, path: string): string {
  const byPath = new Map(layer.entries.map((e) => [e.path, e] as const));
  let cur = byPath.get(path);
  let guard = 0;
  while (cur && cur.type === "hardlink") {
    if (guard++ > 1000) throw new RangeError(`Cannot resolve hardlink "${path}": cycle`);
    cur = byPath.get(cur.target);
  }
  if (!cur) throw new RangeError(`Cannot resolve hardlink "${path}": missing target`);
  return cur.path;
}

// ---------- ready-made textures ----------

const MiB = 1 << 20;

export interface AllTypesOptions {
  /**
   * Byte length of the two longest names (default 255, the Linux/EROFS maximum). mkfs.erofs 1.5
   * rejects 255-byte names ("Could not format the device: [Error 2]"), so oracle tests pass 254.
   */
  longNameBytes?: number;
}

/** Every file type and the awkward sizes around `chunkSize`, names, xattrs and modes. */
export function allTypesTexture(chunkSize: number = MiB, options: AllTypesOptions = {}): LayerSpec {
  const entries: EntrySpec[] = [];
  const t0 = 1_650_000_000;
  const nameBytes = options.longNameBytes ?? 255;
  if (nameBytes < 120 || nameBytes > 255) throw new RangeError(`Cannot use longNameBytes ${nameBytes}: must be 120..255`);
  const long255 = "L".repeat(nameBytes - 4) + ".txt";
  // 2-byte and 4-byte UTF-8 characters: 21 × "🙂" (84) + "abc" (3) + "é"/"e" filling up to nameBytes
  const rest = nameBytes - 87;
  const nonAsciiLong = "é".repeat(Math.floor(rest / 2)) + (rest % 2 ? "e" : "") + "🙂".repeat(21) + "abc";
  entries.push(
    dir("dir", { mtime: t0 + 1, xattrs: { "user.dirattr": "on a dir" } }),
    dir("dir/sub", { mode: 0o750, uid: 1000, gid: 1000, mtime: t0 + 2 }),
    dir("dir/sub/deeper", { mtime: t0 + 3 }),
    file("dir/sub/deeper/leaf.txt", text("leaf\n"), { mtime: t0 + 4 }),
    // sizes around the chunk size
    file("sizes/empty", zeros(0), { mtime: t0 + 10 }),
    file("sizes/one-byte", text("x"), { mtime: t0 + 11 }),
    file("sizes/chunk-minus-1", random(chunkSize - 1, 101), { mtime: t0 + 12 }),
    file("sizes/chunk-exact", random(chunkSize, 102), { mtime: t0 + 13 }),
    file("sizes/chunk-plus-1", random(chunkSize + 1, 103), { mtime: t0 + 14 }),
    file("sizes/large", random(2 * chunkSize + 12345, 104), { mtime: t0 + 15 }),
    file("sizes/block-4095", random(4095, 105), { mtime: t0 + 16 }),
    file("sizes/block-4097", random(4097, 106), { mtime: t0 + 17 }),
    // dedup
    file("dedup/a.bin", random(chunkSize + 777, 200), { mtime: t0 + 20 }),
    file("dedup/b-same-as-a.bin", random(chunkSize + 777, 200), { mtime: t0 + 21 }),
    file("dedup/repeated-chunks.bin", repeat(4 * chunkSize, chunkSize, 201), { mtime: t0 + 22 }),
    file("dedup/zeros-sparse.bin", zeros(2 * chunkSize + 100, true), { mtime: t0 + 23 }),
    file("dedup/zeros-dense.bin", zeros(chunkSize), { mtime: t0 + 24 }),
    // links
    file("links/target.txt", text("hardlinked content\n"), { mode: 0o640, uid: 33, gid: 33, mtime: t0 + 30 }),
    hardlink("links/hard1", "links/target.txt"),
    hardlink("links/hard2", "links/target.txt"),
    symlink("links/rel", "target.txt", { mtime: t0 + 31 }),
    symlink("links/abs", "/etc/passwd", { mtime: t0 + 32 }),
    symlink("links/dangling", "does/not/exist", { mtime: t0 + 33 }),
    symlink("links/long-target", "t/".repeat(1499) + "xx", { mtime: t0 + 34 }), // 3000 bytes
    symlink("links/to-dir", "../dir/sub", { mtime: t0 + 35 }),
    // special files
    chr("dev/null", 1, 3, { mode: 0o666, mtime: t0 + 40 }),
    chr("dev/bigminor", 511, 70000, { mtime: t0 + 41 }),
    blk("dev/sda1", 8, 1, { mode: 0o660, gid: 6, mtime: t0 + 42 }),
    fifo("dev/fifo", { mode: 0o600, mtime: t0 + 43 }),
    socket("dev/socket", { mtime: t0 + 44 }),
    // modes and owners
    file("modes/setuid", text("#!/bin/sh\n"), { mode: 0o4755, mtime: t0 + 50 }),
    file("modes/setgid", text("g\n"), { mode: 0o2755, gid: 50, mtime: t0 + 51 }),
    file("modes/all-special", text("s\n"), { mode: 0o7777, mtime: t0 + 52 }),
    file("modes/no-perms", text("0\n"), { mode: 0o000, mtime: t0 + 53 }),
    dir("modes/sticky", { mode: 0o1777, mtime: t0 + 54 }),
    dir("modes/setgid-dir", { mode: 0o2775, gid: 100, mtime: t0 + 55 }),
    file("modes/big-ids", text("ids\n"), { uid: 3_000_000, gid: 4_000_000, mtime: t0 + 56 }),
    file("modes/nobody", text("n\n"), { uid: 65534, gid: 65534, mtime: t0 + 57 }),
    file("modes/nsec", text("ns\n"), { mtime: t0 + 58, mtimeNsec: 123456789 }),
    file("modes/old-mtime", text("old\n"), { mtime: 1 }),
    // xattrs
    file("xattrs/user", text("u\n"), {
      mtime: t0 + 60,
      xattrs: { "user.comment": "hello xattr", "user.empty": "", "user.binary": new Uint8Array([0, 1, 2, 0xff, 0xfe, 0, 0x80]) },
    }),
    file("xattrs/trusted", text("t\n"), { mtime: t0 + 61, xattrs: { "trusted.overlay.custom": "x", "trusted.big": "v".repeat(1500) } }),
    file("xattrs/capability", text("#!cap\n"), {
      mode: 0o755,
      mtime: t0 + 62,
      xattrs: { "security.capability": capabilityV2((1n << 10n) | (1n << 13n)) }, // NET_BIND_SERVICE | NET_RAW
    }),
    file("xattrs/many", text("m\n"), {
      mtime: t0 + 63,
      xattrs: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`user.k${String(i).padStart(2, "0")}`, `value-${i}-${"z".repeat(i)}`])),
    }),
    // names
    dir("names", { mtime: t0 + 70 }),
    file(`names/${long255}`, text("255\n"), { mtime: t0 + 71 }),
    file(`names/${nonAsciiLong}`, text("utf8 255\n"), { mtime: t0 + 72 }),
    file("names/ünïcødé-文件-🙂", text("unicode\n"), { mtime: t0 + 73 }),
    file("names/with space & 'quotes'", text("q\n"), { mtime: t0 + 74 }),
    file("names/.hidden", text("h\n"), { mtime: t0 + 75 }),
    file("names/-dash", text("d\n"), { mtime: t0 + 76 }),
    // deep path longer than 100 bytes (ustar name field)
    dir("deep"),
    ...Array.from({ length: 6 }, (_, i) => dir("deep/" + Array.from({ length: i + 1 }, (_, j) => `level-${j}-${"p".repeat(20)}`).join("/"))),
    file("deep/" + Array.from({ length: 6 }, (_, j) => `level-${j}-${"p".repeat(20)}`).join("/") + "/file.txt", text("deep\n")),
    // a directory with 3000 entries (several dirent blocks)
    dir("bigdir", { mtime: t0 + 80 }),
  );
  for (let i = 0; i < 3000; i++) {
    entries.push(file(`bigdir/entry-${String(i).padStart(5, "0")}-${"n".repeat(i % 40)}`, zeros(0), { mtime: t0 + 81 }));
  }
  return { name: "all-types", root: { mode: 0o755, mtime: t0 }, entries, defaultMtime: t0 + 99 };
}

/** Three layers and their merge, for whiteout/opaque/replace/hardlink tests. See test/support/overlay.ts for the merge. */
export function layeredTextures(): LayerSpec[] {
  const t1 = 1_600_000_000;
  const t2 = 1_610_000_000;
  const t3 = 1_620_000_000;
  const l1: LayerSpec = {
    name: "layer1",
    root: { mode: 0o755, mtime: t1 },
    defaultMtime: t1,
    entries: [
      dir("etc", { mtime: t1 + 1 }),
      file("etc/keep.conf", text("keep v1\n")),
      file("etc/change.conf", text("change v1\n")),
      file("etc/remove.conf", text("remove me\n")),
      dir("opq", { mtime: t1 + 2, xattrs: { "user.layer": "1" } }),
      file("opq/old1", text("old 1\n")),
      dir("opq/oldsub"),
      file("opq/oldsub/old2", text("old 2\n")),
      dir("gone", { mode: 0o700 }),
      file("gone/a", random(9000, 11)),
      dir("gone/nested"),
      file("gone/nested/b", text("b\n")),
      dir("swap"),
      dir("swap/dir2file"),
      file("swap/dir2file/child", text("child of dir2file\n")),
      file("swap/file2dir", text("was a file\n")),
      symlink("swap/link2file", "elsewhere"),
      dir("hl"),
      file("hl/a", text("inode A v1\n"), { mode: 0o600, uid: 7, gid: 7 }),
      hardlink("hl/b", "hl/a"),
      hardlink("hl/c", "hl/a"),
      file("hl/x", text("inode X\n")),
      hardlink("hl/y", "hl/x"),
      file("big/shared.bin", random(300_000, 12)),
      fifo("dev/fifo1"),
      file("readd/thing", text("first life\n")),
    ],
  };
  const l2: LayerSpec = {
    name: "layer2",
    root: { mode: 0o755, mtime: t2 },
    defaultMtime: t2,
    entries: [
      dir("etc", { mtime: t2 + 1 }),
      file("etc/change.conf", text("change v2\n"), { mode: 0o600 }),
      whiteout("etc/remove.conf"),
      whiteout("etc/never-existed"),
      file("etc/new.conf", text("new in 2\n")),
      dir("opq", { mtime: t2 + 2, xattrs: { "user.layer": "2" } }),
      opaque("opq"),
      file("opq/new1", text("new 1\n")),
      whiteout("gone"),
      dir("swap"),
      file("swap/dir2file", text("now a file\n")),
      dir("swap/file2dir", { mode: 0o711 }),
      file("swap/file2dir/inner", text("inner\n")),
      dir("swap/link2file"),
      dir("hl"),
      file("hl/a", text("inode A v2 (replaced)\n")),
      file("hl/n", text("new inode N\n")),
      hardlink("hl/n2", "hl/n"),
      whiteout("readd/thing"),
      file("big/other.bin", random(300_000, 12)), // same content as big/shared.bin (cross-layer dedup)
    ],
  };
  const l3: LayerSpec = {
    name: "layer3",
    root: { mode: 0o755, mtime: t3 },
    defaultMtime: t3,
    entries: [
      dir("hl"),
      whiteout("hl/b"),
      whiteout("hl/y"),
      dir("swap"),
      whiteout("swap/file2dir"),
      symlink("swap/newlink", "dir2file"),
      dir("opq", { mtime: t3 + 2, xattrs: { "user.layer": "3" } }),
      file("opq/new3", text("new 3\n")),
      dir("readd"),
      file("readd/thing", text("second life\n"), { mode: 0o755 }),
      dir("etc"),
      whiteout("etc/new.conf"),
      dir("etc/dir-in-3", { mode: 0o700 }),
      chr("dev/null", 1, 3, { mode: 0o666 }),
    ],
  };
  return [l1, l2, l3];
}

/**
 * A layer whose tar also carries hostile raw entries (path traversal, absolute paths, links that
 * escape). `hostileNames` lists the raw names so tests can assert each is rejected or neutralised.
 */
export function hostileTexture(): { layer: LayerSpec; hostileNames: string[] } {
  const tarOnly: RawTarEntry[] = [
    { name: "../escape.txt", type: "file", content: text("escaped!\n") },
    { name: "/abs/evil.txt", type: "file", content: text("absolute!\n") },
    { name: "safe/../../up.txt", type: "file", content: text("up!\n") },
    { name: "./safe/../../../dotdot.txt", type: "file", content: text("dotdot!\n") },
    { name: "escape-link", type: "symlink", linkname: "/tmp" },
    { name: "escape-link/through-symlink.txt", type: "file", content: text("through a symlink\n") },
    { name: "hard-out", type: "hardlink", linkname: "/etc/passwd" },
    { name: "hard-up", type: "hardlink", linkname: "../outside" },
    { name: "/", type: "dir" },
    { name: "..", type: "dir" },
  ];
  return {
    layer: { name: "hostile", entries: [dir("safe"), file("safe/ok.txt", text("ok\n"))], tarOnly },
    hostileNames: tarOnly.map((e) => e.name),
  };
}
