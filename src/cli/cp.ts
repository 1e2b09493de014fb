/**
 * `nydus-ts cp REF PATH DEST`: copies a file, or a directory tree (dirs, files, symlinks), out
 * of a Nydus image read lazily. Never writes outside DEST: names are checked (no "/", ".", ".."
 * or NUL), directories are created by us and never followed when they are symlinks, each file
 * is written to an exclusive temporary name (O_EXCL | O_NOFOLLOW) then renamed into place.
 * Device nodes, fifos and sockets are skipped (listed in the result); hard links become copies.
 */
import { constants as C } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { InvalidInputError, UnsafePathError } from "../internal/errors.ts";
import type { RafsInode } from "../rafs/model.ts";
import { emit } from "./output.ts";
import { openRuntime, resolvePath, type Runtime, type RuntimeFlags } from "./runtime.ts";

const dec = new TextDecoder();
const PIECE = 1 << 20;
let tmpCounter = 0;

interface Tally {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  skipped: string[];
}

function checkName(name: string, where: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new UnsafePathError(`${where}/${name}`, "an unsafe name in the image (\"/\", \".\", \"..\" or NUL)");
  }
}

async function setAttrs(file: string, inode: RafsInode, fh?: fs.FileHandle): Promise<void> {
  const owner = process.getuid?.() === 0;
  if (fh) {
    if (owner) await fh.chown(inode.uid, inode.gid);
    await fh.chmod(inode.mode & 0o7777);
    await fh.utimes(inode.mtime, inode.mtime + inode.mtimeNsec / 1e9);
  } else {
    if (owner) await fs.lchown(file, inode.uid, inode.gid);
    await fs.lutimes(file, inode.mtime, inode.mtime + inode.mtimeNsec / 1e9);
  }
}

async function copyFile(rt: Runtime, inode: RafsInode, dest: string, t: Tally): Promise<void> {
  // A short name: the image's names may be 255 bytes long already.
  const tmp = path.join(path.dirname(dest), `.nydus-ts-${process.pid}-${tmpCounter++}.tmp`);
  const fh = await fs.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  try {
    for (let off = 0; off < inode.size; off += PIECE) {
      const piece = await rt.reader.read(inode, off, Math.min(PIECE, inode.size - off));
      await fh.write(piece, 0, piece.length, off);
    }
    await setAttrs(tmp, inode, fh);
    await fh.close();
    await fs.rename(tmp, dest);
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw err;
  }
  t.files++;
  t.bytes += inode.size;
}

/** Creates `dest` as a directory of ours: an existing one must be a real directory, never a symlink. */
async function makeDir(dest: string): Promise<void> {
  try {
    await fs.mkdir(dest, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const st = await fs.lstat(dest);
    if (!st.isDirectory()) throw new UnsafePathError(dest, "it exists and is not a directory (symlinks are not followed)");
  }
}

async function copyTree(rt: Runtime, inode: RafsInode, dest: string, imagePath: string, t: Tally): Promise<void> {
  switch (inode.kind) {
    case "reg":
      return copyFile(rt, inode, dest, t);
    case "symlink":
      await fs.rm(dest, { force: true });
      await fs.symlink(dec.decode(rt.image.readlink(inode)), dest);
      await setAttrs(dest, inode);
      t.symlinks++;
      return;
    case "dir": {
      await makeDir(dest);
      for (const e of rt.image.readdir(inode)) {
        const name = dec.decode(e.name);
        checkName(name, imagePath);
        await copyTree(rt, rt.image.inode(e.ino), path.join(dest, name), path.posix.join(imagePath, name), t);
      }
      await fs.chmod(dest, inode.mode & 0o7777);
      await setAttrs(dest, inode);
      t.dirs++;
      return;
    }
    default:
      t.skipped.push(`${imagePath} (${inode.kind})`);
  }
}

export async function runCp(source: string, p: string, destArg: string, flags: RuntimeFlags): Promise<void> {
  const rt = await openRuntime(source, flags, { persistentCache: false });
  try {
    const { path: where, inode } = resolvePath(rt.image, p, false);
    let dest = path.resolve(destArg);
    const st = await fs.lstat(dest).catch(() => undefined);
    if (st?.isDirectory()) {
      const base = where === "/" ? "" : path.posix.basename(where);
      if (base) dest = path.join(dest, base);
    } else if (st?.isSymbolicLink()) {
      throw new UnsafePathError(destArg, "the destination is a symlink (not followed)");
    } else if (st && inode.kind === "dir") {
      throw new InvalidInputError(`Cannot copy directory "${where}" onto file "${destArg}"`);
    }
    const t: Tally = { files: 0, dirs: 0, symlinks: 0, bytes: 0, skipped: [] };
    await copyTree(rt, inode, dest, where, t);
    emit(flags, { source, path: where, dest, ...t, ...rt.summary() }, () =>
      `copied ${where} to ${dest}: ${t.files} files (${t.bytes} bytes), ${t.dirs} directories, ${t.symlinks} symlinks` +
      (t.skipped.length > 0 ? `; skipped ${t.skipped.length} special files: ${t.skipped.join(", ")}` : ""));
  } finally {
    await rt.close();
  }
}
