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

/** Children in name order: the array itself when it is already sorted (trees usually are). */
function childrenInOrder(dir: TreeInode): readonly TreeEntry[] {
  const kids = dir.children ?? [];
  for (let i = 1; i < kids.length; i++) if (Buffer.compare(kids[i - 1]!.name, kids[i]!.name) > 0) return sortedChildren(dir);
  return kids;
}

/**
 * Regular-file inodes in index order (a hardlinked inode appears once per link), visited
 * lazily so that a caller may stop early; no paths are built.
 */
export function* regularFilesInIndexOrder(root: TreeInode): Generator<TreeInode, void, undefined> {
  const kids = childrenInOrder(root);
  for (const e of kids) if (e.inode.kind === "reg") yield e.inode;
  for (const e of kids) if (e.inode.kind === "dir") yield* regularFilesInIndexOrder(e.inode);
}
