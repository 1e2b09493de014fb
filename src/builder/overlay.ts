/**
 * Layer merge (spec §9.3, upstream `Tree::merge_overaly`): an upper layer tree applied onto
 * a lower tree with OCI or overlayfs whiteouts. Pure: the inputs are not modified; the result
 * shares no mutable object with them.
 *
 * Per directory, two passes over the upper children:
 * 1. whiteouts — OCI `.wh.NAME` deletes the lower NAME, `.wh..wh..opq` deletes every lower
 *    child; overlayfs char device 0:0 deletes the same-named lower entry, a directory with
 *    `trusted.overlay.opaque=y` empties the same-named lower directory (the xattr is dropped
 *    and the directory is then handled as an ordinary entry). Whiteouts are not copied.
 * 2. every other upper entry replaces the same-named lower entry (a non-directory drops the
 *    lower subtree; a directory over a directory keeps the lower children and takes the upper
 *    attributes) or is added; then upper directories are merged recursively (so whiteouts
 *    inside newly added directories are dropped too).
 *
 * Hardlinks: inodes shared inside the lower tree, or inside the upper tree, stay shared in
 * the result; an entry that is replaced or whited out simply stops referring to the shared
 * inode (its link count drops, which the writer derives from the references).
 */
import { Buffer } from "node:buffer";
import type { TreeEntry, TreeInode } from "../rafs/model.ts";
import { OVERLAYFS_OPAQUE_XATTR, type WhiteoutSpec, isOpaque, whiteoutTarget } from "../tar/whiteout.ts";
import { cloneEntry, cloneTree, sortTree } from "./tree.ts";

export type { WhiteoutSpec } from "../tar/whiteout.ts";

/** Options of {@link applyLayer} and {@link mergeLayers}. */
export interface OverlayOptions {
  /** Whiteout convention of the upper layers. @default "oci" */
  whiteoutSpec?: WhiteoutSpec;
  /**
   * The caller hands over the input trees: the lower one (the first for {@link mergeLayers})
   * is changed in place instead of copied first, and the upper ones' inodes are moved into
   * the result instead of cloned. Copying a 25,000-entry tree per layer cost a third of a
   * merge. @default false
   */
  consumeInputs?: boolean;
}

/** What a tree entry means as a whiteout. */
export type WhiteoutKind = "oci-removal" | "oci-opaque" | "overlayfs-removal" | "overlayfs-opaque";

/**
 * Classifies an (upper-layer) entry as a whiteout under `spec`.
 *
 * @returns the whiteout kind, or undefined for an ordinary entry
 * @example
 * whiteoutKind({ name: new TextEncoder().encode(".wh.a"), inode }, "oci"); // "oci-removal"
 */
export function whiteoutKind(entry: TreeEntry, spec: WhiteoutSpec): WhiteoutKind | undefined {
  const { inode } = entry;
  if (spec === "oci") {
    if (isOpaque(entry.name)) return "oci-opaque";
    if (whiteoutTarget(entry.name) !== undefined) return "oci-removal";
  } else if (spec === "overlayfs") {
    if (inode.kind === "chr" && inode.rdevMajor === 0 && inode.rdevMinor === 0) return "overlayfs-removal";
    if (inode.kind === "dir" && isOverlayfsOpaqueValue(inode.xattrs.get(OVERLAYFS_OPAQUE_XATTR))) {
      return "overlayfs-opaque";
    }
  }
  return undefined;
}

function isOverlayfsOpaqueValue(v: Uint8Array | undefined): boolean {
  return v !== undefined && v.length === 1 && v[0] === 0x79; // "y"
}

function keyOf(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("latin1");
}

/** Attributes of `upper` on a fresh directory inode holding `children`. */
function dirWithChildren(upper: TreeInode, children: TreeEntry[], dropOpaqueXattr: boolean): TreeInode {
  const xattrs = new Map(upper.xattrs);
  if (dropOpaqueXattr) xattrs.delete(OVERLAYFS_OPAQUE_XATTR);
  const { children: _ignored, chunks: _none, symlinkTarget: _no, ...attrs } = upper;
  return { ...attrs, xattrs, children };
}

