/**
 * RAFS v6 metadata layout (spec §3.14 (a)-(c)): name-sorted children, builder indexes in
 * traversal order, and the byte offset of every inode, inline tail, chunk-index array and
 * dirent block, using upstream's cursor + free-slot allocator so that offsets (and so nids)
 * match `nydus-image create` exactly.
 *
 * All offsets here are *pre-shift*: relative to the start of the meta area, so the root
 * inode sits at 4096 and `nid = off / 32`. The writer adds `meta_addr` when dumping.
 */
import { alignDown, alignUp, ceilDiv, compareBytes } from "../internal/bytes.ts";
import {
  DataLayout,
  EROFS_BLOCK_SIZE,
  EROFS_CHUNK_ADDR_SIZE,
  EROFS_DIRENT_SIZE,
  EROFS_INODE_EXTENDED_SIZE,
  EROFS_INODE_SLOT,
  EROFS_NAME_LEN,
  xattrAreaSize,
  xattrIcount,
  type DataLayoutId,
} from "../erofs/format.ts";
import { KIND_MODE, S_IFMT, type FileKind, type TreeEntry, type TreeInode } from "./model.ts";

/** Number of free-slot queues: one per count of free 32-byte slots at the end of a block. */
export const FREE_SLOT_QUEUES = EROFS_BLOCK_SIZE / EROFS_INODE_SLOT;
/** Pre-shift offset of the root inode (block 0 of the meta area stays empty). */
export const META_ROOT_OFFSET = EROFS_BLOCK_SIZE;

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/**
 * Upstream's pool of partially used metadata blocks (`BootstrapContext::v6_available_blocks`):
 * 128 FIFO queues; queue `k` holds block starts whose last `k` 32-byte slots are free.
 */
export class FreeSlotPool {
  private readonly queues: number[][] = Array.from({ length: FREE_SLOT_QUEUES }, () => []);
  private readonly heads: number[] = new Array<number>(FREE_SLOT_QUEUES).fill(0);

  /** Remembers the free tail of the block containing `offset` (nothing when block-aligned). */
  append(offset: number): void {
    const rem = offset % EROFS_BLOCK_SIZE;
    if (rem === 0) return;
    const k = Math.floor((EROFS_BLOCK_SIZE - rem) / EROFS_INODE_SLOT);
    this.queues[k]!.push(alignDown(offset, EROFS_BLOCK_SIZE));
  }

  /**
   * Takes `size` bytes from the smallest sufficient free tail (FIFO within a size class).
   * @returns the offset, or 0 when nothing fits (or `size >= 4096`)
   */
  allocate(size: number): number {
    if (size >= EROFS_BLOCK_SIZE) return 0;
    const mn = ceilDiv(size, EROFS_INODE_SLOT);
    for (let k = mn; k < FREE_SLOT_QUEUES; k++) {
      const q = this.queues[k]!;
      if (this.heads[k]! < q.length) {
        const blk = q[this.heads[k]!]!;
        this.heads[k]!++;
        if (this.heads[k] === q.length) {
          q.length = 0;
          this.heads[k] = 0;
        }
        const off = blk + EROFS_BLOCK_SIZE - k * EROFS_INODE_SLOT;
        this.append(off + mn * EROFS_INODE_SLOT);
        return off;
      }
    }
    return 0;
  }

  /** Number of queued blocks with exactly `k` free slots (for tests). */
  queued(k: number): number {
    return this.queues[k]!.length - this.heads[k]!;
  }
}

/** Where a directory or symlink went. */
export interface TailPlacement {
  /** Inode offset. */
  readonly off: number;
  /** Offset of the first full data block (i_u = block of this after the shift). */
  readonly direntsOff: number;
  readonly layout: DataLayoutId;
}

/**
 * The §3.14(c) metadata cursor plus its {@link FreeSlotPool}. Each `place*` method performs one
 * upstream placement step including the trailing `align(32)`.
 */
export class MetaAllocator {
  readonly pool = new FreeSlotPool();
  constructor(public off: number = META_ROOT_OFFSET) {}

  align(a: number): void {
    this.off = alignUp(this.off, a);
  }

