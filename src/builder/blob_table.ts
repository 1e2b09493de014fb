/**
 * Blob-table bookkeeping shared by `create` and `merge`: collecting blobs from
 * several bootstraps under one index space, and compacting the table to the blobs
 * that the final tree references (spec §9.3: order of first reference, or a given
 * order), rewriting every chunk's blob index.
 */
import { InvalidInputError } from "../internal/errors.ts";
import { MAX_BLOBS } from "../rafs/format.ts";
import type { BlobInfo, ChunkInfo, TreeInode } from "../rafs/model.ts";
import { regularFilesInIndexOrder } from "./order.ts";

/** Blobs from several sources, deduplicated by blob id. */
export class BlobTable {
  readonly blobs: BlobInfo[] = [];
  private readonly byId = new Map<string, number>();

  /** Adds `blob` (or finds it by id) and returns its index in this table. */
  add(blob: BlobInfo): number {
    const known = this.byId.get(blob.blobId);
    if (known !== undefined) return known;
    this.blobs.push(blob);
    this.byId.set(blob.blobId, this.blobs.length - 1);
    return this.blobs.length - 1;
  }

  /** Index mapping for a whole image's blob table. */
  addAll(blobs: readonly BlobInfo[]): (index: number) => number {
    const map = blobs.map((b) => this.add(b));
    return (i) => {
      const m = map[i];
      if (m === undefined) throw new InvalidInputError(`Cannot remap blob index ${i}: the image has ${blobs.length} blobs`);
      return m;
    };
  }
}

/**
 * Keeps only referenced blobs and renumbers chunk blob indexes in place.
 * @param order "first-reference": blobs ordered by first use in traversal order (merge);
 *              "table": keep the table order (create with a parent: parent blobs first)
 * @returns the final blob table
 */
export function compactBlobs(root: TreeInode, table: readonly BlobInfo[], order: "first-reference" | "table"): BlobInfo[] {
  // Table order needs no traversal order: any walk finds the referenced set.
  const files = order === "table" ? regularFilesUnordered(root) : regularFilesInIndexOrder(root);
  const firstUse: number[] = [];
  const seen = new Set<number>();
  scan: for (const f of files) {
    for (const c of f.chunks ?? []) {
      if (!seen.has(c.chunk.blobIndex)) {
        if (c.chunk.blobIndex < 0 || c.chunk.blobIndex >= table.length) {
          throw new InvalidInputError(`Cannot reference blob index ${c.chunk.blobIndex}: the blob table has ${table.length} entries`);
        }
        seen.add(c.chunk.blobIndex);
        firstUse.push(c.chunk.blobIndex);
        // Every index is valid (checked above), so once all are seen the order is known. The
        // v6 writer checks the indexes of the chunks not visited here.
        if (seen.size === table.length) break scan;
      }
    }
  }
  const kept = order === "table" ? [...seen].sort((a, b) => a - b) : firstUse;
  if (kept.length > MAX_BLOBS) throw new InvalidInputError(`Cannot reference ${kept.length} blobs: RAFS v6 allows at most ${MAX_BLOBS}`);
  if (kept.every((old, i) => old === i)) return kept.map((old) => table[old]!); // nothing moves
  const newIndex = new Map(kept.map((old, i) => [old, i]));
  const rewritten = new Map<ChunkInfo, ChunkInfo>();
  const done = new Set<TreeInode>();
  for (const f of regularFilesUnordered(root)) {
    if (done.has(f)) continue;
    done.add(f);
    f.chunks = f.chunks?.map((fc) => {
      let c = rewritten.get(fc.chunk);
      if (!c) {
        const idx = newIndex.get(fc.chunk.blobIndex)!;
        c = idx === fc.chunk.blobIndex ? fc.chunk : { ...fc.chunk, blobIndex: idx };
        rewritten.set(fc.chunk, c);
      }
      return { chunk: c, fileOffset: fc.fileOffset };
    });
  }
  return kept.map((old) => table[old]!);
}

/** Regular-file inodes in no particular order (each link once). */
function regularFilesUnordered(root: TreeInode): TreeInode[] {
  const out: TreeInode[] = [];
  const stack: TreeInode[] = [root];
  while (stack.length > 0) {
    for (const e of stack.pop()!.children ?? []) {
      if (e.inode.kind === "reg") out.push(e.inode);
      else if (e.inode.kind === "dir") stack.push(e.inode);
    }
  }
  return out;
}
