/**
 * `create`: one layer (a tar stream or a directory) → one data blob + one RAFS v6
 * bootstrap, optionally on top of a parent bootstrap and reusing chunks of chunk
 * dictionaries (spec §3.15, §9.3).
 *
 * @example
 * const r = await buildLayer({ type: "tar", stream: fs.createReadStream("layer.tar") }, { blobDir: "blobs" });
 * await fs.promises.writeFile("image.boot", r.bootstrap);
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { BlobWriter } from "../blob/writer.ts";
import type { BuildCompressor } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { DEFAULT_CHUNK_SIZE, isValidChunkSize } from "../rafs/format.ts";
import type { BlobInfo, ChunkInfo, RafsImage, TreeEntry } from "../rafs/model.ts";
import { walkRafs } from "../rafs/open.ts";
import { writeBootstrapV6 } from "../rafs/v6_writer.ts";
import { readTar } from "../tar/reader.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { BlobTable, compactBlobs } from "./blob_table.ts";
import { ChunkStore, type ChunkStats } from "./chunk_store.ts";
import { treeFromDirectory } from "./dir_source.ts";
import { treeFromRafs } from "./from_rafs.ts";
import { applyLayer } from "./overlay.ts";
import { ROOT_NAME, buildTreeFromTar } from "./tree.ts";

/** Where a layer comes from: an (uncompressed) tar stream, or a directory. */
export type BuildSource = { type: "tar"; stream: AsyncIterable<Uint8Array> } | { type: "dir"; path: string };

/** Options of {@link buildLayer}; defaults are upstream `nydus-image create`'s. */
export interface BuildOptions {
  /** Directory the blob is written to, named by its blob id. */
  blobDir: string;
  /** @default "zstd" */
  compressor?: BuildCompressor;
  /** @default "blake3" */
  digester?: DigesterName;
  /** Power of two, 4 KiB..16 MiB. @default 0x100000 */
  chunkSize?: number;
  /** Write a blob with tar headers, chunk digests and a ToC (`--features blob-toc`). @default false */
  blobToc?: boolean;
  /** Store uid/gid (false = upstream `--repeatable`). @default true */
  explicitUidGid?: boolean;
  /** Lower layers: the result is this layer merged onto it, and its chunks are reused. */
  parent?: RafsImage;
  /** Images whose chunks are referenced instead of stored again. */
  chunkDicts?: readonly RafsImage[];
  /** Absolute paths for the prefetch table. */
  prefetchPaths?: readonly string[];
  /** Whiteout convention of this layer. @default "oci" */
  whiteoutSpec?: WhiteoutSpec;
  /** Called with the number of file bytes consumed, as they are. */
  onProgress?: (bytes: number) => void;
  /**
   * Write the Nydus image layer format (`--blob-inline-meta --features blob-toc`): the
   * bootstrap is also stored inside the blob, and a blob file is written (named by the
   * SHA-256 of all its bytes) even when the layer has no file data. @default false
   */
  inlineBootstrap?: boolean;
}

/** What {@link buildLayer} produced. */
export interface BuildResult {
  /** The bootstrap bytes (the caller writes them where it wants). */
  bootstrap: Uint8Array;
  /** The final blob table of the bootstrap. */
  blobs: BlobInfo[];
  /**
   * This layer's new blob, absent when every chunk already existed (or there was no data).
   * With `inlineBootstrap`: its entry for a merged bootstrap (real id = layer digest hex).
   */
  blob?: BlobInfo;
  /** With `inlineBootstrap`: the blob file (always written), its SHA-256 hex and size. */
  layerBlob?: { digest: string; size: number };
  stats: ChunkStats;
  /**
   * The tree the bootstrap was written from: the same files, chunk blob indexes into `blobs`.
   * A merge may take it instead of reading the bootstrap back (`merge.ts` `preparedLayer`).
   */
  tree: TreeEntry;
}

/**
 * A file's bytes in pieces of up to `buffer.length`, read synchronously into one reused
 * buffer (the consumer copies each piece before asking for the next). One open per file
 * and no stream objects: per-file overhead dominates trees of many small files.
 */
async function* readFilePieces(file: Buffer, buffer: Uint8Array): AsyncGenerator<Uint8Array> {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) return;
      yield buffer.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Every chunk of an image, with blob indexes mapped into the build's table. */