  /** `place_with_tail` (directories and symlinks) without the trailing align. */
  placeWithTail(isz: number, dataSize: number): TailPlacement {
    const tail = dataSize % EROFS_BLOCK_SIZE;
    if (tail !== 0 && isz + tail <= EROFS_BLOCK_SIZE) {
      let off = this.pool.allocate(isz + tail);
      if (off === 0) {
        if (EROFS_BLOCK_SIZE - (this.off % EROFS_BLOCK_SIZE) < isz + tail) {
          this.pool.append(this.off);
          this.align(EROFS_BLOCK_SIZE);
        }
        off = this.off;
        this.off += isz + tail;
      }
      if (dataSize !== tail) {
        this.pool.append(this.off);
        this.align(EROFS_BLOCK_SIZE);
      }
      const direntsOff = this.off;
      this.off += alignDown(dataSize, EROFS_BLOCK_SIZE);
      return { off, direntsOff, layout: DataLayout.FlatInline };
    }
    let off = this.pool.allocate(isz);
    if (off === 0) {
      off = this.off;
      this.off += isz;
    }
    this.pool.append(this.off);
    this.align(EROFS_BLOCK_SIZE);
    const direntsOff = this.off;
    this.off += dataSize;
    this.align(EROFS_BLOCK_SIZE);
    return { off, direntsOff, layout: DataLayout.FlatPlain };
  }

  /** A directory or symlink: `place_with_tail` then `align(32)`. */
  placeTailed(isz: number, dataSize: number): TailPlacement {
    const p = this.placeWithTail(isz, dataSize);
    this.align(EROFS_INODE_SLOT);
    return p;
  }

  /** A regular file: inode + xattrs, 8-aligned, then 8 bytes per chunk; pool first. */
  placeFile(isz: number, chunkCount: number): number {
    const total = alignUp(isz, EROFS_CHUNK_ADDR_SIZE) + EROFS_CHUNK_ADDR_SIZE * chunkCount;
    let off = this.pool.allocate(total);
    if (off === 0) {
      off = this.off;
      this.off += total;
    }
    this.align(EROFS_INODE_SLOT);
    return off;
  }

  /** A device, fifo or socket: always at the cursor. */
  placeSpecial(isz: number): number {
    const off = this.off;
    this.off += isz;
    this.align(EROFS_INODE_SLOT);
    return off;
  }
}

/** One tree entry (or the root) with its index and placement. */
export interface PlannedNode {
  /** Entry name; "/" for the root. */
  readonly name: Uint8Array;
  readonly inode: TreeInode;
  /** Builder index (1 = root), in traversal order. */
  readonly index: number;
  /** Parent directory node (the root's parent is the root). */
  readonly parent: PlannedNode;
  /** The node whose inode is written: itself, or the first link of a hardlinked regular file. */
  readonly primary: PlannedNode;
  /** Directory children, sorted by name bytes (undefined for non-directories). */
  children: PlannedNode[] | undefined;
  /**
   * Directory: how many children sort before "." and before ".." (their positions in the
   * name-sorted dirents); see {@link direntName}. 0 otherwise.
   */
  dotAt: number;
  dotdotAt: number;
  /** Directory: number of child directories (i_nlink = 2 + this). */
  subdirs: number;
  /** 64 + inline xattr area size. */
  readonly isz: number;
  readonly xattrSize: number;
  /** Pre-shift inode offset (nid = off / 32). */
  off: number;
  /** Pre-shift offset of the first full data block (dirs and symlinks). */
  direntsOff: number;
  layout: DataLayoutId;
  /** Directory: dirent area size; symlink: target length; else 0. */
  dataSize: number;
}

/** The planned meta area. */
export interface V6Layout {
  readonly root: PlannedNode;
  /** Every node (hardlink entries included) in traversal order = index order = dump order. */
  readonly nodes: readonly PlannedNode[];
  /** s_inos: the last assigned index. */
  readonly inodeCount: number;
  /** Number of tree entries referencing each regular-file inode (its i_nlink). */
  readonly linkCounts: ReadonlyMap<TreeInode, number>;
  /** Pre-shift end of the last byte the dump writes. */
  readonly end: number;
  /** True when any inode has xattrs. */
  readonly hasXattr: boolean;
}

