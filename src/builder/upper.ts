/**
 * Upper layers in merge-ready form, so that a merge can combine an image's upper layers while
 * its bottom layer still builds, then lay the bottom layer *underneath* them: the work left
 * when the (usually largest) bottom layer arrives is a walk of that layer alone, not of every
 * upper entry.
 *
 * An {@link UpperTree} is a layer tree whose whiteouts are turned into marks: per directory,
 * whether it hides every lower child (opaque) and which lower names it hides. For any bottom
 * tree `base` and layers `a`, `b` (their whiteout semantics as in `overlay.ts`):
 *
 *     underlay(base, composeUpper(toUpper(a), toUpper(b)))  ≡  mergeLayers([base, a, b])
 *
 * the same entries, the same inode objects (hardlinks stay shared), children sorted by name
 * bytes, so the bootstrap written from either is byte for byte the same.
 *
 * Per directory, an upper applied onto a lower directory (absent when there is none, or when
 * a non-directory is below) yields: the lower children, unless the upper is opaque, minus
 * the hidden names; then each upper entry replaces the same-named one, a directory over a
 * directory merging recursively (and taking the upper attributes). Composing two uppers keeps
 * that form: see {@link composeUpper}. Every function here consumes its inputs.
 */
import { Buffer } from "node:buffer";
import { InvalidInputError } from "../internal/errors.ts";
import type { TreeEntry, TreeInode } from "../rafs/model.ts";
import { OVERLAYFS_OPAQUE_XATTR, type WhiteoutSpec, whiteoutTarget } from "../tar/whiteout.ts";
import { whiteoutKind } from "./overlay.ts";

/** What an upper directory hides of the layers below it. */
interface Hides {
  /** Every lower child (OCI `.wh..wh..opq`, overlayfs opaque directory). */
  opaque: boolean;
  /** Lower children by name (latin1 of the name bytes). */
  names: Set<string>;
}

/** One or more upper layers combined, whiteouts turned into marks. */
export interface UpperTree {
  /** The root directory (attributes of the topmost layer's root); children sorted by name bytes, no whiteouts. */
  readonly root: TreeInode;
  /** Directories of the tree that hide lower entries; others hide nothing. */
  readonly hides: Map<TreeInode, Hides>;
}

const keyOf = (name: Uint8Array): string => Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("latin1");

/** Name-byte order; small names compare faster here than through a native call. */
function compareNames(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Sorts `children` by name bytes unless they already are; refuses a name given twice. */
function sortedUnique(children: TreeEntry[], what: string): TreeEntry[] {
  let sorted = true;
  for (let i = 1; i < children.length && sorted; i++) if (compareNames(children[i - 1]!.name, children[i]!.name) >= 0) sorted = false;
  if (sorted) return children;
  children.sort((a, b) => compareNames(a.name, b.name));
  for (let i = 1; i < children.length; i++) {
    if (compareNames(children[i - 1]!.name, children[i]!.name) === 0) {
      throw new InvalidInputError(`Cannot merge ${what}: a directory holds "${Buffer.from(children[i]!.name).toString("utf8")}" twice`);
    }
  }
  return children;
}

/** Whether a (leading) name could be a whiteout at all: `.wh.` for OCI. Cheaper than decoding every name. */
function mayBeOciWhiteout(name: Uint8Array): boolean {
  return name.length >= 4 && name[0] === 0x2e && name[1] === 0x77 && name[2] === 0x68 && name[3] === 0x2e;
}

/**
 * Turns a layer tree (consumed) into upper form: whiteouts become marks of their directory
 * (an overlayfs opaque directory also loses its opaque xattr, as `applyLayer` drops it).
 * @param what names the layer in errors
 * @throws InvalidInputError when a directory holds a name twice
 */
export function toUpper(tree: TreeEntry, spec: WhiteoutSpec, what = "layer"): UpperTree {
  if (tree.inode.kind !== "dir") throw new TypeError("Cannot merge layers: both roots must be directories");
  const hides = new Map<TreeInode, Hides>();
  const stack: TreeInode[] = [tree.inode];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const children = sortedUnique(dir.children ?? [], what);
    let kept: TreeEntry[] | undefined; // a copy only once some child is dropped
    let marks: Hides | undefined;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      const kind = spec === "oci" && !mayBeOciWhiteout(c.name) ? undefined : whiteoutKind(c, spec);
      if (kind === undefined || kind === "overlayfs-opaque") {
        if (kind === "overlayfs-opaque") {
          c.inode.xattrs.delete(OVERLAYFS_OPAQUE_XATTR);
          const own = hides.get(c.inode);
          if (own) own.opaque = true;
          else hides.set(c.inode, { opaque: true, names: new Set() });
        }
        if (c.inode.kind === "dir") stack.push(c.inode);
        kept?.push(c);
        continue;
      }
      kept ??= children.slice(0, i);
      marks ??= { opaque: false, names: new Set() };
      if (kind === "oci-opaque") marks.opaque = true;
      else marks.names.add(keyOf(kind === "oci-removal" ? whiteoutTarget(c.name)! : c.name));
    }
    dir.children = kept ?? children;
    if (marks) {
      const own = hides.get(dir); // set when its parent found it overlayfs-opaque
      if (own) for (const n of marks.names) own.names.add(n);
      hides.set(dir, own ? { opaque: true, names: own.names } : marks);
    }
  }
  return { root: tree.inode, hides };
}