function* imageChunks(image: RafsImage, remap: (i: number) => number): Generator<ChunkInfo> {
  for (const { inode } of walkRafs(image)) {
    if (inode.kind !== "reg") continue;
    for (const fc of image.chunks(inode)) yield { ...fc.chunk, blobIndex: remap(fc.chunk.blobIndex) };
  }
}

function checkCompatible(image: RafsImage, chunkSize: number, digester: DigesterName, what: string): void {
  if (image.superBlock.chunkSize !== chunkSize) {
    throw new InvalidInputError(`Cannot use ${what}: its chunk size 0x${image.superBlock.chunkSize.toString(16)} differs from 0x${chunkSize.toString(16)}`);
  }
  if (image.superBlock.digester !== digester) {
    throw new InvalidInputError(`Cannot use ${what}: its digester "${image.superBlock.digester}" differs from "${digester}"`);
  }
}

/**
 * Builds one layer. The blob is streamed to a temporary file in `blobDir` and
 * renamed to its blob id only when complete; on failure nothing is left behind.
 * @throws InvalidInputError, UnsafePathError, NotFoundError for bad input; FormatError for a bad parent/dictionary
 */
export async function buildLayer(source: BuildSource, options: BuildOptions): Promise<BuildResult> {
  const compressor = options.compressor ?? "zstd";
  const digester = options.digester ?? "blake3";
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!isValidChunkSize(chunkSize)) throw new RangeError(`Cannot use chunk size ${chunkSize}: expected a power of two in 0x1000..0x1000000`);

  const table = new BlobTable();
  let lower: TreeEntry | undefined;
  const known: ChunkInfo[] = [];
  if (options.parent) {
    checkCompatible(options.parent, chunkSize, digester, "the parent bootstrap");
    const remap = table.addAll(options.parent.blobs);
    lower = { name: ROOT_NAME, inode: treeFromRafs(options.parent, { remapBlob: remap }) };
    known.push(...imageChunks(options.parent, remap));
  }
  for (const dict of options.chunkDicts ?? []) {
    checkCompatible(dict, chunkSize, digester, "the chunk dictionary");
    known.push(...imageChunks(dict, table.addAll(dict.blobs)));
  }

  await fs.promises.mkdir(options.blobDir, { recursive: true });
  const tmp = path.join(options.blobDir, `.tmp-blob-${process.pid}-${crypto.randomUUID()}`);
  const inline = options.inlineBootstrap ?? false;
  const writer = new BlobWriter({ path: tmp, compressor, digester, chunkSize, blobToc: options.blobToc, inlineMeta: inline, blobIndex: table.blobs.length });
  try {
    const store = new ChunkStore(writer, digester, chunkSize, options.onProgress);
    store.addKnown(known);
    let layer: TreeEntry;
    if (source.type === "tar") {
      layer = await buildTreeFromTar(readTar(source.stream), {
        onFileData: (inode, body, size, p) => store.addFile(inode, body, size, p),
      });
    } else {
      const dir = await treeFromDirectory(source.path, { whiteoutSpec: options.whiteoutSpec, dropWhiteouts: !options.parent });
      const buffer = new Uint8Array(chunkSize);
      for (const f of dir.files) await store.addFile(f.inode, readFilePieces(f.hostPath, buffer), f.inode.size, f.path);
      layer = dir.root;
    }
    const blob = inline ? writer.sealMeta() : await writer.finishInto(options.blobDir);
    if (blob) {
      const idx = table.add(blob);
      if (idx !== writer.blobIndex) throw new InvalidInputError(`Cannot add blob ${blob.blobId}: it is already referenced by a lower layer`);
    }
    const merged = lower ? applyLayer(lower, layer, { whiteoutSpec: options.whiteoutSpec }) : layer;
    const blobs = compactBlobs(merged.inode, table.blobs, "table");
    const bootstrap = writeBootstrapV6(merged.inode, {
      blobs,
      chunkSize,
      compressor,
      digester,
      explicitUidGid: options.explicitUidGid ?? true,
      prefetchPaths: options.prefetchPaths,
    });
    if (!inline) return { bootstrap, blobs, blob, stats: store.stats, tree: merged };
    const done = await writer.finishInline(bootstrap, options.blobDir);
    return { bootstrap, blobs, blob: done.info, layerBlob: { digest: done.digest, size: done.size }, stats: store.stats, tree: merged };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