/** Names of a directory's dirents (".", ".." and children) sorted by name bytes. */
export function sortedDirentNames(children: readonly { name: Uint8Array }[]): { name: Uint8Array }[] {
  return [{ name: DOT }, { name: DOTDOT }, ...children].sort((a, b) => compareBytes(a.name, b.name));
}

/**
 * Byte order of two names, as `Buffer.compare` but in JS: for names of a few bytes this
 * avoids a native call per comparison (the sortedness checks compare every sibling pair).
 */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Number of entries of the name-sorted `sorted` whose name sorts before `name`. */
function countBefore(sorted: readonly { name: Uint8Array }[], name: Uint8Array): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareNames(sorted[mid]!.name, name) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The `i`-th dirent of a planned directory in name order (0 ≤ i < children + 2): "." and ".."
 * merged into the sorted children without building a merged array.
 * @returns the child node, or "." / ".." as the directory / its parent with the dot name
 */
export function direntAt(dir: PlannedNode, i: number): { name: Uint8Array; node: PlannedNode } {
  if (i === dir.dotAt) return { name: DOT, node: dir };
  if (i === dir.dotdotAt + 1) return { name: DOTDOT, node: dir.parent };
  const child = dir.children![i - (i > dir.dotAt ? 1 : 0) - (i > dir.dotdotAt + 1 ? 1 : 0)]!;
  return { name: child.name, node: child };
}

/** Dirent area size (§3.9.3) of sorted `children` plus "." and ".." at their sorted positions. */
function direntSize(children: readonly { name: Uint8Array }[], dotAt: number, dotdotAt: number): number {
  let d = 0;
  for (let i = 0; i <= children.length; i++) {
    // "." then ".." then the i-th child, each only when it is there at this position.
    for (let k = 0; k < 3; k++) {
      let nameLen: number;
      if (k === 0) {
        if (i !== dotAt) continue;
        nameLen = 1;
      } else if (k === 1) {
        if (i !== dotdotAt) continue;
        nameLen = 2;
      } else {
        if (i === children.length) continue;
        nameLen = children[i]!.name.length;
      }
      const len = EROFS_DIRENT_SIZE + nameLen;
      if ((d % EROFS_BLOCK_SIZE) + len > EROFS_BLOCK_SIZE) d = alignUp(d, EROFS_BLOCK_SIZE);
      d += len;
    }
  }
  return d;
}

function showName(name: Uint8Array): string {
  return JSON.stringify(Buffer.from(name).toString("utf8"));
}

/** `dir/name` for messages ("" is the parent of the root). */
function joinShown(dirPath: string, name: Uint8Array): string {
  return `${dirPath === "/" ? "" : dirPath}/${Buffer.from(name).toString("utf8")}`;
}

function where(dirPath: string): string {
  return `in directory ${JSON.stringify(dirPath)}`;
}

// Hot checks below use module-level helpers, not closures: under tsx every closure creation
// also calls esbuild's `__name` helper (~25 ms per 45,000 entries for each closure).
function checkName(name: Uint8Array, dirPath: string): void {
  if (!(name instanceof Uint8Array)) throw new TypeError(`Cannot lay out entry ${where(dirPath)}: name is not a Uint8Array`);
  if (name.length === 0) throw new RangeError(`Cannot lay out entry ${where(dirPath)}: empty name`);
  if (name.length > EROFS_NAME_LEN) throw new RangeError(`Cannot lay out entry ${showName(name)} ${where(dirPath)}: name is ${name.length} bytes, longer than ${EROFS_NAME_LEN}`);
  let dots = 0;
  for (let i = 0; i < name.length; i++) {
    const b = name[i]!;
    if (b === 0x2f) throw new RangeError(`Cannot lay out entry ${showName(name)} ${where(dirPath)}: name contains "/"`);
    if (b === 0) throw new RangeError(`Cannot lay out entry ${showName(name)} ${where(dirPath)}: name contains a NUL byte`);
    if (b === 0x2e) dots++;
  }
  if (dots === name.length && dots <= 2) throw new RangeError(`Cannot lay out entry ${showName(name)} ${where(dirPath)}: "." and ".." are reserved`);
}

