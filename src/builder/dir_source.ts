/**
 * A build tree from a local directory (`nydus-image create --type dir-rafs`, spec §3.14(a),
 * §9.2): lstat only (symlinks are not followed), symlink targets as raw bytes, xattrs via
 * the native addon (llistxattr/lgetxattr), regular files with the same (st_dev, st_ino)
 * share one TreeInode (hardlinks), device numbers split like glibc's major()/minor().
 * Whiteout files are dropped (a layer-0 directory build), children sorted by name bytes.
 *
 * Limitation: the native xattr calls take UTF-8 string paths shorter than 4096 bytes, so a
 * file whose host path is not valid UTF-8 (or is longer) makes the walk fail with
 * {@link InvalidInputError} unless `xattrs: false` is given.
 */
import { Buffer } from "node:buffer";
import fsSync, { type BigIntStats } from "node:fs";
import path from "node:path";
import { InvalidInputError } from "../internal/errors.ts";
import { native } from "../internal/native.ts";
import { KIND_MODE, kindFromMode, type TreeEntry, type TreeInode } from "../rafs/model.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { whiteoutKind } from "./overlay.ts";
import { ROOT_NAME, walk } from "./tree.ts";

/** Options of {@link treeFromDirectory}. */
export interface DirSourceOptions {
  /** Which whiteout convention to recognise when dropping whiteouts. @default "oci" */
  whiteoutSpec?: WhiteoutSpec;
  /**
   * Drop whiteout entries (and their subtrees), as a layer-0 directory build does; an
   * overlayfs opaque directory is kept with its xattr. Set false for an upper layer that
   * will be merged (spec §9.2). @default true
   */
  dropWhiteouts?: boolean;
  /** Read extended attributes. @default true */
  xattrs?: boolean;
  /** Abort between directory reads. */
  signal?: AbortSignal;
}

/** A regular file whose data the builder must read. */
export interface DirSourceFile {
  /** The inode to attach chunks to (shared by all its hardlinks). */
  readonly inode: TreeInode;
  /** Host path to read the data from (as bytes: names need not be UTF-8). */
  readonly hostPath: Buffer;
  /** Path inside the image ("/a/b"), decoded as UTF-8 (lossy). */
  readonly path: string;
}

/** Result of {@link treeFromDirectory}. */
export interface DirSource {
  /** Root entry, name "/", with the source directory's own attributes. */
  readonly root: TreeEntry;
  /** Regular files in traversal order (spec §3.14(b)), each inode once (first link only). */
  readonly files: readonly DirSourceFile[];
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Device number → [major, minor], as glibc's `gnu_dev_major`/`gnu_dev_minor`.
 *
 * @example
 * splitDev(0x0801n); // [8, 1]
 */
export function splitDev(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(BigInt.asUintN(32, major)), Number(BigInt.asUintN(32, minor))];
}

function hostPathString(p: Buffer): string {
  let s: string;
  try {
    s = utf8Strict.decode(p);
  } catch (cause) {
    throw new InvalidInputError(
      `Cannot read xattrs of "${p.toString("utf8")}": path is not valid UTF-8 (native xattr calls take UTF-8 paths)`,
      { cause },
    );
  }
  if (p.length >= 4095) {
    throw new InvalidInputError(`Cannot read xattrs of "${s}": path is ${p.length} bytes (native limit 4094)`);
  }
  return s;
}

function readXattrs(p: Buffer): Map<string, Uint8Array> {
  const s = hostPathString(p);
  const list = native.listXattrs(s);
  const names = Buffer.from(list.buffer, list.byteOffset, list.byteLength)
    .toString("utf8")
    .split("\0")
    .filter((n) => n.length > 0)
    .sort();
  const out = new Map<string, Uint8Array>();
  for (const name of names) out.set(name, new Uint8Array(native.getXattr(s, name)));
  return out;
}

