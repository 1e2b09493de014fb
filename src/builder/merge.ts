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
import { BlobTable, compactBlobs } from "./blob_table.ts";
import { treeFromRafs } from "./from_rafs.ts";
import { mergeLayers } from "./overlay.ts";
import { ROOT_NAME } from "./tree.ts";

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
  const blobs = image.blobs.map((b) => {
    if (b.blobId !== INLINE_BLOB_ID_PLACEHOLDER) return b;
    if (!ownBlob) throw new InvalidInputError(`Cannot merge ${what}: it references its own inline-meta blob but no blob id was given for it`);
    return ownBlob;
  });
  return { superBlock: image.superBlock, blobs, tree: { name: ROOT_NAME, inode: treeFromRafs(image) } };
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

/**
 * Merges prepared layers, bottom layer first; consumes their trees.
 * @throws InvalidInputError when layers disagree on chunk size, digester or explicit uid/gid
 */
export function mergePrepared(layers: readonly PreparedLayer[], options: Omit<MergeOptions, "layerBlobs"> = {}): MergeResult {
  if (layers.length === 0) throw new RangeError("Cannot merge: no bootstraps given");
  const first = layers[0]!.superBlock;
  layers.forEach((l, i) => {
    const sb = l.superBlock;
    const differs = (what: string, a: unknown, b: unknown) =>
      new InvalidInputError(`Cannot merge layer ${i}: its ${what} ${String(a)} differs from layer 0's ${String(b)}`);
    if (sb.chunkSize !== first.chunkSize) throw differs("chunk size", sb.chunkSize, first.chunkSize);
    if (sb.digester !== first.digester) throw differs("digester", sb.digester, first.digester);
    if (sb.explicitUidGid !== first.explicitUidGid) throw differs("explicit uid/gid setting", sb.explicitUidGid, first.explicitUidGid);
  });
  const table = new BlobTable();
  for (const l of layers) remapTree(l.tree, l.blobs.length, table.addAll(l.blobs));
  // The trees were made for this merge: it may change them in place.
  const merged = mergeLayers(
    layers.map((l) => l.tree),
    { whiteoutSpec: options.whiteoutSpec, consumeInputs: true },
  );
  const blobs = compactBlobs(merged.inode, table.blobs, "first-reference");
  const top = layers[layers.length - 1]!.superBlock;
  const bootstrap = writeBootstrapV6(merged.inode, {
    blobs,
    chunkSize: first.chunkSize,
    compressor: top.compressor,
    digester: first.digester,
    explicitUidGid: first.explicitUidGid,
    prefetchPaths: options.prefetchPaths,
  });
  return { bootstrap, blobs };
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
