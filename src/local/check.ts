/**
 * `check`: validates a bootstrap the way nydusd and `nydus-image check` do, and with a
 * blob directory also every blob: its id (SHA-256 rule), its blob meta against the
 * blob table, its ToC, and the digest of every chunk. Stops at the first problem and
 * names it (struct/field/offset, path, blob id, chunk index).
 */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { openBlob } from "../blob/reader.ts";
import { BLOB_FEATURE_HAS_TOC, hasFeature } from "../blob/format.ts";
import { fileReaderAt } from "../io/reader_at.ts";
import { DigestMismatchError, NotFoundError } from "../internal/errors.ts";
import type { ChunkInfo, RafsImage } from "../rafs/model.ts";
import { walkRafs } from "../rafs/open.ts";
import { chunkInfoFromRecord } from "../rafs/chunk_record.ts";
import type { RafsV5Image } from "../rafs/v5_reader.ts";
import { verifyRafsV5Digests } from "../rafs/v5_verify.ts";
import { ChunkSource, checkBlobFileName } from "./chunk_source.ts";
import type { RafsV6Image } from "../rafs/v6_reader.ts";

export interface CheckReport {
  version: 5 | 6;
  nodes: number;
  files: number;
  /** Distinct chunks referenced by the tree. */
  chunks: number;
  blobs: { blobId: string; chunks: number; verified: boolean }[];
}

export interface CheckOptions {
  /** Directory holding the blobs, named by blob id; without it only metadata is checked. */
  blobDir?: string;
}

/**
 * Checks an image; resolves with a report, or rejects with the first problem found
 * (FormatError, DigestMismatchError, NotFoundError).
 */
export async function checkImage(image: RafsImage, options: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = { version: image.superBlock.version, nodes: 0, files: 0, chunks: 0, blobs: [] };
  // Each distinct chunk with the first place that uses it (for v5 data checks and error messages).
  const distinct = new Map<string, { chunk: ChunkInfo; path: string; fileOffset: number }>();
  for (const { path: p, inode } of walkRafs(image)) {
    report.nodes++;
    if (inode.kind === "reg") {
      report.files++;
      for (const { chunk, fileOffset } of image.chunks(inode)) {
        const key = `${chunk.blobIndex}:${chunk.index}:${chunk.compressedOffset}`;
        if (!distinct.has(key)) distinct.set(key, { chunk, path: p, fileOffset });
      }
    } else if (inode.kind === "symlink") {
      image.readlink(inode);
    }
  }
  report.chunks = distinct.size;
  if (image.superBlock.version === 5) verifyRafsV5Digests(image as RafsV5Image);
  if (!options.blobDir) return report;

  const blobPath = (blobId: string) => {
    checkBlobFileName(blobId); // a hostile bootstrap must not name "../x"
    const p = path.join(options.blobDir!, blobId);
    if (!fs.existsSync(p)) throw new NotFoundError(`blob "${blobId}" in "${options.blobDir}"`, "no such file");
    return p;
  };
  if (image.superBlock.version === 6) {
    const v6 = image as RafsV6Image;
    for (const [i, info] of image.blobs.entries()) {
      const reader = await fileReaderAt(blobPath(info.blobId));
      try {
        const blob = await openBlob(reader, info);
        const toc = hasFeature(info.features, BLOB_FEATURE_HAS_TOC) ? await blob.readToc() : undefined;
        if (toc) await blob.verifyToc(toc);
        let n = 0;
        for (const rec of v6.chunkRecords) {
          if (rec.blobIndex !== i) continue;
          await blob.verifyChunk(chunkInfoFromRecord(rec), rec.blockId, image.superBlock.digester);
          n++;
        }
        // Last, so that a damaged chunk is reported as that chunk rather than as a wrong blob id.
        await blob.verifyBlobId(toc);
        report.blobs.push({ blobId: info.blobId, chunks: n, verified: true });
      } finally {
        await reader.close();
      }
    }
    return report;
  }

  // v5: blob id = SHA-256 of the blob file; every distinct chunk read (bounds-checked),
  // decompressed and verified against its record by the same ChunkSource that unpack uses.
  for (const info of image.blobs) {
    const p = blobPath(info.blobId);
    const actual = await sha256File(p);
    if (actual !== info.blobId) throw new DigestMismatchError(`blob "${p}"`, info.blobId, actual);
  }
  const source = new ChunkSource(image, { blobDir: options.blobDir });
  const perBlob = image.blobs.map(() => 0);
  try {
    for (const { chunk, path: p, fileOffset } of distinct.values()) {
      await source.read(chunk, { path: p, fileOffset });
      perBlob[chunk.blobIndex]!++;
    }
  } finally {
    await source.close();
  }
  image.blobs.forEach((info, i) => report.blobs.push({ blobId: info.blobId, chunks: perBlob[i]!, verified: true }));
  return report;
}

/** Lowercase hex SHA-256 of a file, streamed. */
async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash("sha256");
  for await (const piece of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(piece as Buffer);
  return h.digest("hex");
}
