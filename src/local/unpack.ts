/**
 * Unpacking an image (v5 or v6) into a directory or a tar archive, reading verified file data
 * through a {@link ChunkSource}.
 *
 * Safety (a bootstrap is untrusted input):
 * - every name is checked: non-empty, no "/", no NUL, not "." or ".." ({@link UnsafePathError});
 *   names are used as raw bytes (Buffer paths), never decoded;
 * - entries are created only inside directories this unpack created with mkdir (the parent of
 *   each entry is looked up by the directory's inode, never by resolving a path string), and each
 *   final component is created exclusively (mkdir, `O_CREAT|O_EXCL|O_NOFOLLOW`, symlink, link and
 *   mknod all fail on an existing name), so a symlink written by the unpack is never followed;
 * - symlink targets are data: they are written verbatim and never resolved.
 *
 * Directory output is staged: everything is written below `outDir/.nydus-unpack-tmp-<uuid>/`;
 * when all data is written and verified, the root's children are renamed into `outDir`, then
 * times and directory modes are applied. On failure the staging directory and anything already
 * moved are removed (and `outDir` itself when this call created it), so an output that looks
 * complete is complete. `outDir` must be missing or an empty directory.
 *
 * Tar output goes to a temporary file next to the target, renamed into place at the end.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { Writable } from "node:stream";
import { InvalidInputError, UnsafePathError } from "../internal/errors.ts";
import { native } from "../internal/native.ts";
import type { RafsImage, RafsInode } from "../rafs/model.ts";
import { walkRafs } from "../rafs/open.ts";
import type { ChunkSource } from "./chunk_source.ts";
import { tarHeader, tarPadding, tarTrailer, type TarMember, type TarType } from "./tar_writer.ts";

const execFileP = promisify(execFile);

/** Something the unpack could not reproduce (the rest of the tree is complete). */
export interface UnpackWarning {
  /** Image path ("/a/b"). */
  path: string;
  reason: string;
}

export interface UnpackStats {
  dirs: number;
  files: number;
  hardlinks: number;
  symlinks: number;
  /** chr/blk/fifo created. */
  specials: number;
  /** Entries skipped (sockets; devices when unprivileged). */
  skipped: number;
  /** File data bytes written. */
  bytes: number;
}

export interface UnpackResult {
  stats: UnpackStats;
  warnings: UnpackWarning[];
}

export interface UnpackOptions {
  /** Called with the number of file bytes just written. */
  onProgress?: (bytes: number) => void;
  /**
   * Whether to chown and create device nodes (directory output). Default: running as root.
   * Unprivileged unpacks skip devices (with a warning) and keep the caller's ownership.
   */
  privileged?: boolean;
}

/** One entry of the safe walk. */
interface SafeEntry {
  /** Path relative to the root as raw bytes ("" for the root, "a/b"). */
  rel: Buffer;
  /** For messages: "/a/b" (lossy UTF-8). */
  display: string;
  inode: RafsInode;
  /** For a second link to a non-directory inode: `rel` of the first link. */
  linkTo?: Buffer;
}

const SLASH = Buffer.from("/");

/**
 * Checks a directory-entry name from the bootstrap.
 * @throws UnsafePathError for "", ".", "..", or a name containing "/" or NUL
 */
export function checkEntryName(name: Uint8Array, display: string): void {
  if (name.length === 0) throw new UnsafePathError(display, "empty file name in the image");
  if (name.includes(0x2f)) throw new UnsafePathError(display, 'file name contains "/"');
  if (name.includes(0)) throw new UnsafePathError(display, "file name contains a NUL byte");
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) {
    throw new UnsafePathError(display, `"${name.length === 1 ? "." : ".."}" is not a valid file name`);
  }
}

/**
 * The image tree in pre-order with checked names, paths built from raw name bytes under the
 * parent directory's own path (looked up by inode), and hardlinks detected by inode number.
 */