/**
 * Validates an inode. `dirPath` + `name` give its path for messages; it is only built on
 * failure (formatting a path for each of 45,000 entries cost ~40 ms).
 */
function failInode(dirPath: string, name: Uint8Array, what: string): never {
  const path = dirPath === "" ? "/" : joinShown(dirPath, name);
  throw new RangeError(`Cannot lay out ${JSON.stringify(path)}: ${what}`);
}

function checkInode(inode: TreeInode, dirPath: string, name: Uint8Array, chunkSize: number): void {
  const modeBits = KIND_MODE[inode.kind as FileKind];
  if (modeBits === undefined) failInode(dirPath, name, `unknown kind ${JSON.stringify(inode.kind)}`);
  if (!Number.isInteger(inode.mode) || inode.mode < 0 || inode.mode > 0xffff) failInode(dirPath, name, `mode ${inode.mode} is not a 16-bit st_mode`);
  const type = inode.mode & S_IFMT;
  if (type !== 0 && type !== modeBits) failInode(dirPath, name, `mode 0o${inode.mode.toString(8)} has type bits that do not match kind "${inode.kind}"`);
  if (!Number.isInteger(inode.uid) || inode.uid < 0 || inode.uid > 0xffff_ffff) failInode(dirPath, name, `uid ${inode.uid} is not a u32`);
  if (!Number.isInteger(inode.gid) || inode.gid < 0 || inode.gid > 0xffff_ffff) failInode(dirPath, name, `gid ${inode.gid} is not a u32`);
  if (!Number.isSafeInteger(inode.mtime) || inode.mtime < 0) failInode(dirPath, name, `mtime ${inode.mtime} is not a non-negative integer`);
  if (!Number.isInteger(inode.mtimeNsec) || inode.mtimeNsec < 0 || inode.mtimeNsec > 999_999_999) failInode(dirPath, name, `mtimeNsec ${inode.mtimeNsec} is out of range`);
  if (inode.xattrs.size > 0) {
    for (const [xname, value] of inode.xattrs) {
      if (Buffer.byteLength(xname) > 255) failInode(dirPath, name, `xattr name "${xname}" is longer than 255 bytes`);
      if (value.length > 0xffff) failInode(dirPath, name, `xattr "${xname}" value is ${value.length} bytes, longer than 65535`);
    }
  }
  if (inode.kind === "reg") {
    if (!Number.isSafeInteger(inode.size) || inode.size < 0) failInode(dirPath, name, `size ${inode.size} is not a non-negative integer`);
    const chunks = inode.chunks ?? [];
    const want = ceilDiv(inode.size, chunkSize);
    if (chunks.length !== want) failInode(dirPath, name, `${chunks.length} chunks for ${inode.size} bytes, expected ${want} of chunk size ${chunkSize}`);
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      const len = Math.min(chunkSize, inode.size - i * chunkSize);
      if (c.fileOffset !== i * chunkSize) failInode(dirPath, name, `chunk ${i} has file offset ${c.fileOffset}, expected ${i * chunkSize}`);
      if (c.chunk.uncompressedSize !== len) failInode(dirPath, name, `chunk ${i} has ${c.chunk.uncompressedSize} uncompressed bytes, expected ${len}`);
    }
  } else if (inode.kind === "symlink") {
    if (!(inode.symlinkTarget instanceof Uint8Array)) failInode(dirPath, name, "symlink without a target");
    if (inode.symlinkTarget!.length > 0xffff) failInode(dirPath, name, `symlink target is ${inode.symlinkTarget!.length} bytes, longer than 65535`);
  } else if (inode.kind === "chr" || inode.kind === "blk") {
    if (!Number.isInteger(inode.rdevMajor) || inode.rdevMajor < 0 || inode.rdevMajor > 0xfff) failInode(dirPath, name, `device major ${inode.rdevMajor} does not fit 12 bits`);
    if (!Number.isInteger(inode.rdevMinor) || inode.rdevMinor < 0 || inode.rdevMinor > 0xfffff) failInode(dirPath, name, `device minor ${inode.rdevMinor} does not fit 20 bits`);
  }
}

