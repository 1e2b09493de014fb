/**
 * Read-only filesystem operations over a RAFS image, with no kernel in sight: the FUSE server
 * (`fuse/server.ts`) translates requests into calls of {@link RafsFs}, and tests can call it
 * directly.
 *
 * Node ids: the root is node id 1 (FUSE_ROOT_ID); every other inode with RAFS number `ino` is
 * node id `ino + 2`, so the mapping is stateless, the same inode (hardlinks) always gets the same
 * node id, and FORGET needs no bookkeeping. `st_ino` is the node id.
 *
 * Errors are returned, not thrown: every operation answers either its result or a **negative
 * errno** (`-ENOENT`…), as the FUSE reply header wants it.
 */
import type { FileKind, RafsDirEntry, RafsImage, RafsInode } from "../rafs/model.ts";
import type { FileDataReader } from "../storage/reader.ts";

// Verified file data of regular files: src/storage's lazy reader, or fileReaderFromChunks.
export type { FileDataReader } from "../storage/reader.ts";

/** errno values used here (Linux). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  EROFS: 30,
  ENAMETOOLONG: 36,
  EPROTO: 71,
} as const;

/** `struct stat` as FUSE carries it (fuse_attr). Times in seconds + nanoseconds. */
export interface FsAttr {
  ino: number;
  size: number;
  blocks: number;
  mtime: number;
  mtimeNsec: number;
  /** Full st_mode. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Kernel `new_encode_dev` form. */
  rdev: number;
  blksize: number;
}

/** Answer of lookup and one readdirplus item. */
export interface FsEntry {
  nodeId: number;
  attr: FsAttr;
}

/** One directory entry as readdir returns it. */
export interface FsDirEntry {
  name: Uint8Array;
  /** Node id (also st_ino) of the entry. */
  nodeId: number;
  /** DT_* type. */
  type: number;
  /** Cookie: the offset to pass to continue *after* this entry. */
  next: number;
}

/** statfs answer (fuse_kstatfs). */
export interface FsStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** Options of {@link RafsFs}. */
export interface RafsFsOptions {
  /** Called with one line when a read fails (e.g. chunk verification); the reader gets EIO. */
  log?: (line: string) => void;
}

const DT: Record<FileKind, number> = { fifo: 1, chr: 2, dir: 4, blk: 6, reg: 8, symlink: 10, sock: 12 };
const S_IFMT = 0o170000;
const ROOT_ID = 1;
const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes a device number like the kernel's `new_encode_dev` (what fuse_attr.rdev holds). */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/**
 * Kernel-free read-only filesystem over a RAFS image and a {@link FileDataReader}.
 *
 * @example
 * const fs = new RafsFs(openRafs(bootstrap), reader);
 * const e = fs.lookup(1, new TextEncoder().encode("etc"));
 * if (typeof e === "number") throw new Error(`errno ${-e}`);
 */
export class RafsFs {
  readonly rootNodeId = ROOT_ID;
  private readonly rootIno: number;
  /** Parent node id of each directory seen by lookup/readdir, for "..". */
  private readonly parents = new Map<number, number>();
  /** Paths of node ids (first name seen), for log lines. */
  private readonly names = new Map<number, string>();
  /** Recently listed directories (lookups in a big directory would decode it again each time). */
  private readonly dirCache = new Map<number, RafsDirEntry[]>();
  private readonly log: (line: string) => void;

  constructor(
    readonly image: RafsImage,
    readonly reader: FileDataReader,
    options: RafsFsOptions = {},
  ) {
    this.rootIno = image.superBlock.rootIno;
    this.log = options.log ?? (() => {});
    this.parents.set(ROOT_ID, ROOT_ID);
    this.names.set(ROOT_ID, "/");
  }

  /** Node id of a RAFS inode number. */
  nodeIdOf(ino: number): number {
    return ino === this.rootIno ? ROOT_ID : ino + 2;
  }

  /** RAFS inode number of a node id. */
  inoOf(nodeId: number): number {
    return nodeId === ROOT_ID ? this.rootIno : nodeId - 2;
  }

  /** The inode behind a node id, or -ENOENT for an id no lookup can have produced. */
  inode(nodeId: number): RafsInode | number {
    if (!Number.isSafeInteger(nodeId) || nodeId < 1) return -Errno.ENOENT;
    try {
      return this.image.inode(this.inoOf(nodeId));
    } catch {
      return -Errno.ENOENT;
    }
  }

