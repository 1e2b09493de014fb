/**
 * The write-side build tree ({@link TreeEntry}/{@link TreeInode} of `rafs/model.ts`) from
 * the entries of one tar layer, and tree utilities (sort, count, walk, clone).
 *
 * Tar semantics: a later entry with the same path replaces the earlier one (a directory
 * over a directory keeps the children and takes the new attributes; anything else replaces
 * the whole earlier subtree); missing parent directories are created (0755, 0:0, mtime 0);
 * a hardlink entry shares the TreeInode of its target, which must be a regular file that
 * appeared earlier in the same layer. Whiteout files are kept as ordinary entries
 * (spec §9.2: tar builds keep them).
 */
import { Buffer } from "node:buffer";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { KIND_MODE, type FileKind, type TreeEntry, type TreeInode } from "../rafs/model.ts";
import type { TarEntry } from "../tar/reader.ts";
import { splitTarPath } from "./path.ts";

export { isOpaque, isWhiteout, whiteoutTarget } from "../tar/whiteout.ts";

/** The root entry's name, "/". */
export const ROOT_NAME: Uint8Array = Uint8Array.of(0x2f);

const utf8 = new TextDecoder();

/**
 * A fresh directory inode (mode 0755, uid/gid 0, mtime 0, no xattrs, no children) — the
 * attributes of implicit parent directories and of a root without a `./` entry.
 *
 * @example
 * newDirInode().mode === 0o40755; // true
 */
export function newDirInode(): TreeInode {
  return {
    kind: "dir",
    mode: KIND_MODE.dir | 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
    mtimeNsec: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    xattrs: new Map(),
    size: 0,
    children: [],
  };
}

/** Called for every regular-file entry, in tar order, to consume its data. */
export type FileDataCallback = (
  inode: TreeInode,
  body: AsyncIterable<Uint8Array>,
  size: number,
  path: string,
) => Promise<void> | void;

/** Options of {@link buildTreeFromTar}. */
export interface TarTreeOptions {
  /**
   * Consumes each regular file's data (e.g. chunks it into a blob and sets `inode.chunks`).
   * Awaited before the next entry is read. Data left unread is drained by the tar reader.
   * @default undefined (data is skipped)
   */
  onFileData?: FileDataCallback;
  /** Abort between entries. */
  signal?: AbortSignal;
}

/** Name bytes → map key (latin1 maps each byte to one code unit, so it is exact). */
function keyOf(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("latin1");
}

/** Bytes per {@link ByteSlab} block; longer values keep their own buffer. */
const SLAB_BLOCK = 64 * 1024;
const SLAB_MAX_ITEM = 1024;

/**
 * Copies the small byte strings a tree keeps (entry names, symlink targets) back to back into
 * 64 KiB blocks. Each is then a view into a shared ArrayBuffer instead of a slice with its own
 * ArrayBuffer and backing store: about 130 bytes less per entry (~6 MiB on a 45,000-file tar).
 */