/**
 * A directory's children in name order. The tree builders already sort children, so a
 * strictly increasing array is used as is (one comparison per sibling pair, no copy);
 * anything else is copied and sorted.
 * @throws RangeError for invalid or duplicate names
 */
function sortedEntries(children: readonly TreeEntry[], dirPath: string): readonly TreeEntry[] {
  let sorted = true;
  for (let i = 0; i < children.length; i++) {
    checkName(children[i]!.name, dirPath);
    if (i > 0 && sorted && compareNames(children[i - 1]!.name, children[i]!.name) >= 0) sorted = false;
  }
  if (sorted) return children;
  const entries = [...children].sort((a, b) => compareNames(a.name, b.name));
  for (let i = 1; i < entries.length; i++) {
    if (compareNames(entries[i - 1]!.name, entries[i]!.name) === 0) {
      throw new RangeError(`Cannot lay out directory ${JSON.stringify(dirPath)}: duplicate entry ${showName(entries[i]!.name)}`);
    }
  }
  return entries;
}

/**
 * Plans the meta area of a RAFS v6 bootstrap (spec §3.14 (a)-(c)).
 *
 * @param root the root directory
 * @param options.chunkSize the image chunk size (chunk counts are `ceil(size / chunkSize)`)
 * @throws RangeError for invalid names (empty, > 255 bytes, "/", NUL, "." or ".."), duplicate
 *   names in one directory, a directory reachable twice, inconsistent modes/chunks, bad xattrs
 * @example
 * const plan = planV6Layout(root, { chunkSize: 0x100000 });
 * plan.root.off / 32; // 128
 */