function* safeWalk(image: RafsImage): Generator<SafeEntry> {
  const dirs = new Map<number, Buffer>();
  const firstLink = new Map<number, Buffer>();
  for (const w of walkRafs(image)) {
    if (w.path === "/" && w.name.length === 0) {
      if (w.inode.kind !== "dir") throw new InvalidInputError(`Cannot unpack: the image root is a ${w.inode.kind}, not a directory`);
      dirs.set(w.inode.ino, Buffer.alloc(0));
      yield { rel: Buffer.alloc(0), display: "/", inode: w.inode };
      continue;
    }
    checkEntryName(w.name, w.path);
    const parent = dirs.get(w.parentIno);
    if (parent === undefined) throw new UnsafePathError(w.path, "parent is not a directory created by this unpack");
    const rel = parent.length === 0 ? Buffer.from(w.name) : Buffer.concat([parent, SLASH, w.name]);
    if (w.inode.kind === "dir") {
      dirs.set(w.inode.ino, rel);
      yield { rel, display: w.path, inode: w.inode };
      continue;
    }
    const first = firstLink.get(w.inode.ino);
    if (first !== undefined) {
      yield { rel, display: w.path, inode: w.inode, linkTo: first };
      continue;
    }
    firstLink.set(w.inode.ino, rel);
    yield { rel, display: w.path, inode: w.inode };
  }
}

