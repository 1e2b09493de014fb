/**
 * An independent, deliberately simple overlay (OCI layer) merge over texture specs: the expected
 * merged tree for whiteout / opaque / replace / hardlink tests.
 *
 * Semantics (OCI image spec, matches overlayfs and upstream nydus merge):
 * - per layer, whiteouts first act on the tree built from the lower layers: `whiteout(p)` removes p
 *   and its subtree; `opaque(d)` removes every lower child of d;
 * - then each entry replaces the same path: dir over dir keeps the lower children (attributes from
 *   the upper); anything else drops the lower node and its subtree;
 * - hard links are per layer: a file replaced in an upper layer no longer shares its inode with lower
 *   links to the old file. nlink of the merged tree counts the surviving links.
 *
 * @example
 * const merged = mergeLayers(layeredTextures());
 * assertSnapshotsEqual(await snapshotTree(mnt), snapshotFromSpec(merged));
 */
import {
  type Attrs,
  type EntrySpec,
  type LayerSpec,
  DEFAULT_MTIME,
  normalizeLayer,
} from "../textures/spec.ts";

interface Node {
  /** The concrete entry (never hardlink/whiteout/opaque). */
  entry: Exclude<EntrySpec, { type: "hardlink" | "whiteout" | "opaque" }>;
  /** Identity of the inode: shared by hard links of the same layer. */
  inode: object;
}

function withDefaults<T extends Attrs>(e: T, defMtime: number): T {
  return { ...e, mtime: e.mtime ?? defMtime };
}

function isBelow(p: string, parent: string): boolean {
  return p.startsWith(parent + "/");
}

/** Merges layers bottom-first into one LayerSpec (no whiteouts; hard links as hardlink entries). */
export function mergeLayers(layers: readonly LayerSpec[]): LayerSpec {
  const tree = new Map<string, Node>();
  let root: Attrs = {};
  let rootMtime = DEFAULT_MTIME;
  const removeSubtree = (p: string, includeSelf: boolean) => {
    for (const k of [...tree.keys()]) if ((includeSelf && k === p) || isBelow(k, p)) tree.delete(k);
  };
  for (const raw of layers) {
    const layer = normalizeLayer(raw);
    const defMtime = layer.defaultMtime ?? DEFAULT_MTIME;
    // whiteouts and opaque markers act on the lower tree only
    for (const e of layer.entries) {
      if (e.type === "whiteout") removeSubtree(e.path, true);
      if (e.type === "opaque") removeSubtree(e.path, false);
    }
    // the root directory: upper attributes win
    root = layer.root ?? {};
    rootMtime = layer.root?.mtime ?? defMtime;
    const layerNodes = new Map<string, Node>();
    for (const e of layer.entries) {
      if (e.type === "whiteout" || e.type === "opaque") continue;
      let node: Node;
      if (e.type === "hardlink") {
        const target = layerNodes.get(e.target);
        if (!target || target.entry.type !== "file") throw new RangeError(`Cannot merge hardlink "${e.path}": target "${e.target}" is not a file of layer ${layer.name}`);
        node = { entry: { ...target.entry, path: e.path }, inode: target.inode };
      } else {
        node = { entry: withDefaults(e, defMtime), inode: {} };
      }
      layerNodes.set(e.path, node);
      const lower = tree.get(e.path);
      if (lower && !(lower.entry.type === "dir" && node.entry.type === "dir")) removeSubtree(e.path, true);
      // a lower non-directory where this layer has a parent directory is replaced by that directory
      tree.set(e.path, node);
    }
  }
  // Emit in path order; the first path of each inode carries the data, the others become hard links.
  const paths = [...tree.keys()].sort(compareParentsFirst);
  const firstOf = new Map<object, string>();
  for (const p of [...paths].sort()) {
    const n = tree.get(p)!;
    if (!firstOf.has(n.inode)) firstOf.set(n.inode, p);
  }
  const entries: EntrySpec[] = [];
  // data-carrying entries first (parents-first order), then hardlinks (targets must precede them)
  for (const p of paths) {
    const n = tree.get(p)!;
    if (firstOf.get(n.inode) === p) {
      entries.push({ ...n.entry, path: p });
    }
  }
  for (const p of paths) {
    const n = tree.get(p)!;
    if (firstOf.get(n.inode) !== p) entries.push({ type: "hardlink", path: p, target: firstOf.get(n.inode)! });
  }
  return { name: "merged", root: { ...root, mtime: rootMtime }, entries, defaultMtime: DEFAULT_MTIME };
}

/** Sort so that a directory comes before its children ("a" < "a/b" < "a-b"). */
function compareParentsFirst(a: string, b: string): number {
  const pa = a.split("/");
  const pb = b.split("/");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}
