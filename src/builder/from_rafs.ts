/**
 * Turns a decoded bootstrap (RafsImage, v5 or v6) back into a write-side tree, so
 * that layers can be merged and re-written. Hardlinks survive: entries with the
 * same inode number share one TreeInode object (spec §9.4).
 */
import { FormatError } from "../internal/errors.ts";
import type { ChunkInfo, FileChunk, RafsImage, RafsInode, TreeEntry, TreeInode } from "../rafs/model.ts";

/** Options of {@link treeFromRafs}. */
export interface TreeFromRafsOptions {
  /** Maps a chunk's blob index in this image to the index in the output blob table. */
  remapBlob?: (blobIndex: number) => number;
}

/**
 * Reads every inode reachable from the root into a TreeInode tree.
 * @throws FormatError when the bootstrap is malformed or a directory loops
 */
export function treeFromRafs(image: RafsImage, options: TreeFromRafsOptions = {}): TreeInode {
  const remap = options.remapBlob ?? ((i: number) => i);
  const byIno = new Map<number, TreeInode>();
  const chunkCache = new Map<ChunkInfo, ChunkInfo>();
  const remapChunk = (c: ChunkInfo): ChunkInfo => {
    let out = chunkCache.get(c);
    if (!out) {
      const idx = remap(c.blobIndex);
      out = idx === c.blobIndex ? c : { ...c, blobIndex: idx };
      chunkCache.set(c, out);
    }
    return out;
  };
  const convert = (node: RafsInode): TreeInode => {
    const t: TreeInode = {
      kind: node.kind,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtime: node.mtime,
      mtimeNsec: node.mtimeNsec,
      rdevMajor: node.rdevMajor,
      rdevMinor: node.rdevMinor,
      xattrs: new Map(node.xattrs),
      size: node.kind === "reg" ? node.size : 0,
    };
    if (node.kind === "reg") {
      t.chunks = image.chunks(node).map((fc): FileChunk => ({ chunk: remapChunk(fc.chunk), fileOffset: fc.fileOffset }));
    } else if (node.kind === "symlink") {
      t.symlinkTarget = image.readlink(node);
    }
    return t;
  };

  const root = image.inode(image.superBlock.rootIno);
  const rootTree = convert(root);
  const onPath = new Set<number>([root.ino]);
  const fill = (dir: RafsInode, into: TreeInode): void => {
    const children: TreeEntry[] = [];
    for (const ent of image.readdir(dir)) {
      const child = image.inode(ent.ino);
      if (child.kind === "dir") {
        if (onPath.has(child.ino)) {
          throw new FormatError("RafsDirectory", "child", 0, `directory inode ${child.ino} contains itself`);
        }
        const sub = convert(child);
        onPath.add(child.ino);
        fill(child, sub);
        onPath.delete(child.ino);
        children.push({ name: ent.name, inode: sub });
      } else if (child.kind === "reg") {
        let shared = byIno.get(child.ino);
        if (!shared) {
          shared = convert(child);
          byIno.set(child.ino, shared);
        }
        children.push({ name: ent.name, inode: shared });
      } else {
        children.push({ name: ent.name, inode: convert(child) });
      }
    }
    into.children = children;
  };
  fill(root, rootTree);
  return rootTree;
}
