/**
 * Exporting a RAFS v6 image for the kernel EROFS driver, which cannot read Nydus-compressed
 * blobs (spec §4.2, §8.1):
 *
 * - {@link exportCacheViews}: per blob, the uncompressed blob-cache view `<blobId>.blob.data`
 *   (each chunk's plain bytes at its uncompressed offset, zeros elsewhere). Mount with one loop
 *   device per file: `mount -t erofs -o ro,device=/dev/loopB BOOTSTRAP-LOOP MNT`.
 * - {@link exportBlock}: one self-contained EROFS image, as upstream `nydus-image export --block`
 *   writes it: the bootstrap at 0, then each blob's view at its device slot's
 *   `mapped_blkaddr * 4096`. Mounted without `device=` options, the kernel (Linux ≥ 6.3,
 *   "flatdev") reads device *i* from the primary device at `mapped_blkaddr`, so
 *   `mount -t erofs -o ro,loop FILE MNT` works. When the slots' `mapped_blkaddr` do not describe
 *   a usable layout (0, overlapping the bootstrap or each other, too small), they are recomputed
 *   with upstream's rule (§3.4: 512 KiB alignment after the bootstrap) and written into the
 *   exported copy of the bootstrap; `relocated` reports it.
 *
 * Output is streamed chunk by chunk into a temporary file that is renamed into place at the end,
 * and every chunk of the chunk table is read back from the written file and checked against its
 * digest (what the kernel will read is what the bootstrap promises).
 */