function attrsOf(st: BigIntStats, xattrs: Map<string, Uint8Array>): TreeInode {
  const mode = Number(st.mode);
  const kind = kindFromMode(mode);
  if (!kind) throw new InvalidInputError(`Cannot add file with mode 0o${mode.toString(8)}: unknown file type`);
  const ns = st.mtimeNs;
  const sec = ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n);
  const [rdevMajor, rdevMinor] = kind === "chr" || kind === "blk" ? splitDev(st.rdev) : [0, 0];
  return {
    kind,
    mode: KIND_MODE[kind] | (mode & 0o7777),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: Number(sec),
    mtimeNsec: Number(ns - sec * 1_000_000_000n),
    rdevMajor,
    rdevMinor,
    xattrs,
    size: kind === "reg" ? Number(st.size) : 0,
  };
}

/**
 * Walks `dir` into a build tree.
 *
 * @param dir the source directory (its own attributes become the root's)
 * @param options see {@link DirSourceOptions}
 * @returns the tree and the regular files to read, in traversal order
 * @throws {InvalidInputError} when `dir` is not a directory, for unknown file types, or for xattrs of non-UTF-8 paths
 * @example
 * const { root, files } = await treeFromDirectory("/tmp/rootfs");
 * for (const f of files) await chunkFile(f.inode, fs.createReadStream(f.hostPath));
 */
export async function treeFromDirectory(dir: string, options: DirSourceOptions = {}): Promise<DirSource> {
  const { whiteoutSpec = "oci", dropWhiteouts = true, xattrs: withXattrs = true, signal } = options;
  const rootPath = Buffer.from(path.resolve(dir));
  const xattrsOf = (p: Buffer) => (withXattrs ? readXattrs(p) : new Map<string, Uint8Array>());
  // Synchronous lstat/readdir: 3 µs instead of ~19 µs per promise-based call, which is most
  // of the walk on trees of many small files (45,000 files: 1.7 s → under 1 s).
  const rootStat = fsSync.lstatSync(rootPath, { bigint: true });
  if (!rootStat.isDirectory()) throw new InvalidInputError(`Cannot build from "${dir}": not a directory`);
  const root: TreeEntry = { name: ROOT_NAME, inode: { ...attrsOf(rootStat, xattrsOf(rootPath)), children: [] } };

  const links = new Map<string, TreeInode>(); // "dev:ino" → first inode
  const hostPaths = new Map<TreeInode, Buffer>();
  const pending: [TreeInode, Buffer][] = [[root.inode, rootPath]];
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const [dirInode, dirPath] = pending.pop()!;
    const names = fsSync.readdirSync(dirPath, { encoding: "buffer" }).sort(Buffer.compare);
    for (const name of names) {
      const p = Buffer.concat([dirPath, Buffer.from("/"), name]);
      const st = fsSync.lstatSync(p, { bigint: true });
      let inode: TreeInode;
      // Only files with several links can be hardlinks: skip the key for the common case.
      const key = st.isFile() && st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
      const first = key !== undefined ? links.get(key) : undefined;
      if (first) {
        inode = first;
      } else {
        inode = attrsOf(st, xattrsOf(p));
        if (inode.kind === "symlink") inode.symlinkTarget = new Uint8Array(fsSync.readlinkSync(p, { encoding: "buffer" }));
        if (inode.kind === "dir") inode.children = [];
        if (inode.kind === "reg") {
          if (key !== undefined) links.set(key, inode);
          hostPaths.set(inode, p);
        }
      }
      const entry: TreeEntry = { name: new Uint8Array(name), inode };
      if (dropWhiteouts) {
        const wk = whiteoutKind(entry, whiteoutSpec);
        if (wk !== undefined && wk !== "overlayfs-opaque") continue;
      }
      dirInode.children!.push(entry);
      if (inode.kind === "dir") pending.push([inode, p]);
    }
  }

  const files: DirSourceFile[] = [];
  const listed = new Set<TreeInode>();
  for (const item of walk(root)) {
    const inode = item.entry.inode;
    if (inode.kind !== "reg" || listed.has(inode)) continue;
    listed.add(inode);
    files.push({ inode, hostPath: hostPaths.get(inode)!, path: item.path });
  }
  return { root, files };
}
