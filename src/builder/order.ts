/**
 * The traversal order of spec §3.14(b): every child of a directory (name-sorted)
 * is numbered before recursing into the child directories in order. The v6 writer,
 * blob ordering for merges and data dumps all use it.
 */
import type { TreeEntry, TreeInode } from "../rafs/model.ts";

/** Children sorted by name bytes (a new array; the tree is not modified). */
export function sortedChildren(dir: TreeInode): TreeEntry[] {
  return [...(dir.children ?? [])].sort((a, b) => Buffer.compare(a.name, b.name));
}

/** Yields [path, entry] for every entry below `root` in §3.14(b) order. */
export function* entriesInIndexOrder(root: TreeInode, rootPath = ""): Generator<[string, TreeEntry]> {
  // Depth-first over directories, but all of a directory's children come first.
  const kids = sortedChildren(root).map((e): [string, TreeEntry] => [`${rootPath}/${Buffer.from(e.name).toString("utf8")}`, e]);
  yield* kids;
  for (const [path, e] of kids) if (e.inode.kind === "dir") yield* entriesInIndexOrder(e.inode, path);
}

/** Regular-file inodes in index order (a hardlinked inode appears once per link). */
export function regularFilesInIndexOrder(root: TreeInode): TreeInode[] {
  const out: TreeInode[] = [];
  for (const [, e] of entriesInIndexOrder(root)) if (e.inode.kind === "reg") out.push(e.inode);
  return out;
}
