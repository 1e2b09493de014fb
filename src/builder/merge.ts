/**
 * `merge`: N layer bootstraps (bottom first) → one bootstrap, as `nydus-image merge`
 * does (spec §9.3): the first layer is taken as is, each later one is applied with
 * OCI (or overlayfs) whiteout semantics; the blob table holds only referenced blobs,
 * in order of first reference in traversal order.
 */
import { INLINE_BLOB_ID_PLACEHOLDER } from "../blob/writer.ts";
import { InvalidInputError } from "../internal/errors.ts";
import type { BlobInfo, ChunkInfo, RafsImage, RafsSuperInfo, TreeEntry, TreeInode } from "../rafs/model.ts";
import { writeBootstrapV6 } from "../rafs/v6_writer.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { MAX_BLOBS } from "../rafs/format.ts";
import { treeFromRafs } from "./from_rafs.ts";
import { regularFilesInIndexOrder } from "./order.ts";
import { ROOT_NAME } from "./tree.ts";
import { baseOnly, composeUpper, toUpper, underlay, type UpperTree } from "./upper.ts";

export interface MergeOptions {
  /** Absolute paths for the prefetch table. */
  prefetchPaths?: readonly string[];
  /** Whiteout convention of the layers. @default "oci" */
  whiteoutSpec?: WhiteoutSpec;
  /**
   * Per layer, the entry replacing the blob whose id is the inline-meta placeholder: a
   * bootstrap embedded in its own blob cannot know that blob's id, so the caller supplies
   * it (upstream names the layer bootstrap file after the layer digest for this).
   */
  layerBlobs?: readonly (BlobInfo | undefined)[];
}

export interface MergeResult {
  bootstrap: Uint8Array;
  blobs: BlobInfo[];
}

/**
 * One layer made ready for {@link mergePrepared}: its tree (chunk blob indexes still those
 * of its own blob table) and that table. Preparing is most of a merge's reading, so a
 * converter prepares each layer as soon as it is built, while later layers still build.
 */
export interface PreparedLayer {
  readonly superBlock: RafsSuperInfo;
  /** The layer's blob table, the inline-meta placeholder replaced by its real entry. */
  readonly blobs: readonly BlobInfo[];
  /** The layer's tree; {@link mergePrepared} consumes it. */
  readonly tree: TreeEntry;
}

/**
 * Prepares one layer bootstrap for a merge.
 * @param ownBlob the entry replacing the blob whose id is the inline-meta placeholder (see
 *   {@link MergeOptions.layerBlobs}); `what` names the layer in errors
 */
export function prepareLayer(image: RafsImage, ownBlob?: BlobInfo, what = "layer"): PreparedLayer {
  const blobs = withOwnBlob(image.blobs, ownBlob, what);
  return { superBlock: image.superBlock, blobs, tree: { name: ROOT_NAME, inode: treeFromRafs(image) } };
}

/**
 * A layer prepared from the tree its bootstrap was written from (`BuildResult.tree` and
 * `.blobs`) instead of by reading the bootstrap back: the same merge, without decoding it.
 * The tree is consumed. `superBlock` is the bootstrap's (`openRafs(bootstrap).superBlock`).
 */
export function preparedLayer(superBlock: RafsSuperInfo, blobs: readonly BlobInfo[], tree: TreeEntry, ownBlob?: BlobInfo, what = "layer"): PreparedLayer {
  return { superBlock, blobs: withOwnBlob(blobs, ownBlob, what), tree: { name: ROOT_NAME, inode: tree.inode } };
}

function withOwnBlob(blobs: readonly BlobInfo[], ownBlob: BlobInfo | undefined, what: string): BlobInfo[] {
  return blobs.map((b) => {
    if (b.blobId !== INLINE_BLOB_ID_PLACEHOLDER) return b;
    if (!ownBlob) throw new InvalidInputError(`Cannot merge ${what}: it references its own inline-meta blob but no blob id was given for it`);
    return ownBlob;
  });
}

/** Rewrites the chunk blob indexes of a prepared tree into the merged table's. */
function remapTree(tree: TreeEntry, blobCount: number, remap: (i: number) => number): void {
  let identity = true;
  for (let i = 0; i < blobCount; i++) if (remap(i) !== i) identity = false;
  if (identity) return; // e.g. the bottom layer
  const done = new Map<ChunkInfo, ChunkInfo>();
  const seen = new Set<TreeInode>();
  const dirs: TreeInode[] = [tree.inode];
  while (dirs.length > 0) {
    for (const { inode } of dirs.pop()!.children ?? []) {
      if (inode.kind === "dir") dirs.push(inode);
      if (inode.kind !== "reg" || !inode.chunks || seen.has(inode)) continue;
      seen.add(inode); // hardlinks share the inode
      inode.chunks = inode.chunks.map((fc) => {
        let c = done.get(fc.chunk);
        if (!c) {
          const idx = remap(fc.chunk.blobIndex);
          c = idx === fc.chunk.blobIndex ? fc.chunk : { ...fc.chunk, blobIndex: idx };
          done.set(fc.chunk, c);
        }
        return c === fc.chunk ? fc : { chunk: c, fileOffset: fc.fileOffset };
      });
    }
  }
}