class ByteSlab {
  private block = new Uint8Array(0);
  private used = 0;
  keep(bytes: Uint8Array): Uint8Array {
    if (bytes.length > SLAB_MAX_ITEM) return bytes.slice();
    if (this.used + bytes.length > this.block.length) {
      this.block = new Uint8Array(SLAB_BLOCK);
      this.used = 0;
    }
    const out = this.block.subarray(this.used, this.used + bytes.length);
    out.set(bytes);
    this.used += bytes.length;
    return out;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Builds one layer's tree from its tar entries.
 *
 * @param entries entries as produced by `readTar` (bodies are handed to `onFileData`)
 * @param options see {@link TarTreeOptions}
 * @returns the root entry (name "/"), children sorted by name bytes
 * @throws {UnsafePathError} for names or hardlink targets that escape the root, contain NUL or are empty
 * @throws {NotFoundError} for a hardlink whose target does not exist (yet) in this layer
 * @throws {InvalidInputError} for a hardlink to a non-regular file, a non-directory at the root,
 *   or an entry below an existing non-directory
 * @example
 * import fs from "node:fs";
 * import { readTar } from "../tar/reader.ts";
 * const root = await buildTreeFromTar(readTar(fs.createReadStream("layer.tar")), {
 *   onFileData: async (inode, body) => { for await (const chunk of body) void chunk; },
 * });
 */
export async function buildTreeFromTar(
  entries: AsyncIterable<TarEntry>,
  options: TarTreeOptions = {},
): Promise<TreeEntry> {
  const { onFileData, signal } = options;
  const root: TreeEntry = { name: ROOT_NAME, inode: newDirInode() };
  // Per-directory name index, local to this build.
  const index = new WeakMap<TreeInode, Map<string, TreeEntry>>();
  const indexOf = (dir: TreeInode): Map<string, TreeEntry> => {
    let m = index.get(dir);
    if (!m) {
      m = new Map((dir.children ?? []).map((c) => [keyOf(c.name), c]));
      index.set(dir, m);
    }
    return m;
  };

  const slab = new ByteSlab();
  /**
   * The parent directory of the previous entry and its path segments. Tar entries come grouped
   * by directory, so most entries reuse it: one byte comparison per segment instead of a
   * latin1 key and a map lookup per segment (~100 ms on a 45,000-file tar). Processing an
   * entry only changes a child of its parent, so the cached directory stays attached; it is
   * still dropped whenever an entry is replaced, as a cheap safeguard.
   */
  let lastParent: { segments: Uint8Array[]; dir: TreeInode } | undefined;

  /** The directory holding `segments`' last element, creating missing parents. */
  const parentDir = (segments: Uint8Array[], shown: string): TreeInode => {
    const depth = segments.length - 1;
    if (lastParent !== undefined && lastParent.segments.length === depth) {
      let same = true;
      for (let i = 0; i < depth && same; i++) same = sameBytes(lastParent.segments[i]!, segments[i]!);
      if (same) return lastParent.dir;
    }
    let dir = root.inode;
    for (let i = 0; i < depth; i++) {
      const seg = segments[i]!;
      const m = indexOf(dir);
      const k = keyOf(seg);
      let child = m.get(k);
      if (!child) {
        child = { name: slab.keep(seg), inode: newDirInode() };
        m.set(k, child);
        dir.children!.push(child);
      } else if (child.inode.kind !== "dir") {
        throw new InvalidInputError(
          `Cannot add tar entry "${shown}": parent "${utf8.decode(seg)}" is a ${child.inode.kind}, not a directory`,
        );
      }
      dir = child.inode;
    }
    lastParent = { segments: segments.slice(0, depth), dir };
    return dir;
  };

  const lookup = (segments: Uint8Array[]): TreeEntry | undefined => {
    let cur: TreeEntry = root;
    for (const seg of segments) {
      if (cur.inode.kind !== "dir") return undefined;
      const next = indexOf(cur.inode).get(keyOf(seg));
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  };

  for await (const e of entries) {
    signal?.throwIfAborted();
    const segments = splitTarPath(e.pathBytes);

    let inode: TreeInode;
    if (e.kind === "hardlink") {
      const targetSegs = splitTarPath(e.linknameBytes);
      const target = lookup(targetSegs);
      if (!target) throw new NotFoundError(`hardlink target "${e.linkname}" of tar entry "${e.path}"`, "no earlier entry in this layer");
      if (target.inode.kind !== "reg") {
        throw new InvalidInputError(
          `Cannot add tar hardlink "${e.path}": target "${e.linkname}" is a ${target.inode.kind}, not a regular file`,
        );
      }
      inode = target.inode;
    } else {
      const kind: FileKind = e.kind;
      inode = {
        kind,
        mode: KIND_MODE[kind] | (e.mode & 0o7777),
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        mtimeNsec: e.mtimeNsec,
        rdevMajor: kind === "chr" || kind === "blk" ? e.devmajor : 0,
        rdevMinor: kind === "chr" || kind === "blk" ? e.devminor : 0,
        xattrs: new Map(e.xattrs),
        size: kind === "reg" ? e.size : 0,
      };
      if (kind === "symlink") inode.symlinkTarget = slab.keep(e.linknameBytes);
      if (kind === "dir") inode.children = [];
    }

    if (segments.length === 0) {
      if (inode.kind !== "dir") {
        throw new InvalidInputError(`Cannot add tar entry "${e.path}": the root must be a directory, not a ${e.kind}`);
      }
      Object.assign(root.inode, { ...inode, children: root.inode.children });
      continue;
    }

    const dir = parentDir(segments, e.path);
    const m = indexOf(dir);
    const name = segments[segments.length - 1];
    const k = keyOf(name);
    const existing = m.get(k);
    if (existing && existing.inode === inode) {
      // hardlink to itself (or a repeated link): nothing changes
    } else if (existing && existing.inode.kind === "dir" && inode.kind === "dir") {
      Object.assign(existing.inode, { ...inode, children: existing.inode.children });
    } else if (existing) {
      existing.inode = inode;
      lastParent = undefined;
    } else {
      const entry: TreeEntry = { name: slab.keep(name), inode };
      m.set(k, entry);
      dir.children!.push(entry);
    }

    if (e.kind === "reg" && onFileData) await onFileData(inode, e.body, e.size, e.path);
  }
  sortTree(root);
  return root;
}

/**
 * Sorts every directory's children by name bytes (`Buffer.compare`), in place.
 *
 * @example
 * sortTree(root);
 */
export function sortTree(root: TreeEntry): void {
  const stack: TreeInode[] = [root.inode];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    if (!dir.children) continue;
    dir.children.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const c of dir.children) if (c.inode.kind === "dir") stack.push(c.inode);
  }
}

/**
 * Number of entries in the tree, the root included; every hardlink counts (as each
 * consumes an inode index, spec §3.14(b)).
 *
 * @example
 * countNodes({ name: ROOT_NAME, inode: newDirInode() }); // 1
 */
export function countNodes(root: TreeEntry): number {
  let n = 0;
  for (const _ of walk(root)) n++;
  return n;
}

/** One step of {@link walk}. */
export interface WalkItem {
  readonly entry: TreeEntry;
  /** The parent directory's entry; undefined for the root. */
  readonly parent: TreeEntry | undefined;
  /** Absolute path bytes ("/" for the root, "/a/b" below). */
  readonly pathBytes: Uint8Array;
  /** {@link pathBytes} decoded as UTF-8 (lossy). */
  readonly path: string;
}

function joinPath(dir: Uint8Array, name: Uint8Array): Uint8Array {
  if (dir.length === 1) return Buffer.concat([ROOT_NAME, name]);
  return Buffer.concat([dir, ROOT_NAME, name]);
}

/**
 * Visits the tree in the builder's traversal order (spec §3.14(b)): the root, then all
 * children of a directory consecutively, then the subtrees of its child directories in
 * order, depth first. Children are visited in their current order: call {@link sortTree}
 * first to get the on-disk order.
 *
 * @example
 * for (const { path, entry } of walk(root)) console.log(path, entry.inode.kind);
 */
export function* walk(root: TreeEntry): Generator<WalkItem, void, undefined> {
  yield { entry: root, parent: undefined, pathBytes: ROOT_NAME, path: "/" };
  const stack: { entry: TreeEntry; pathBytes: Uint8Array }[] = [{ entry: root, pathBytes: ROOT_NAME }];
  while (stack.length > 0) {
    const { entry: dir, pathBytes: dirPath } = stack.pop()!;
    const children = dir.inode.children ?? [];
    const subdirs: { entry: TreeEntry; pathBytes: Uint8Array }[] = [];
    for (const c of children) {
      const p = joinPath(dirPath, c.name);
      yield { entry: c, parent: dir, pathBytes: p, path: utf8.decode(p) };
      if (c.inode.kind === "dir") subdirs.push({ entry: c, pathBytes: p });
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]);
  }
}

