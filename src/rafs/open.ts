/**
 * Opening a bootstrap of either RAFS version, and walking its tree.
 *
 * Detection follows upstream's order (spec §3.2): a v5 superblock starts with the magic
 * 0x52414653 ("RAFS" as a little-endian u32) at offset 0; a v6 bootstrap has 1024 zero
 * bytes there (the EROFS superblock sits at 1024).
 */
import { FormatError } from "../internal/errors.ts";
import type { RafsImage, RafsInode } from "./model.ts";
import { openRafsV5 } from "./v5_reader.ts";
import { openRafsV6 } from "./v6_reader.ts";

/** Magic of the RAFS v5 superblock at offset 0. */
export const RAFS_V5_MAGIC = 0x5241_4653;

/** Bootstrap version from its first bytes: 5 when the v5 magic is at offset 0, else 6. */
export function detectRafsVersion(bytes: Uint8Array): 5 | 6 {
  if (bytes.length < 4) return 6;
  const magic = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  return magic === RAFS_V5_MAGIC ? 5 : 6;
}

/**
 * Opens a RAFS v5 or v6 bootstrap.
 * @throws FormatError when the bootstrap is malformed (a file that is neither v5 nor v6
 *   fails the v6 superblock checks)
 * @example
 * const img = openRafs(fs.readFileSync("bootstrap"));
 * img.superBlock.version; // 5 or 6
 */
export function openRafs(bytes: Uint8Array): RafsImage {
  return detectRafsVersion(bytes) === 5 ? openRafsV5(bytes) : openRafsV6(bytes);
}

/** One node of a tree walk. */
export interface RafsWalkEntry {
  /** Absolute path ("/", "/a", "/a/b"); names decoded as UTF-8 (lossy for other bytes). */
  readonly path: string;
  /** Raw name bytes of the last component (empty for the root). */
  readonly name: Uint8Array;
  readonly inode: RafsInode;
  /** Inode number of the containing directory (the root's own for the root). */
  readonly parentIno: number;
}

/**
 * Walks the whole tree depth-first in pre-order, children in on-disk (name-sorted) order:
 * "/", then each child followed by its subtree. Hardlinked files are yielded once per link.
 *
 * A directory reached a second time (a loop back to an ancestor, or a hardlinked
 * directory) throws FormatError, so the walk always terminates and visits each
 * directory once. Uses an explicit stack, so deep trees cannot exhaust the call stack.
 *
 * @example
 * for (const { path, inode } of walkRafs(img)) console.log(path, inode.kind);
 */
export function* walkRafs(image: RafsImage): Generator<RafsWalkEntry> {
  const rootIno = image.superBlock.rootIno;
  const root = image.inode(rootIno);
  const seenDirs = new Set<number>([rootIno]);
  yield { path: "/", name: new Uint8Array(0), inode: root, parentIno: rootIno };
  if (root.kind !== "dir") return;
  const decoder = new TextDecoder();
  const stack: { prefix: string; dirIno: number; entries: ReturnType<RafsImage["readdir"]>; next: number }[] = [
    { prefix: "/", dirIno: rootIno, entries: image.readdir(root), next: 0 },
  ];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next >= top.entries.length) {
      stack.pop();
      continue;
    }
    const e = top.entries[top.next++];
    const inode = image.inode(e.ino);
    const path = top.prefix + decoder.decode(e.name);
    yield { path, name: e.name, inode, parentIno: top.dirIno };
    if (inode.kind !== "dir") continue;
    if (seenDirs.has(e.ino)) {
      const at = "inodeOffset" in image && typeof image.inodeOffset === "function" ? (image.inodeOffset as (n: number) => number)(e.ino) : 0;
      throw new FormatError("RafsDirectory", "ino", at, `directory ${e.ino} at "${path}" is reached twice (a loop or a directory hardlink)`);
    }
    seenDirs.add(e.ino);
    stack.push({ prefix: path + "/", dirIno: e.ino, entries: image.readdir(inode), next: 0 });
  }
}