  /** Image path of a node id when known (for messages). */
  pathOf(nodeId: number): string {
    return this.names.get(nodeId) ?? `<inode ${this.inoOf(nodeId)}>`;
  }

  /** Records the image path of a node id learnt elsewhere (another thread's lookups), for messages. */
  notePath(nodeId: number, path: string): void {
    if (!this.names.has(nodeId) && !path.startsWith("<")) this.names.set(nodeId, path);
  }

  attrOf(inode: RafsInode): FsAttr {
    const size = inode.size;
    return {
      ino: this.nodeIdOf(inode.ino),
      size,
      blocks: Math.ceil(size / 512),
      mtime: inode.mtime,
      mtimeNsec: inode.mtimeNsec,
      mode: inode.mode,
      nlink: inode.nlink,
      uid: inode.uid,
      gid: inode.gid,
      rdev: inode.kind === "chr" || inode.kind === "blk" ? encodeDev(inode.rdevMajor, inode.rdevMinor) : 0,
      blksize: 4096,
    };
  }

  /** LOOKUP: `name` (raw bytes) in directory `parent`. */
  lookup(parent: number, name: Uint8Array): FsEntry | number {
    const dir = this.inode(parent);
    if (typeof dir === "number") return dir;
    if (dir.kind !== "dir") return -Errno.ENOTDIR;
    if (name.length > 255) return -Errno.ENAMETOOLONG;
    if (bytesEqual(name, DOT)) return { nodeId: parent, attr: this.attrOf(dir) };
    if (bytesEqual(name, DOTDOT)) {
      const up = this.parents.get(parent) ?? ROOT_ID;
      const upInode = this.inode(up);
      return typeof upInode === "number" ? upInode : { nodeId: up, attr: this.attrOf(upInode) };
    }
    let entries;
    try {
      entries = this.entriesOf(parent, dir);
    } catch (e) {
      this.log(`nydus-ts fs: cannot read directory "${this.pathOf(parent)}": ${errText(e)}`);
      return -Errno.EIO;
    }
    // On-disk order is sorted by name bytes: binary search.
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareBytes(entries[mid].name, name);
      if (c === 0) {
        const child = this.inode(this.nodeIdOf(entries[mid].ino));
        if (typeof child === "number") return -Errno.EIO;
        const nodeId = this.nodeIdOf(child.ino);
        this.remember(parent, nodeId, name, child.kind);
        return { nodeId, attr: this.attrOf(child) };
      }
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    // Not sorted after all (a v5 image, or a foreign writer): fall back to a scan.
    for (const e of entries) {
      if (bytesEqual(e.name, name)) {
        const child = this.inode(this.nodeIdOf(e.ino));
        if (typeof child === "number") return -Errno.EIO;
        const nodeId = this.nodeIdOf(child.ino);
        this.remember(parent, nodeId, name, child.kind);
        return { nodeId, attr: this.attrOf(child) };
      }
    }
    return -Errno.ENOENT;
  }

  private entriesOf(nodeId: number, dir: RafsInode): RafsDirEntry[] {
    let list = this.dirCache.get(nodeId);
    if (list !== undefined) {
      this.dirCache.delete(nodeId);
      this.dirCache.set(nodeId, list);
      return list;
    }
    list = this.image.readdir(dir);
    if (this.dirCache.size >= 64) this.dirCache.delete(this.dirCache.keys().next().value as number);
    this.dirCache.set(nodeId, list);
    return list;
  }

  private remember(parent: number, nodeId: number, name: Uint8Array, kind: FileKind): void {
    if (kind === "dir") this.parents.set(nodeId, parent);
    if (!this.names.has(nodeId)) {
      const p = this.pathOf(parent);
      this.names.set(nodeId, (p === "/" ? "/" : p + "/") + dec.decode(name));
    }
  }

  getattr(nodeId: number): FsAttr | number {
    const inode = this.inode(nodeId);
    return typeof inode === "number" ? inode : this.attrOf(inode);
  }

  readlink(nodeId: number): Uint8Array | number {
    const inode = this.inode(nodeId);
    if (typeof inode === "number") return inode;
    if (inode.kind !== "symlink") return -Errno.EINVAL;
    try {
      return this.image.readlink(inode);
    } catch (e) {
      this.log(`nydus-ts fs: cannot read symlink "${this.pathOf(nodeId)}": ${errText(e)}`);
      return -Errno.EIO;
    }
  }

