/**
 * `merge`: N layer bootstraps (bottom first) → one bootstrap, as `nydus-image merge`
 * does (spec §9.3): the first layer is taken as is, each later one is applied with
 * OCI (or overlayfs) whiteout semantics; the blob table holds only referenced blobs,
 * in order of first reference in traversal order.
 */
import { INLINE_BLOB_ID_PLACEHOLDER } from "../blob/writer.ts";
import { InvalidInputError } from "../internal/errors.ts";
import type { BlobInfo, RafsImage } from "../rafs/model.ts";
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
 * Merges decoded layer bootstraps, bottom layer first.
 * @throws InvalidInputError when layers disagree on chunk size, digester or explicit uid/gid
 */
export function mergeBootstraps(layers: readonly RafsImage[], options: MergeOptions = {}): MergeResult {
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
  const blobsOf = (l: RafsImage, i: number): readonly BlobInfo[] =>
    l.blobs.map((b) => {
      if (b.blobId !== INLINE_BLOB_ID_PLACEHOLDER) return b;
      const real = options.layerBlobs?.[i];
      if (!real) throw new InvalidInputError(`Cannot merge layer ${i}: it references its own inline-meta blob but no blob id was given for it`);
      return real;
    });
  const trees = layers.map((l, i) => ({ name: ROOT_NAME, inode: treeFromRafs(l, { remapBlob: table.addAll(blobsOf(l, i)) }) }));
  // The trees were just made from the bootstraps: the merge may change them in place.
  const merged = mergeLayers(trees, { whiteoutSpec: options.whiteoutSpec, consumeInputs: true });
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