/** Chunk blob indexes of upper layers while they wait for the bottom one: above any table's own. */
const UPPER_BLOB_BASE = 2 ** 24;

/**
 * A merge fed one prepared layer at a time, in any order (a converter hands each layer over
 * as soon as it is built). Upper layers (all but the bottom one) that are adjacent are combined
 * as they arrive (`upper.ts`); the bottom layer is then laid underneath, so that when the
 * largest layer comes last only its own entries are walked. The result is byte for byte
 * {@link mergePrepared}'s of the same layers.
 */
export class LayerMerge {
  private readonly spec: WhiteoutSpec;
  private readonly superBlocks: RafsSuperInfo[] = [];
  private base: PreparedLayer | undefined;
  /** Combined upper layers from..to, disjoint, any order. */
  private readonly runs: { from: number; to: number; upper: UpperTree }[] = [];
  /** Blobs of the upper layers by id (index + UPPER_BLOB_BASE in chunks), each from the lowest layer naming it. */
  private readonly upperBlobs: { info: BlobInfo; layer: number }[] = [];
  private readonly upperBlobIndex = new Map<string, number>();
  /** The first error of {@link add}, reported by {@link finish} after the layer checks. */
  private failure: { error: unknown } | undefined;

  constructor(options: { whiteoutSpec?: WhiteoutSpec } = {}) {
    this.spec = options.whiteoutSpec ?? "oci";
  }