  /**
   * READ of a regular file by node id (the server answers OPEN with ENOSYS, so there are no
   * file handles). Never answers wrong bytes: a failed read is logged once (file and error)
   * and answers -EIO.
   */
  async read(nodeId: number, offset: number, size: number): Promise<Uint8Array | number> {
    const inode = this.inode(nodeId);
    if (typeof inode === "number") return inode;
    if (inode.kind !== "reg") return inode.kind === "dir" ? -Errno.EISDIR : -Errno.EINVAL;
    if (offset >= inode.size || size === 0) return new Uint8Array(0);
    const length = Math.min(size, inode.size - offset);
    try {
      const data = await this.reader.read(inode, offset, length);
      if (data.length > length) return data.subarray(0, length);
      return data;
    } catch (e) {
      this.log(`nydus-ts fs: read of "${this.pathOf(nodeId)}" at offset ${offset} (${length} bytes) failed, answering EIO: ${errText(e)}`);
      return -Errno.EIO;
    }
  }

  /**
   * READDIR of a directory by node id: its entries ("." and ".." first) from cookie `offset`
   * on (0 = start); the caller stops when its buffer is full. Cookies are positions in the
   * name-sorted listing, which never changes in a read-only image.
   */
  readdir(nodeId: number, offset: number): FsDirEntry[] | number {
    const dir = this.inode(nodeId);
    if (typeof dir === "number") return dir;
    if (dir.kind !== "dir") return -Errno.ENOTDIR;
    let list;
    try {
      list = this.entriesOf(nodeId, dir);
    } catch (e) {
      this.log(`nydus-ts fs: cannot read directory "${this.pathOf(nodeId)}": ${errText(e)}`);
      return -Errno.EIO;
    }
    const out: FsDirEntry[] = [];
    if (offset < 1) out.push({ name: DOT, nodeId, type: DT.dir, next: 1 });
    if (offset < 2) out.push({ name: DOTDOT, nodeId: this.parents.get(nodeId) ?? ROOT_ID, type: DT.dir, next: 2 });
    for (let i = Math.max(0, offset - 2); i < list.length; i++) {
      const e = list[i]!;
      const child = this.nodeIdOf(e.ino);
      this.remember(nodeId, child, e.name, e.kind);
      out.push({ name: e.name, nodeId: child, type: DT[e.kind] ?? 0, next: i + 3 });
    }
    return out;
  }

  /** Attributes of a readdirplus item ("." and ".." get none: the kernel skips them). */
  entryOf(e: FsDirEntry): FsEntry | undefined {
    if (bytesEqual(e.name, DOT) || bytesEqual(e.name, DOTDOT)) return undefined;
    const inode = this.inode(e.nodeId);
    return typeof inode === "number" ? undefined : { nodeId: e.nodeId, attr: this.attrOf(inode) };
  }

  /**
   * GETXATTR: `size` 0 probes (answers the value's length as a number ≥ 0); a value longer than
   * `size` is -ERANGE; a missing name is -ENODATA.
   */
  getxattr(nodeId: number, name: Uint8Array, size: number): Uint8Array | number {
    const inode = this.inode(nodeId);
    if (typeof inode === "number") return inode;
    const value = inode.xattrs.get(dec.decode(name));
    if (value === undefined) return -Errno.ENODATA;
    if (size === 0) return value.length;
    if (value.length > size) return -Errno.ERANGE;
    return value;
  }

  /** LISTXATTR: NUL-terminated names, with the same size-probe and ERANGE rules as getxattr. */
  listxattr(nodeId: number, size: number): Uint8Array | number {
    const inode = this.inode(nodeId);
    if (typeof inode === "number") return inode;
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const name of [...inode.xattrs.keys()].sort()) {
      const b = enc.encode(name + "\0");
      parts.push(b);
      total += b.length;
    }
    if (size === 0) return total;
    if (total > size) return -Errno.ERANGE;
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  statfs(): FsStatfs {
    const files = this.image.superBlock.inodeCount;
    return { blocks: 0, bfree: 0, bavail: 0, files, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 };
  }
}

/** Mode type bits of an inode (for tests and callers). */
export function fileType(mode: number): number {
  return mode & S_IFMT;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function errText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