function newStats(): UnpackStats {
  return { dirs: 0, files: 0, hardlinks: 0, symlinks: 0, specials: 0, skipped: 0, bytes: 0 };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
/** The path as a string when it is valid UTF-8 (the addon and child processes take strings), else undefined. */
function utf8Path(p: Buffer): string | undefined {
  try {
    return strictUtf8.decode(p);
  } catch (err) {
    void err; // not representable as a JS string without loss
    return undefined;
  }
}

function errno(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown };
  if (typeof e?.code === "string") return e.code;
  if (typeof e?.errno === "number") return { 1: "EPERM", 13: "EACCES", 95: "ENOTSUP", 61: "ENODATA" }[e.errno];
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Directory output

const O_CREATE_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Unpacks the image into `outDir` (created if missing; must be empty otherwise). See the module
 * comment for the safety and staging rules.
 * @returns counts and the warnings for what could not be reproduced (devices or trusted.*
 *   xattrs when unprivileged, sockets, xattrs on non-UTF-8 paths)
 * @throws UnsafePathError / FormatError for a hostile or malformed bootstrap,
 *   DigestMismatchError for corrupt data, NotFoundError for a missing blob,
 *   InvalidInputError when `outDir` is not an empty directory
 */
export async function unpackToDirectory(image: RafsImage, chunks: ChunkSource, outDir: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  const privileged = options.privileged ?? process.getuid?.() === 0;
  const out = path.resolve(outDir);
  const stats = newStats();
  const warnings: UnpackWarning[] = [];
  const warn = (p: string, reason: string) => warnings.push({ path: p, reason });

  let createdOut = false;
  const st = await fsp.stat(out).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (st === undefined) {
    await fsp.mkdir(out, { recursive: true });
    createdOut = true;
  } else {
    if (!st.isDirectory()) throw new InvalidInputError(`Cannot unpack into "${out}": not a directory`);
    if ((await fsp.readdir(out)).length > 0) throw new InvalidInputError(`Cannot unpack into "${out}": directory is not empty`);
  }
  const stagingName = `.nydus-unpack-tmp-${randomUUID()}`;
  const staging = Buffer.from(path.join(out, stagingName));
  const final = Buffer.from(out);
  await fsp.mkdir(staging, { mode: 0o700 });
  const at = (base: Buffer, rel: Buffer) => (rel.length === 0 ? base : Buffer.concat([base, SLASH, rel]));
  const moved: Buffer[] = [];
  const zero = Buffer.alloc(Math.max(image.superBlock.chunkSize, 4096));

  const setXattrs = (p: Buffer, e: SafeEntry) => {
    if (e.inode.xattrs.size === 0) return;
    const s = utf8Path(p);
    if (s === undefined) {
      warn(e.display, `xattrs not set (${[...e.inode.xattrs.keys()].join(", ")}): the path is not valid UTF-8`);
      return;
    }
    for (const [name, value] of e.inode.xattrs) {
      try {
        native.setXattr(s, name, value);
      } catch (err) {
        const code = errno(err);
        if (code === "ENOTSUP" || (!privileged && (code === "EPERM" || code === "EACCES"))) {
          warn(e.display, `xattr ${name} not set: ${code}`);
        } else {
          throw err;
        }
      }
    }
  };

  const dirsInOrder: SafeEntry[] = [];
  const timed: SafeEntry[] = [];
  const rootChildren: Buffer[] = [];
  const skipped = new Set<string>();
  const skip = (e: SafeEntry, reason: string): false => {
    warn(e.display, reason);
    skipped.add(e.rel.toString("latin1"));
    stats.skipped++;
    return false;
  };

  /** Creates one entry in the staging tree; false when it was skipped. */
  const create = async (e: SafeEntry): Promise<boolean> => {
    const p = at(staging, e.rel);
    const { inode } = e;
    if (e.linkTo !== undefined) {
      if (skipped.has(e.linkTo.toString("latin1"))) return skip(e, `hardlink skipped: its first link "${e.linkTo.toString()}" was skipped`);
      await fsp.link(at(staging, e.linkTo), p);
      stats.hardlinks++;
      return true;
    }
    switch (inode.kind) {
      case "dir":
        if (e.rel.length > 0) await fsp.mkdir(p, { mode: 0o700 });
        dirsInOrder.push(e);
        stats.dirs++;
        return true;
      case "reg": {
        const fh = await fsp.open(p, O_CREATE_NEW, 0o600);
        try {
          if (inode.size > 0) await fh.truncate(inode.size);
          for await (const { fileOffset, data } of chunks.fileData(inode, e.display)) {
            // All-zero chunks stay holes (the file was truncated to its size).
            if (!(data.length <= zero.length && zero.compare(data, 0, data.length, 0, data.length) === 0)) {
              for (let done = 0; done < data.length; ) {
                const { bytesWritten } = await fh.write(data, done, data.length - done, fileOffset + done);
                done += bytesWritten;
              }
            }
            stats.bytes += data.length;
            options.onProgress?.(data.length);
          }
          if (privileged) await fh.chown(inode.uid, inode.gid);
          await fh.chmod(inode.mode & 0o7777);
        } finally {
          await fh.close();
        }
        setXattrs(p, e);
        stats.files++;
        break;
      }
      case "symlink": {
        const target = image.readlink(inode);
        if (target.includes(0)) throw new UnsafePathError(e.display, "symlink target contains a NUL byte");
        await fsp.symlink(Buffer.from(target), p);
        if (privileged) await fsp.lchown(p, inode.uid, inode.gid);
        setXattrs(p, e);
        stats.symlinks++;
        break;
      }
      case "chr":
      case "blk":
      case "fifo": {
        if (inode.kind !== "fifo" && !privileged) return skip(e, `${inode.kind} ${inode.rdevMajor}:${inode.rdevMinor} skipped: creating devices needs root`);
        const s = utf8Path(p);
        if (s === undefined) return skip(e, `${inode.kind} skipped: mknod needs a UTF-8 path`);
        if (inode.kind === "fifo") await execFileP("mkfifo", ["-m", "600", "--", s]);
        else await execFileP("mknod", ["-m", "600", "--", s, inode.kind === "chr" ? "c" : "b", String(inode.rdevMajor), String(inode.rdevMinor)]);
        if (privileged) await fsp.lchown(p, inode.uid, inode.gid);
        await fsp.chmod(p, inode.mode & 0o7777);
        setXattrs(p, e);
        stats.specials++;
        break;
      }
      case "sock":
        return skip(e, "socket skipped: sockets cannot be unpacked");
    }
    timed.push(e);
    return true;
  };

  try {
    for (const e of safeWalk(image)) {
      const made = await create(e);
      if (made && e.rel.length > 0 && !e.rel.includes(0x2f)) rootChildren.push(e.rel);
    }

    // Everything is written and verified: move it into place.
    for (const name of rootChildren) {
      await fsp.rename(at(staging, name), at(final, name));
      moved.push(name);
    }
    await fsp.rmdir(staging);

    // Times (no later step changes an mtime), then directory owners, modes and xattrs, deepest
    // first so an unprivileged unpack can still reach children of a mode-0 directory.
    await setTimes([...timed, ...dirsInOrder].map((e) => ({ p: at(final, e.rel), inode: e.inode })));
    for (const e of dirsInOrder.reverse()) {
      const p = at(final, e.rel);
      if (privileged) await fsp.lchown(p, e.inode.uid, e.inode.gid);
      await fsp.chmod(p, e.inode.mode & 0o7777);
      setXattrs(p, e);
    }
    return { stats, warnings };
  } catch (err) {
    await removeQuietly(staging);
    for (const name of moved) await removeQuietly(at(final, name));
    if (createdOut) await fsp.rmdir(out).catch((e: unknown) => void e); // best effort: leave a non-empty dir alone
    throw err;
  }
}

async function removeQuietly(p: Buffer): Promise<void> {
  try {
    await fsp.rm(p, { recursive: true, force: true });
  } catch (err) {
    void err; // cleanup after a failure: the original error is what the caller needs
  }
}

/**
 * Sets mtime (and atime) without following symlinks. Whole seconds go through lutimes; times
 * with nanoseconds through `touch -h -d @S.N` (grouped by stamp), because Node's utimes takes a
 * double and cannot represent every nanosecond.
 */
async function setTimes(list: { p: Buffer; inode: RafsInode }[]): Promise<void> {
  const byStamp = new Map<string, string[]>();
  for (const { p, inode } of list) {
    const s = inode.mtimeNsec !== 0 ? utf8Path(p) : undefined;
    if (s === undefined) {
      const t = inode.mtime + inode.mtimeNsec / 1e9;
      await fsp.lutimes(p, t, t);
      continue;
    }
    const stamp = `@${inode.mtime}.${String(inode.mtimeNsec).padStart(9, "0")}`;
    let group = byStamp.get(stamp);
    if (!group) byStamp.set(stamp, (group = []));
    group.push(s);
  }
  for (const [stamp, paths] of byStamp) {
    for (let i = 0; i < paths.length; i += 500) {
      await execFileP("touch", ["-h", "-d", stamp, "--", ...paths.slice(i, i + 500)]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tar output

/** Where tar bytes go: a file written at increasing offsets, or a Writable (with backpressure). */
type SinkTarget = { kind: "file"; fh: fsp.FileHandle } | { kind: "stream"; stream: Writable };

/** Buffered sequential writer. */
class Sink {
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  private pos = 0;
  constructor(private readonly target: SinkTarget) {}

  async write(data: Uint8Array): Promise<void> {
    if (this.used + data.length > this.buf.length) await this.flush();
    if (data.length >= this.buf.length) return this.emit(data);
    this.buf.set(data, this.used);
    this.used += data.length;
  }

  async zeros(n: number): Promise<void> {
    const z = new Uint8Array(Math.min(n, 1 << 20));
    for (let left = n; left > 0; left -= z.length) await this.write(left >= z.length ? z : z.subarray(0, left));
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    await this.emit(chunk);
  }

  private async emit(data: Uint8Array): Promise<void> {
    const t = this.target;
    if (t.kind === "file") {
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await t.fh.write(data, done, data.length - done, this.pos + done);
        done += bytesWritten;
      }
      this.pos += data.length;
      return;
    }
    const w = t.stream;
    if (w.write(data)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        w.off("error", onError);
        resolve();
      };
      const onError = (err: Error) => {
        w.off("drain", onDrain);
        reject(err);
      };
      w.once("drain", onDrain);
      w.once("error", onError);
    });
  }
}

const TAR_TYPE: Record<"dir" | "reg" | "symlink" | "chr" | "blk" | "fifo", TarType> = { reg: "0", symlink: "2", chr: "3", blk: "4", dir: "5", fifo: "6" };

/**
 * Writes the image as a POSIX (PAX) tar: "./" for the root, then every entry in pre-order
 * (directories with a trailing "/"), hardlinks as type "1" members naming the first path,
 * devices and fifos as headers, sockets skipped with a warning. File data is streamed chunk by
 * chunk; PAX records carry long or non-UTF-8 names, large ids, nanosecond mtimes and xattrs.
 *
 * @param out a file path (written to a temporary file beside it and renamed at the end; removed
 *   on failure) or a Writable (written to, not ended)
 */
export async function unpackToTar(image: RafsImage, chunks: ChunkSource, out: string | Writable, options: UnpackOptions = {}): Promise<UnpackResult> {
  if (typeof out !== "string") return writeTarTo(image, chunks, new Sink({ kind: "stream", stream: out }), options);
  const target = path.resolve(out);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.nydus-unpack-tmp-${randomUUID()}`);
  const fh = await fsp.open(tmp, "wx", 0o644);
  try {
    const result = await writeTarTo(image, chunks, new Sink({ kind: "file", fh }), options);
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, target);
    return result;
  } catch (err) {
    await fh.close().catch((e: unknown) => void e); // may already be closed
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

async function writeTarTo(image: RafsImage, chunks: ChunkSource, sink: Sink, options: UnpackOptions): Promise<UnpackResult> {
  const stats = newStats();
  const warnings: UnpackWarning[] = [];
  for (const e of safeWalk(image)) {
    const { inode } = e;
    const name = e.rel.length === 0 ? Buffer.from("./") : inode.kind === "dir" ? Buffer.concat([e.rel, SLASH]) : e.rel;
    const base = { name, mode: inode.mode & 0o7777, uid: inode.uid, gid: inode.gid, size: 0, mtime: inode.mtime, mtimeNsec: inode.mtimeNsec };
    if (e.linkTo !== undefined) {
      await sink.write(tarHeader({ ...base, type: "1", linkname: e.linkTo }));
      stats.hardlinks++;
      continue;
    }
    if (inode.kind === "sock") {
      warnings.push({ path: e.display, reason: "socket skipped: tar cannot carry sockets" });
      stats.skipped++;
      continue;
    }
    const m: TarMember = { ...base, type: TAR_TYPE[inode.kind], xattrs: inode.xattrs };
    if (inode.kind === "symlink") {
      m.linkname = image.readlink(inode);
      if (m.linkname.includes(0)) throw new UnsafePathError(e.display, "symlink target contains a NUL byte");
      stats.symlinks++;
    } else if (inode.kind === "chr" || inode.kind === "blk") {
      m.devMajor = inode.rdevMajor;
      m.devMinor = inode.rdevMinor;
      stats.specials++;
    } else if (inode.kind === "fifo") {
      stats.specials++;
    } else if (inode.kind === "dir") {
      stats.dirs++;
    }
    if (inode.kind !== "reg") {
      await sink.write(tarHeader(m));
      continue;
    }
    m.size = inode.size;
    await sink.write(tarHeader(m));
    let pos = 0;
    for await (const { fileOffset, data } of chunks.fileData(inode, e.display)) {
      if (fileOffset > pos) await sink.zeros(fileOffset - pos);
      await sink.write(data);
      pos = fileOffset + data.length;
      stats.bytes += data.length;
      options.onProgress?.(data.length);
    }
    if (pos < inode.size) await sink.zeros(inode.size - pos);
    await sink.zeros(tarPadding(inode.size));
    stats.files++;
  }
  await sink.write(tarTrailer());
  await sink.flush();
  return { stats, warnings };
}