  /** Hands over layer `index` (its tree is consumed); `what` names it in errors. */
  add(index: number, layer: PreparedLayer, what = `layer ${index}`): void {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`Cannot merge layer ${index}: not a layer index`);
    if (this.superBlocks[index]) throw new RangeError(`Cannot merge layer ${index}: it was given twice`);
    this.superBlocks[index] = layer.superBlock;
    if (this.failure) return;
    try {
      if (index === 0) {
        this.base = layer;
        return;
      }
      const map = layer.blobs.map((b) => this.addUpperBlob(b, index));
      remapTree(layer.tree, layer.blobs.length, (i) => {
        const m = map[i];
        if (m === undefined) throw new InvalidInputError(`Cannot remap blob index ${i}: the image has ${layer.blobs.length} blobs`);
        return m;
      });
      let run = { from: index, to: index, upper: toUpper(layer.tree, this.spec, what) };
      const below = this.runs.findIndex((r) => r.to === index - 1);
      if (below >= 0) {
        const [b] = this.runs.splice(below, 1);
        run = { from: b!.from, to: index, upper: composeUpper(b!.upper, run.upper) };
      }
      const above = this.runs.findIndex((r) => r.from === index + 1);
      if (above >= 0) {
        const [a] = this.runs.splice(above, 1);
        run = { from: run.from, to: a!.to, upper: composeUpper(run.upper, a!.upper) };
      }
      this.runs.push(run);
    } catch (error) {
      this.failure = { error };
    }
  }

  private addUpperBlob(blob: BlobInfo, layer: number): number {
    const known = this.upperBlobIndex.get(blob.blobId);
    if (known !== undefined) {
      const entry = this.upperBlobs[known]!;
      if (layer < entry.layer) this.upperBlobs[known] = { info: blob, layer };
      return known + UPPER_BLOB_BASE;
    }
    this.upperBlobs.push({ info: blob, layer });
    this.upperBlobIndex.set(blob.blobId, this.upperBlobs.length - 1);
    return this.upperBlobs.length - 1 + UPPER_BLOB_BASE;
  }

  /**
   * Merges layers 0..count-1, all handed over before, and writes the bootstrap. Ends the merge.
   * @throws InvalidInputError when layers disagree on chunk size, digester or explicit uid/gid
   */
  finish(count: number, options: Omit<MergeOptions, "layerBlobs" | "whiteoutSpec"> = {}): MergeResult {
    if (count === 0) throw new RangeError("Cannot merge: no bootstraps given");
    const supers = Array.from({ length: count }, (_, i) => {
      const sb = this.superBlocks[i];
      if (!sb) throw new RangeError(`Cannot merge: layer ${i} was never given`);
      return sb;
    });
    if (this.superBlocks.length > count) throw new RangeError(`Cannot merge ${count} layers: layer ${this.superBlocks.length - 1} was given too`);
    const first = supers[0]!;
    supers.forEach((sb, i) => {
      const differs = (what: string, a: unknown, b: unknown) =>
        new InvalidInputError(`Cannot merge layer ${i}: its ${what} ${String(a)} differs from layer 0's ${String(b)}`);
      if (sb.chunkSize !== first.chunkSize) throw differs("chunk size", sb.chunkSize, first.chunkSize);
      if (sb.digester !== first.digester) throw differs("digester", sb.digester, first.digester);
      if (sb.explicitUidGid !== first.explicitUidGid) throw differs("explicit uid/gid setting", sb.explicitUidGid, first.explicitUidGid);
    });
    if (this.failure) throw this.failure.error;
    const base = this.base!;
    if (base.blobs.length >= UPPER_BLOB_BASE) throw new InvalidInputError(`Cannot merge layer 0: ${base.blobs.length} blobs`);
    const merged = count === 1 ? baseOnly(base.tree) : underlay(base.tree, this.runs[0]!.upper);
    this.runs.length = 0;
    const { blobs, map } = this.compactBlobs(merged.inode, base.blobs);
    const bootstrap = writeBootstrapV6(merged.inode, {
      blobs,
      blobIndexMap: map,
      chunkSize: first.chunkSize,
      compressor: supers[count - 1]!.compressor,
      digester: first.digester,
      explicitUidGid: first.explicitUidGid,
      prefetchPaths: options.prefetchPaths,
    });
    return { bootstrap, blobs };
  }

  /**
   * The merged blob table: the referenced blobs in order of first reference in traversal
   * order (one entry per blob id, from the lowest layer naming it), and the map from the
   * chunks' blob indexes to it (the writer renumbers as it writes: no chunk is rewritten).
   */
  private compactBlobs(root: TreeInode, baseBlobs: readonly BlobInfo[]): { blobs: BlobInfo[]; map: Map<number, number> } {
    const baseIndex = new Map<string, number>();
    baseBlobs.forEach((b, i) => {
      if (!baseIndex.has(b.blobId)) baseIndex.set(b.blobId, i);
    });
    const map = new Map<number, number>(); // chunk blob index -> final index
    const byId = new Map<string, number>();
    const blobs: BlobInfo[] = [];
    const total = baseBlobs.length + this.upperBlobs.length;
    scan: for (const f of regularFilesInIndexOrder(root)) {
      for (const c of f.chunks ?? []) {
        const raw = c.chunk.blobIndex;
        if (map.has(raw)) continue;
        const b = raw >= UPPER_BLOB_BASE ? this.upperBlobs[raw - UPPER_BLOB_BASE]?.info : baseBlobs[raw];
        if (!b) throw new InvalidInputError(`Cannot remap blob index ${raw}: the image has ${baseBlobs.length} blobs`);
        let idx = byId.get(b.blobId);
        if (idx === undefined) {
          idx = blobs.length;
          byId.set(b.blobId, idx);
          const own = baseIndex.get(b.blobId);
          blobs.push(own !== undefined ? baseBlobs[own]! : this.upperBlobs[this.upperBlobIndex.get(b.blobId)!]!.info);
        }
        map.set(raw, idx);
        // Once every index is seen the order is known; the writer checks the chunks not visited.
        if (map.size === total) break scan;
      }
    }
    if (blobs.length > MAX_BLOBS) throw new InvalidInputError(`Cannot reference ${blobs.length} blobs: RAFS v6 allows at most ${MAX_BLOBS}`);
    return { blobs, map };
  }
}

/**
 * Merges prepared layers, bottom layer first; consumes their trees.
 * @throws InvalidInputError when layers disagree on chunk size, digester or explicit uid/gid
 */
export function mergePrepared(layers: readonly PreparedLayer[], options: Omit<MergeOptions, "layerBlobs"> = {}): MergeResult {
  if (layers.length === 0) throw new RangeError("Cannot merge: no bootstraps given");
  const merge = new LayerMerge({ whiteoutSpec: options.whiteoutSpec });
  layers.forEach((l, i) => merge.add(i, l));
  return merge.finish(layers.length, options);
}

/**
 * Merges decoded layer bootstraps, bottom layer first.
 * @throws InvalidInputError when layers disagree on chunk size, digester or explicit uid/gid
 */
export function mergeBootstraps(layers: readonly RafsImage[], options: MergeOptions = {}): MergeResult {
  return mergePrepared(
    layers.map((l, i) => prepareLayer(l, options.layerBlobs?.[i], `layer ${i}`)),
    options,
  );
}