import { randomUUID } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { openBlob, writeCacheView, type DataBlob } from "../blob/reader.ts";
import { crc32c, hash } from "../digest/hasher.ts";
import { alignUp, toHex } from "../internal/bytes.ts";
import { DigestMismatchError, FormatError, InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { fileReaderAt } from "../io/reader_at.ts";
import { chunkInfoFromRecord } from "../rafs/chunk_record.ts";
import type { ChunkInfo, RafsImage } from "../rafs/model.ts";
import { openRafsV6, type RafsV6Image } from "../rafs/v6_reader.ts";
import { checkBlobFileName } from "./chunk_source.ts";

const BLOCK = 4096;
/** Device-slot offset of the first slot and the mapped_blkaddr field (spec §3.4). */
const DEVICE_TABLE = 1408;
const SLOT_SIZE = 128;
const MAPPED_BLKADDR = 68;
/** Upstream aligns each blob's slot to 512 KiB (`v6.rs:766-809`). */
const MAPPED_ALIGN = 0x80000;

export interface ExportOptions {
  /** Called with the number of plain bytes just written. */
  onProgress?: (bytes: number) => void;
}

export interface ExportedView {
  blobId: string;
  /** Output file. */
  path: string;
  /** View size in bytes (the blob's uncompressed size). */
  size: number;
  /** Chunks checked against the chunk table after writing. */
  verifiedChunks: number;
}

export interface BlockExportResult {
  path: string;
  /** Size of the image file in bytes (sparse where blobs have holes). */
  size: number;
  bootstrapSize: number;
  blobs: { blobId: string; mappedBlkaddr: number; blocks: number }[];
  /** True when the device slots' mapped_blkaddr were recomputed in the exported bootstrap. */
  relocated: boolean;
  verifiedChunks: number;
}

function requireV6(image: RafsImage): RafsV6Image {
  if (image.superBlock.version !== 6 || !("devices" in image)) {
    throw new InvalidInputError("Cannot export a RAFS v5 image: only RAFS v6 (EROFS) bootstraps can be mounted by the kernel; unpack it instead");
  }
  return image as RafsV6Image;
}

async function openDataBlob(blobDir: string, image: RafsV6Image, index: number): Promise<DataBlob> {
  const info = image.blobs[index];
  checkBlobFileName(info.blobId);
  const file = path.join(blobDir, info.blobId);
  let reader;
  try {
    reader = await fileReaderAt(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`blob "${info.blobId}"`, `no file "${file}" in the blob directory`);
    throw err;
  }
  try {
    return await openBlob(reader, info);
  } catch (err) {
    await reader.close();
    throw err;
  }
}

/** Chunk-table records grouped by blob index (each chunk once). */
function chunksByBlob(image: RafsV6Image): Map<number, ChunkInfo[]> {
  const out = new Map<number, ChunkInfo[]>();
  const seen = new Set<string>();
  for (const rec of image.chunkRecords) {
    const key = `${rec.blobIndex}:${rec.index}:${rec.uncompressedOffset}`;
    if (seen.has(key)) continue;
    seen.add(key);
    let list = out.get(rec.blobIndex);
    if (!list) out.set(rec.blobIndex, (list = []));
    list.push(chunkInfoFromRecord(rec));
  }
  return out;
}

/**
 * Reads every chunk back from the written view (at `base + uncompressedOffset`) and checks its
 * digest and CRC. @returns the number of chunks checked
 */
async function verifyPlaced(fh: fsp.FileHandle, base: number, viewSize: number, chunks: readonly ChunkInfo[], image: RafsV6Image, blobId: string): Promise<number> {
  for (const c of chunks) {
    const where = `chunk ${c.index} of blob ${blobId} in the exported view`;
    if (c.uncompressedOffset + c.uncompressedSize > viewSize) {
      throw new FormatError("RafsV5ChunkInfo", "uncompressed_offset", c.uncompressedOffset, `${where}: ends at ${c.uncompressedOffset + c.uncompressedSize}, beyond the ${viewSize}-byte view`);
    }
    const buf = new Uint8Array(c.uncompressedSize);
    for (let done = 0; done < buf.length; ) {
      const { bytesRead } = await fh.read(buf, done, buf.length - done, base + c.uncompressedOffset + done);
      if (bytesRead === 0) throw new FormatError("RafsV5ChunkInfo", "uncompressed_offset", c.uncompressedOffset, `${where}: short read`);
      done += bytesRead;
    }
    const actual = hash(image.superBlock.digester, buf);
    if (toHex(actual) !== toHex(c.digest)) throw new DigestMismatchError(where, toHex(c.digest), toHex(actual));
    if (c.crc32 !== undefined && crc32c(buf) !== c.crc32 >>> 0) {
      throw new DigestMismatchError(`CRC-32C of ${where}`, (c.crc32 >>> 0).toString(16), crc32c(buf).toString(16));
    }
  }
  return chunks.length;
}

/**
 * Writes `<outDir>/<blobId>.blob.data`, the uncompressed blob-cache view, for every blob of a v6
 * image (created through a temporary name, then renamed).
 * @throws InvalidInputError for a v5 image; NotFoundError for a missing blob; FormatError /
 *   DigestMismatchError for a blob that disagrees with the bootstrap
 */
export async function exportCacheViews(image: RafsImage, blobDir: string, outDir: string, options: ExportOptions = {}): Promise<ExportedView[]> {
  const v6 = requireV6(image);
  await fsp.mkdir(outDir, { recursive: true });
  const byBlob = chunksByBlob(v6);
  const views: ExportedView[] = [];
  for (let i = 0; i < v6.blobs.length; i++) {
    const info = v6.blobs[i];
    const blob = await openDataBlob(blobDir, v6, i);
    const dest = path.join(outDir, `${info.blobId}.blob.data`);
    const tmp = path.join(outDir, `.${info.blobId}.blob.data.tmp-${randomUUID()}`);
    try {
      await writeCacheView(blob, tmp);
      options.onProgress?.(info.uncompressedSize);
      const fh = await fsp.open(tmp, "r+");
      let verified: number;
      try {
        verified = await verifyPlaced(fh, 0, info.uncompressedSize, byBlob.get(i) ?? [], v6, info.blobId);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, dest);
      views.push({ blobId: info.blobId, path: dest, size: info.uncompressedSize, verifiedChunks: verified });
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    } finally {
      await blob.reader.close?.();
    }
  }
  return views;
}

/** Where each blob goes in the block image: the slots' own layout if usable, else upstream's rule. */
export function blockLayout(image: RafsV6Image, bootstrapSize: number): { mapped: number[]; relocated: boolean } {
  const blocksOf = (i: number) => Math.ceil(image.blobs[i].uncompressedSize / BLOCK);
  let pos = alignUp(bootstrapSize, BLOCK);
  let usable = image.devices.length === image.blobs.length;
  for (let i = 0; usable && i < image.devices.length; i++) {
    const d = image.devices[i];
    if (d.mappedBlkaddr * BLOCK < pos || d.blocks < blocksOf(i)) usable = false;
    else pos = (d.mappedBlkaddr + d.blocks) * BLOCK;
  }
  if (usable) return { mapped: image.devices.map((d) => d.mappedBlkaddr), relocated: false };
  const mapped: number[] = [];
  pos = alignUp(bootstrapSize, BLOCK);
  for (let i = 0; i < image.blobs.length; i++) {
    const addr = alignUp(pos, MAPPED_ALIGN) / BLOCK;
    if (addr + blocksOf(i) > 0xffff_ffff) throw new InvalidInputError(`Cannot export a block image: blob ${i} would end beyond block 2^32`);
    mapped.push(addr);
    pos = (addr + blocksOf(i)) * BLOCK;
  }
  return { mapped, relocated: true };
}

/**
 * Writes one EROFS image that `mount -t erofs -o ro,loop FILE MNT` mounts: the bootstrap, then
 * every blob's uncompressed view at `mapped_blkaddr * 4096` (a sparse file).
 * @param bootstrap the bytes `image` was opened from
 * @throws InvalidInputError for a v5 image; NotFoundError for a missing blob; FormatError /
 *   DigestMismatchError for a blob that disagrees with the bootstrap
 */
export async function exportBlock(image: RafsImage, bootstrap: Uint8Array, blobDir: string, outFile: string, options: ExportOptions = {}): Promise<BlockExportResult> {
  requireV6(image);
  const v6 = openRafsV6(bootstrap); // the device slots of exactly these bytes
  const { mapped, relocated } = blockLayout(v6, bootstrap.length);
  const meta = relocated ? new Uint8Array(bootstrap) : bootstrap;
  if (relocated) {
    const dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
    mapped.forEach((addr, i) => dv.setUint32(DEVICE_TABLE + SLOT_SIZE * i + MAPPED_BLKADDR, addr, true));
  }
  const blocks = v6.blobs.map((b) => Math.ceil(b.uncompressedSize / BLOCK));
  const size = Math.max(alignUp(meta.length, BLOCK), ...mapped.map((m, i) => (m + blocks[i]) * BLOCK));
  const byBlob = chunksByBlob(v6);

  const target = path.resolve(outFile);
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${randomUUID()}`);
  const fh = await fsp.open(tmp, "wx+", 0o644);
  let verified = 0;
  try {
    await fh.truncate(size);
    await writeAll(fh, meta, 0);
    for (let i = 0; i < v6.blobs.length; i++) {
      const base = mapped[i] * BLOCK;
      const blob = await openDataBlob(blobDir, v6, i);
      try {
        for (const e of blob.entries) {
          const plain = await blob.readChunk(e);
          await writeAll(fh, plain, base + e.uncompressedOffset);
          options.onProgress?.(plain.length);
        }
      } finally {
        await blob.reader.close?.();
      }
      verified += await verifyPlaced(fh, base, v6.blobs[i].uncompressedSize, byBlob.get(i) ?? [], v6, v6.blobs[i].blobId);
    }
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, target);
  } catch (err) {
    await fh.close().catch((e: unknown) => void e); // may already be closed
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  return {
    path: target,
    size,
    bootstrapSize: meta.length,
    blobs: v6.blobs.map((b, i) => ({ blobId: b.blobId, mappedBlkaddr: mapped[i], blocks: blocks[i] })),
    relocated,
    verifiedChunks: verified,
  };
}

async function writeAll(fh: fsp.FileHandle, data: Uint8Array, at: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, at + done);
    done += bytesWritten;
  }
}