/**
 * Combines two upper forms, `lower` applied first: the result, applied onto any tree, gives
 * what applying `lower` then `upper` gives. Consumes both; the result shares their objects.
 */
export function composeUpper(lower: UpperTree, upper: UpperTree): UpperTree {
  const hides = lower.hides;
  for (const [dir, h] of upper.hides) hides.set(dir, h);
  composeDir(lower.root, upper.root, hides);
  return { root: upper.root, hides };
}

function composeDir(ld: TreeInode, ud: TreeInode, hides: Map<TreeInode, Hides>): void {
  const uh = hides.get(ud);
  const lh = hides.get(ld);
  hides.delete(ld);
  // An opaque upper directory shows nothing of the lower one: it is its own result.
  if (uh?.opaque) return;
  const names = new Set<string>(lh?.names);
  if (uh) for (const n of uh.names) names.add(n);
  const lk = ld.children!;
  const uk = ud.children!;
  const out: TreeEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < lk.length || j < uk.length) {
    const l = lk[i];
    const u = uk[j];
    const cmp = l === undefined ? 1 : u === undefined ? -1 : compareNames(l.name, u.name);
    if (cmp < 0) {
      if (!uh || !uh.names.has(keyOf(l!.name))) out.push(l!);
      i++;
      continue;
    }
    if (cmp === 0) {
      const hidden = uh !== undefined && uh.names.has(keyOf(l!.name));
      if (u!.inode.kind === "dir" && !hidden) {
        // Directory over directory: merge; over a non-directory: nothing below shows through.
        if (l!.inode.kind === "dir") composeDir(l!.inode, u!.inode, hides);
        else names.add(keyOf(u!.name));
      }
      i++;
    }
    out.push(u!);
    j++;
  }
  ud.children = out;
  const opaque = lh?.opaque ?? false;
  if (opaque || names.size > 0) hides.set(ud, { opaque, names });
  else hides.delete(ud);
}

/**
 * Lays `base` (the bottom layer, taken as is: its own whiteouts are ordinary entries) under
 * an upper form: the merged tree, root attributes of the topmost layer. Consumes both.
 * @param what names the bottom layer in errors
 */
export function underlay(base: TreeEntry, upper: UpperTree, what = "layer 0"): TreeEntry {
  if (base.inode.kind !== "dir" || upper.root.kind !== "dir") throw new TypeError("Cannot merge layers: both roots must be directories");
  baseOnly(base, what); // the parts no upper touches come out sorted too
  underlayDir(base.inode, upper.root, upper.hides);
  return { name: base.name, inode: upper.root };
}

function underlayDir(bd: TreeInode, ud: TreeInode, hides: Map<TreeInode, Hides>): void {
  const h = hides.get(ud);
  if (h?.opaque) return; // its children are final already
  const bk = bd.children ?? [];
  const uk = ud.children!;
  const out: TreeEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < bk.length || j < uk.length) {
    const b = bk[i];
    const u = uk[j];
    const cmp = b === undefined ? 1 : u === undefined ? -1 : compareNames(b.name, u.name);
    if (cmp < 0) {
      if (!h || !h.names.has(keyOf(b!.name))) out.push(b!);
      i++;
      continue;
    }
    if (cmp === 0) {
      if (u!.inode.kind === "dir" && b!.inode.kind === "dir" && !(h && h.names.has(keyOf(b!.name)))) underlayDir(b!.inode, u!.inode, hides);
      i++;
    }
    out.push(u!);
    j++;
  }
  ud.children = out;
}

/** The bottom layer alone, as a merge of one layer gives it: children sorted. */
export function baseOnly(base: TreeEntry, what = "layer 0"): TreeEntry {
  const stack: TreeInode[] = [base.inode];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    dir.children = sortedUnique(dir.children ?? [], what);
    for (const c of dir.children) if (c.inode.kind === "dir") stack.push(c.inode);
  }
  return base;
}