export function planV6Layout(root: TreeInode, options: { chunkSize: number }): V6Layout {
  const { chunkSize } = options;
  if (root.kind !== "dir") throw new RangeError(`Cannot lay out the root: kind is "${root.kind}", expected "dir"`);
  const alloc = new MetaAllocator(META_ROOT_OFFSET);
  const nodes: PlannedNode[] = [];
  const linkCounts = new Map<TreeInode, number>();
  const firstLink = new Map<TreeInode, PlannedNode>();
  const seenDirs = new Set<TreeInode>([root]);
  /** Paths of directories waiting on the stack (only directories: paths are for messages). */
  const dirPaths = new Map<PlannedNode, string>();
  let hasXattr = false;
  let end = 0;
  let next = 1;

  const makeNode = (name: Uint8Array, inode: TreeInode, parent: PlannedNode | undefined, dirPath: string): PlannedNode => {
    checkInode(inode, dirPath, name, chunkSize);
    const xattrSize = inode.xattrs.size === 0 ? 0 : xattrAreaSize(inode.xattrs);
    if (xattrIcount(xattrSize) > 0xffff) throw new RangeError(`Cannot lay out ${JSON.stringify(dirPath === "" ? "/" : joinShown(dirPath, name))}: xattrs need ${xattrSize} bytes, too many for i_xattr_icount`);
    if (xattrSize > 0) hasXattr = true;
    const node: PlannedNode = {
      name,
      inode,
      index: next++,
      parent: parent as PlannedNode,
      primary: undefined as unknown as PlannedNode,
      children: undefined,
      dotAt: 0,
      dotdotAt: 0,
      subdirs: 0,
      isz: EROFS_INODE_EXTENDED_SIZE + xattrSize,
      xattrSize,
      off: 0,
      direntsOff: 0,
      layout: DataLayout.FlatPlain,
      dataSize: 0,
    };
    (node as { parent: PlannedNode }).parent = parent ?? node;
    (node as { primary: PlannedNode }).primary = node;
    nodes.push(node);
    return node;
  };
  const extend = (to: number) => {
    if (to > end) end = to;
  };

  const rootNode = makeNode(new Uint8Array([0x2f]), root, undefined, "");
  dirPaths.set(rootNode, "/");
  const stack: PlannedNode[] = [rootNode];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const dirPath = dirPaths.get(dir)!;
    dirPaths.delete(dir);
    const entries = sortedEntries(dir.inode.children ?? [], dirPath);

    // 1. the directory itself
    dir.dotAt = countBefore(entries, DOT);
    dir.dotdotAt = countBefore(entries, DOTDOT);
    dir.dataSize = direntSize(entries, dir.dotAt, dir.dotdotAt);
    const p = alloc.placeTailed(dir.isz, dir.dataSize);
    dir.off = p.off;
    dir.direntsOff = p.direntsOff;
    dir.layout = p.layout;
    extend(dir.off + dir.isz + (p.layout === DataLayout.FlatInline ? dir.dataSize % EROFS_BLOCK_SIZE : 0));
    extend(dir.direntsOff + (p.layout === DataLayout.FlatInline ? alignDown(dir.dataSize, EROFS_BLOCK_SIZE) : dir.dataSize));

    // 2. its children, in name order
    const children: PlannedNode[] = new Array<PlannedNode>(entries.length);
    const firstChildDir = stack.length;
    for (let ci = 0; ci < entries.length; ci++) {
      const e = entries[ci]!;
      const inode = e.inode;
      if (inode.kind === "dir" && seenDirs.has(inode)) {
        throw new RangeError(`Cannot lay out ${JSON.stringify(joinShown(dirPath, e.name))}: the same directory inode appears twice in the tree`);
      }
      const prior = inode.kind === "reg" ? firstLink.get(inode) : undefined;
      const node = prior ? makeLink(e.name, prior, dir) : makeNode(e.name, inode, dir, dirPath);
      children[ci] = node;
      switch (inode.kind) {
        case "dir":
          seenDirs.add(inode);
          dirPaths.set(node, joinShown(dirPath, e.name));
          stack.push(node);
          break;
        case "reg": {
          linkCounts.set(inode, (linkCounts.get(inode) ?? 0) + 1);
          if (!prior) {
            firstLink.set(inode, node);
            const nchunks = inode.chunks === undefined ? 0 : inode.chunks.length;
            node.off = alloc.placeFile(node.isz, nchunks);
            node.layout = DataLayout.ChunkBased;
            extend(alignUp(node.off + node.isz, EROFS_CHUNK_ADDR_SIZE) + EROFS_CHUNK_ADDR_SIZE * nchunks);
          } else {
            alloc.align(EROFS_INODE_SLOT);
          }
          break;
        }
        case "symlink": {
          node.dataSize = inode.symlinkTarget!.length;
          const sp = alloc.placeTailed(node.isz, node.dataSize);
          node.off = sp.off;
          node.direntsOff = sp.direntsOff;
          node.layout = sp.layout;
          extend(node.off + node.isz + (sp.layout === DataLayout.FlatInline ? node.dataSize % EROFS_BLOCK_SIZE : 0));
          extend(node.direntsOff + (sp.layout === DataLayout.FlatInline ? alignDown(node.dataSize, EROFS_BLOCK_SIZE) : node.dataSize));
          break;
        }
        default:
          node.off = alloc.placeSpecial(node.isz);
          extend(node.off + node.isz);
      }
    }
    dir.children = children;
    dir.subdirs = stack.length - firstChildDir;
    // 3. recurse into child directories in order: they were pushed in name order, so
    // reverse that stretch of the stack to pop the first one first.
    for (let i = firstChildDir, j = stack.length - 1; i < j; i++, j--) {
      const t = stack[i]!;
      stack[i] = stack[j]!;
      stack[j] = t;
    }
  }

  function makeLink(name: Uint8Array, first: PlannedNode, parent: PlannedNode): PlannedNode {
    const node: PlannedNode = {
      name,
      inode: first.inode,
      index: next++,
      parent,
      primary: first,
      children: undefined,
      dotAt: 0,
      dotdotAt: 0,
      subdirs: 0,
      isz: first.isz,
      xattrSize: first.xattrSize,
      off: first.off,
      direntsOff: 0,
      layout: first.layout,
      dataSize: 0,
    };
    nodes.push(node);
    return node;
  }

  return { root: rootNode, nodes, inodeCount: next - 1, linkCounts, end, hasXattr };
}