/**
 * Deep copy of a tree. Inodes shared by several entries (hardlinks) stay shared in the
 * copy; xattr maps, children arrays and chunk lists are copied (chunk infos are immutable
 * and shared).
 *
 * @example
 * const copy = cloneTree(root);
 */
export function cloneTree(root: TreeEntry): TreeEntry {
  const seen = new Map<TreeInode, TreeInode>();
  return cloneEntry(root, seen);
}

/** Clones `entry` using (and filling) `seen` so shared inodes map to one copy. */
export function cloneEntry(entry: TreeEntry, seen: Map<TreeInode, TreeInode>): TreeEntry {
  const copyOf = (inode: TreeInode): TreeInode => {
    const known = seen.get(inode);
    if (known) return known;
    const copy: TreeInode = { ...inode, xattrs: new Map(inode.xattrs) };
    if (inode.chunks) copy.chunks = inode.chunks.slice();
    if (inode.symlinkTarget) copy.symlinkTarget = inode.symlinkTarget.slice();
    if (inode.children) {
      // Filled below; a directory reached twice (invalid tree) is copied once.
      copy.children = [];
      stack.push([inode, copy]);
    }
    seen.set(inode, copy);
    return copy;
  };
  const stack: [TreeInode, TreeInode][] = [];
  const out: TreeEntry = { name: entry.name, inode: copyOf(entry.inode) };
  while (stack.length > 0) {
    const [src, dst] = stack.pop()!;
    dst.children = src.children!.map((c) => ({ name: c.name, inode: copyOf(c.inode) }));
  }
  return out;
}