/**
 * Applies one upper layer onto a lower tree.
 *
 * @param lower the lower (already merged) tree; not modified
 * @param upper the upper layer's tree, whiteouts included; not modified
 * @param options see {@link OverlayOptions}
 * @returns a new merged tree (root name "/", upper root attributes), children sorted by name bytes
 * @example
 * const merged = applyLayer(baseTree, layer1Tree, { whiteoutSpec: "oci" });
 */
export function applyLayer(lower: TreeEntry, upper: TreeEntry, options: OverlayOptions = {}): TreeEntry {
  const spec = options.whiteoutSpec ?? "oci";
  const result = options.consumeInputs ? { name: lower.name, inode: lower.inode } : cloneTree(lower);
  // A consumed upper's inodes move as they are (hardlinks stay shared); otherwise each is
  // cloned once, the map keeping hardlinked ones shared in the result.
  const upperSeen = options.consumeInputs ? undefined : new Map<TreeInode, TreeInode>();
  if (upper.inode.kind !== "dir" || result.inode.kind !== "dir") {
    throw new TypeError("Cannot merge layers: both roots must be directories");
  }
  result.inode = dirWithChildren(upper.inode, result.inode.children ?? [], false);
  mergeChildren(result.inode, upper.inode, spec, upperSeen);
  sortTree(result);
  return result;
}

function mergeChildren(
  target: TreeInode,
  upperDir: TreeInode,
  spec: WhiteoutSpec,
  upperSeen: Map<TreeInode, TreeInode> | undefined,
): void {
  const children = target.children!;
  const index = new Map(children.map((c) => [keyOf(c.name), c]));
  const remove = (key: string): void => {
    const e = index.get(key);
    if (!e) return;
    index.delete(key);
    children.splice(children.indexOf(e), 1);
  };

  // Pass 1: whiteouts.
  const modified: { entry: TreeEntry; opaque: boolean }[] = [];
  for (const u of upperDir.children ?? []) {
    const kind = whiteoutKind(u, spec);
    switch (kind) {
      case "oci-removal":
        remove(keyOf(whiteoutTarget(u.name)!));
        break;
      case "oci-opaque":
        children.length = 0;
        index.clear();
        break;
      case "overlayfs-removal":
        remove(keyOf(u.name));
        break;
      case "overlayfs-opaque": {
        const lowerDir = index.get(keyOf(u.name));
        if (lowerDir?.inode.children) lowerDir.inode.children = [];
        modified.push({ entry: u, opaque: true });
        break;
      }
      default:
        modified.push({ entry: u, opaque: false });
    }
  }

  // Pass 2: additions and replacements, then recurse into upper directories.
  const dirs: [TreeInode, TreeInode][] = [];
  for (const { entry: u, opaque } of modified) {
    const key = keyOf(u.name);
    const existing = index.get(key);
    let inode: TreeInode;
    if (u.inode.kind === "dir") {
      const keep = existing && existing.inode.kind === "dir" ? existing.inode.children ?? [] : [];
      inode = dirWithChildren(u.inode, keep, opaque);
      dirs.push([inode, u.inode]);
    } else {
      inode = upperSeen ? cloneEntry(u, upperSeen).inode : u.inode;
    }
    if (existing) {
      existing.inode = inode;
    } else {
      const entry: TreeEntry = { name: u.name, inode };
      index.set(key, entry);
      children.push(entry);
    }
  }
  for (const [dst, src] of dirs) mergeChildren(dst, src, spec, upperSeen);
}

/**
 * Merges layers bottom-up: the first tree is taken as is (its whiteouts are not processed,
 * as `nydus-image merge` does), each later one is applied with {@link applyLayer}.
 *
 * @param layers layer trees, lowest first; not modified unless `options.consumeInputs` hands them over
 * @throws {RangeError} when `layers` is empty
 * @example
 * const merged = mergeLayers([layer0, layer1, layer2]);
 */
export function mergeLayers(layers: readonly TreeEntry[], options: OverlayOptions = {}): TreeEntry {
  if (layers.length === 0) throw new RangeError("Cannot merge layers: no layers given");
  let tree = options.consumeInputs ? layers[0]! : cloneTree(layers[0]!);
  sortTree(tree);
  for (const upper of layers.slice(1)) {
    // The running tree is ours to change; the upper is the caller's unless handed over.
    tree = options.consumeInputs ? applyLayer(tree, upper, options) : applyLayer(tree, cloneTree(upper), { ...options, consumeInputs: true });
  }
  return tree;
}
