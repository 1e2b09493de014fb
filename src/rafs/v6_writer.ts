/**
 * RAFS v6 bootstrap writer: serializes a {@link TreeInode} tree into the exact bytes the
 * current upstream builder (`nydus-image create`, spec §3.14 (d)) would write for it.
 *
 * Layout (offsets, indexes) comes from {@link planV6Layout}; every struct is encoded by the
 * codecs of `erofs/format.ts`, `rafs/format.ts` and `rafs/chunk_record.ts`. Memory use is
 * the bootstrap itself plus one small object per tree entry.
 */
import { alignUp, compareBytes } from "../internal/bytes.ts";
import {
  DataLayout,
  EROFS_BLOCK_SIZE,
  EROFS_CHUNK_ADDR_SIZE,
  EROFS_DEVICE_SLOT_SIZE,
  EROFS_DIRENT_SIZE,
  EROFS_INODE_SLOT,
  EROFS_SUPER_OFFSET,
  FileType,
  chunkFormat,
  encodeChunkAddr,
  encodeDeviceSlot,
  encodeInode,
  encodeRdev,
  encodeSuperBlock,
  encodeXattrArea,
  putDirent,
  rafsSuperBlock,
  xattrIcount,
} from "../erofs/format.ts";
import type { CompressorName } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import {
  MAPPED_BLKADDR_ALIGN,
  MAX_BLOBS,
  RAFS_BLOB_ENTRY_SIZE,
  RAFS_DEVICE_TABLE_OFFSET,
  RAFS_EXT_SUPER_OFFSET,
  encodeBlobEntry,
  encodeExtSuperBlock,
  encodePrefetchTable,
  isValidChunkSize,
  rafsFlags,
} from "./format.ts";
import { CHUNK_FLAG_COMPRESSED, CHUNK_FLAG_HAS_CRC32, CHUNK_RECORD_SIZE, encodeChunkRecord } from "./chunk_record.ts";
import { KIND_MODE, type BlobInfo, type ChunkInfo, type FileChunk, type TreeInode } from "./model.ts";
import { direntAt, planV6Layout, type PlannedNode, type V6Layout } from "./v6_layout.ts";

/** BlobFeatures INLINED_CHUNK_DIGEST (spec §2.6). */
const BLOB_FEATURE_INLINED_CHUNK_DIGEST = 0x20;
/** BlobFeatures bits a reader rejects (spec §2.6). */
const BLOB_FEATURES_INVALID = 0x8000_f000;

/** Options of {@link writeBootstrapV6}. */
export interface WriteBootstrapV6Options {
  /** Blob table, in blob-index order (≤ 254 entries). */
  readonly blobs: readonly BlobInfo[];
  /** Image chunk size (power of two, 4 KiB..16 MiB); every blob must use it. */
  readonly chunkSize: number;
  /** Chunk compressor recorded in the ext-SB flags. */
  readonly compressor: CompressorName;
  /** Chunk digester recorded in the ext-SB flags. */
  readonly digester: DigesterName;
  /** Store uid/gid and set EXPLICIT_UID_GID (default true; false = `--repeatable`: uid/gid 0). */
  readonly explicitUidGid?: boolean;
  /**
   * Absolute paths to prefetch (`--prefetch-policy fs`), resolved to nids per spec §3.6: pattern
   * order; a pattern equal to or below an earlier pattern is dropped; only existing paths count
   * (empty regular files never do); written only when there is at least one blob.
   */
  readonly prefetchPaths?: readonly string[];
  /**
   * Translates the chunk blob indexes found in the tree into indexes of `blobs`: a merge
   * renumbers its blob table this way instead of rewriting every chunk of the tree.
   * @default none (the tree's indexes are `blobs` indexes)
   */
  readonly blobIndexMap?: ReadonlyMap<number, number>;
}

/**
 * Writes a complete RAFS v6 bootstrap.
 *
 * @param root the root directory; hardlinks are entries sharing one regular-file TreeInode
 * @returns the bootstrap bytes (a multiple of 4096)
 * @throws RangeError for invalid input: names, > 254 blobs, chunk references to a blob index
 *   not in `blobs`, unaligned chunk offsets, xattr names/values over their limits, bad chunk
 *   size, duplicate or malformed blob ids, relative prefetch paths
 * @example
 * const boot = writeBootstrapV6(root, { blobs: [blob], chunkSize: 0x100000, compressor: "zstd", digester: "blake3" });
 * await fs.writeFile("image.boot", boot);
 */
export function writeBootstrapV6(root: TreeInode, options: WriteBootstrapV6Options): Uint8Array {
  const { blobs, chunkSize, compressor, digester } = options;
  const explicitUidGid = options.explicitUidGid ?? true;
  if (!isValidChunkSize(chunkSize)) throw new RangeError(`Cannot write bootstrap: chunk size ${chunkSize} is not a power of two in 4096..16777216`);
  checkBlobs(blobs, chunkSize);

  const layout = planV6Layout(root, { chunkSize });
  const nblobs = blobs.length;
  const blobTableOff = alignUp(RAFS_DEVICE_TABLE_OFFSET + EROFS_DEVICE_SLOT_SIZE * nblobs, EROFS_BLOCK_SIZE);
  const blobTableSize = RAFS_BLOB_ENTRY_SIZE * nblobs;
  const prefetchNids = nblobs > 0 && options.prefetchPaths ? resolvePrefetch(layout, options.prefetchPaths) : [];
  const prefetchSize = 4 * prefetchNids.length;
  const metaAddr = nblobs > 0 ? alignUp(blobTableOff + blobTableSize + prefetchSize, EROFS_BLOCK_SIZE) : 0;

  const map = options.blobIndexMap;
  const records = chunkTable(layout, blobs, map);
  const chunkTableOff = alignUp(metaAddr + layout.end, EROFS_BLOCK_SIZE);
  const chunkTableSize = CHUNK_RECORD_SIZE * records.length;
  const fileSize = alignUp(chunkTableOff + chunkTableSize, EROFS_BLOCK_SIZE);
  const out = new Uint8Array(fileSize);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);

  // Meta area.
  const ctx = { metaAddr, chunkSize, explicitUidGid, view, map };
  for (const node of layout.nodes) {
    if (node.primary !== node) continue; // later hardlink: same inode, already written
    writeNode(out, node, layout, ctx);
  }

  // Prefetch table, chunk table.
  if (prefetchSize > 0) out.set(encodePrefetchTable(prefetchNids), blobTableOff + blobTableSize);
  for (let i = 0; i < records.length; i++) {
    const { ref, blobIndex } = records[i]!;
    const { chunk, fileOffset } = ref;
    encodeChunkRecord(
      {
        blockId: chunk.digest,
        blobIndex,
        flags: (chunk.compressed ? CHUNK_FLAG_COMPRESSED : 0) | (chunk.crc32 !== undefined ? CHUNK_FLAG_HAS_CRC32 : 0),
        compressedSize: chunk.compressedSize,
        uncompressedSize: chunk.uncompressedSize,
        compressedOffset: chunk.compressedOffset,
        uncompressedOffset: chunk.uncompressedOffset,
        fileOffset,
        index: chunk.index,
        crc32: chunk.crc32 ?? 0,
      },
      out.subarray(chunkTableOff + i * CHUNK_RECORD_SIZE),
    );
  }

  // Device slots (mapped_blkaddr: 512 KiB rule from the end of the bootstrap), superblocks, blob table.
  let pos = fileSize;
  let totalBlocks = 0;
  blobs.forEach((blob, i) => {
    const blocks = Math.floor(blob.uncompressedSize / EROFS_BLOCK_SIZE);
    const mappedBlkaddr = alignUp(pos, MAPPED_BLKADDR_ALIGN) / EROFS_BLOCK_SIZE;
    if (mappedBlkaddr + blocks > 0xffff_ffff) throw new RangeError(`Cannot write bootstrap: mapped block address of blob ${i} exceeds 32 bits`);
    pos = (mappedBlkaddr + blocks) * EROFS_BLOCK_SIZE;
    totalBlocks += blocks;
    encodeDeviceSlot({ blobId: blob.blobId, blocks, mappedBlkaddr }, out.subarray(RAFS_DEVICE_TABLE_OFFSET + EROFS_DEVICE_SLOT_SIZE * i));
    encodeBlobEntry({ ...blob, blobIndex: i }, out.subarray(blobTableOff + RAFS_BLOB_ENTRY_SIZE * i));
  });
  if (totalBlocks > 0xffff_ffff) throw new RangeError(`Cannot write bootstrap: ${totalBlocks} data blocks exceed the 32-bit s_blocks`);

  const sb = rafsSuperBlock({ inos: layout.inodeCount, blocks: totalBlocks, metaBlkaddr: metaAddr / EROFS_BLOCK_SIZE, extraDevices: nblobs });
  sb.rootNid = layout.root.off / EROFS_INODE_SLOT;
  encodeSuperBlock(sb, out.subarray(EROFS_SUPER_OFFSET));
  encodeExtSuperBlock(
    {
      flags: rafsFlags({
        compressor,
        digester,
        explicitUidGid,
        hasXattr: layout.hasXattr,
        inlinedChunkDigest: blobs.every((b) => (b.features & BLOB_FEATURE_INLINED_CHUNK_DIGEST) !== 0),
      }),
      blobTableOffset: blobTableOff,
      blobTableSize,
      chunkSize,
      chunkTableOffset: chunkTableOff,
      chunkTableSize,
      prefetchTableOffset: prefetchSize > 0 ? blobTableOff + blobTableSize : 0,
      prefetchTableSize: prefetchSize,
    },
    out.subarray(RAFS_EXT_SUPER_OFFSET),
  );
  return out;
}

function checkBlobs(blobs: readonly BlobInfo[], chunkSize: number): void {
  if (blobs.length > MAX_BLOBS) throw new RangeError(`Cannot write bootstrap: ${blobs.length} blobs, at most ${MAX_BLOBS} fit a v6 image`);
  const ids = new Set<string>();
  blobs.forEach((b, i) => {
    const fail = (what: string): never => {
      throw new RangeError(`Cannot write bootstrap: blob ${i} ("${b.blobId}") ${what}`);
    };
    const idLen = Buffer.byteLength(b.blobId);
    if (idLen === 0 || idLen > 64) fail(`id is ${idLen} bytes, expected 1..64`);
    if (b.blobId.includes("\0")) fail("id contains a NUL character");
    if (ids.has(b.blobId)) fail("id appears twice in the blob table");
    ids.add(b.blobId);
    if (b.chunkSize !== chunkSize) fail(`has chunk size ${b.chunkSize}, the image uses ${chunkSize}`);
    if (b.chunkCount === 0) fail("has no chunks (upstream readers reject such an entry)");
    if (!Number.isSafeInteger(b.uncompressedSize) || b.uncompressedSize < EROFS_BLOCK_SIZE) fail(`has uncompressed size ${b.uncompressedSize}, less than one block`);
    if ((b.features & BLOB_FEATURES_INVALID) !== 0) fail(`has reserved feature bits in 0x${(b.features >>> 0).toString(16)}`);
  });
}

/** A chunk's blob index through {@link WriteBootstrapV6Options.blobIndexMap}; -1 when it has none. */
function mappedIndex(map: ReadonlyMap<number, number>, raw: number): number {
  return map.get(raw) ?? -1;
}

/**
 * The chunk table: one record per (digest, blob index), in that order, the last reference in
 * dump order winning; each with its blob index through the map. References are sorted by a number made of the digest's first 6 bytes
 * (exact below 2^53), the rest of the digest compared only on a tie (a chunk shared by several
 * files), then blob index and dump position. A latin1-string key per reference in a Map, then
 * a string sort, cost ~2x as much on the 25,000-node bench image.
 */
function chunkTable(layout: V6Layout, blobs: readonly BlobInfo[], map: ReadonlyMap<number, number> | undefined): { ref: FileChunk; blobIndex: number }[] {
  const refs: FileChunk[] = [];
  const blobOf: number[] = [];
  const lead: number[] = [];
  for (const node of layout.nodes) {
    const chunks = node.inode.kind === "reg" ? node.inode.chunks : undefined;
    if (chunks === undefined) continue;
    for (let i = 0; i < chunks.length; i++) {
      const fc = chunks[i]!;
      const blobIndex = map ? mappedIndex(map, fc.chunk.blobIndex) : fc.chunk.blobIndex;
      checkChunk(fc.chunk, blobIndex, blobs, node);
      const d = fc.chunk.digest;
      refs.push(fc);
      blobOf.push(blobIndex);
      lead.push(((d[0]! * 256 + d[1]!) * 256 + d[2]!) * 2 ** 24 + ((d[3]! << 16) | (d[4]! << 8) | d[5]!));
    }
  }
  const order = refs.map((_, i) => i);
  order.sort((a, b) => lead[a]! - lead[b]! || compareDigestTail(refs[a]!.chunk.digest, refs[b]!.chunk.digest) || blobOf[a]! - blobOf[b]! || a - b);
  const out: { ref: FileChunk; blobIndex: number }[] = [];
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const next = order[k + 1];
    // Keep the last of a run of equal (digest, blob): the next one is a later reference to it.
    if (next !== undefined && lead[next] === lead[i] && blobOf[next] === blobOf[i] && compareDigestTail(refs[next]!.chunk.digest, refs[i]!.chunk.digest) === 0) continue;
    out.push({ ref: refs[i]!, blobIndex: blobOf[i]! });
  }
  return out;
}

/** Byte order of two 32-byte digests from byte 6 on (bytes 0..5 are the sort's number). */
function compareDigestTail(a: Uint8Array, b: Uint8Array): number {
  for (let i = 6; i < 32; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

function checkChunk(c: ChunkInfo, blobIndex: number, blobs: readonly BlobInfo[], node: PlannedNode): void {
  const fail = (what: string): never => {
    throw new RangeError(`Cannot write bootstrap: a chunk of ${JSON.stringify(Buffer.from(node.name).toString("utf8"))} (index ${node.index}) ${what}`);
  };
  if (blobIndex !== c.blobIndex && blobIndex === -1) fail(`references blob index ${c.blobIndex}, which the blob index map does not name`);
  if (!Number.isInteger(blobIndex) || blobIndex < 0 || blobIndex >= blobs.length) fail(`references blob index ${blobIndex}, but the blob table has ${blobs.length} entries`);
  if (c.digest.length !== 32) fail(`has a ${c.digest.length}-byte digest, expected 32`);
  if (!Number.isInteger(c.index) || c.index < 0 || c.index > 0xff_ffff) fail(`has chunk index ${c.index}, not a 24-bit value`);
  if (!Number.isSafeInteger(c.uncompressedOffset) || c.uncompressedOffset % EROFS_BLOCK_SIZE !== 0) fail(`has uncompressed offset ${c.uncompressedOffset}, not 4096-aligned`);
  if (c.uncompressedOffset / EROFS_BLOCK_SIZE > 0xffff_ffff) fail(`has uncompressed offset ${c.uncompressedOffset}, beyond a 32-bit block address`);
}

/** i_u chunk format of a regular file, with the page-cache-sharing optimisation (spec §3.10). */
export function fileChunkFormat(inode: Pick<TreeInode, "size" | "chunks">, chunkSize: number, blobIndexMap?: ReadonlyMap<number, number>): number {
  const chunks = inode.chunks ?? [];
  let continuous = true;
  for (let i = 1; i < chunks.length && continuous; i++) {
    const prev = chunks[i - 1]!.chunk;
    const cur = chunks[i]!.chunk;
    if (prev.uncompressedOffset + chunkSize !== cur.uncompressedOffset) continuous = false;
    else if (prev.blobIndex !== cur.blobIndex && (!blobIndexMap || mappedIndex(blobIndexMap, prev.blobIndex) !== mappedIndex(blobIndexMap, cur.blobIndex))) continuous = false;
  }
  if (continuous && inode.size > chunkSize) return chunkFormat(2 ** Math.ceil(Math.log2(inode.size)));
  return chunkFormat(chunkSize);
}

function writeNode(
  out: Uint8Array,
  node: PlannedNode,
  layout: V6Layout,
  o: { metaAddr: number; chunkSize: number; explicitUidGid: boolean; view: DataView; map: ReadonlyMap<number, number> | undefined },
): void {
  const { inode } = node;
  const abs = o.metaAddr + node.off;
  const isRoot = node === layout.root;
  let size = 0;
  let u = 0;
  let nlink = 1;
  switch (inode.kind) {
    case "dir":
      size = node.dataSize;
      u = (o.metaAddr + node.direntsOff) / EROFS_BLOCK_SIZE;
      nlink = 2 + node.subdirs;
      break;
    case "symlink":
      size = node.dataSize;
      u = (o.metaAddr + node.direntsOff) / EROFS_BLOCK_SIZE;
      break;
    case "reg":
      size = inode.size;
      u = fileChunkFormat(inode, o.chunkSize, o.map);
      nlink = layout.linkCounts.get(inode) ?? 1;
      break;
    default:
      u = encodeRdev(inode.rdevMajor, inode.rdevMinor);
  }
  encodeInode(
    {
      extended: true,
      layout: node.layout,
      xattrIcount: xattrIcount(node.xattrSize),
      mode: (inode.mode & 0o7777) | KIND_MODE[inode.kind],
      size,
      u,
      ino: node.index,
      uid: o.explicitUidGid ? inode.uid : 0,
      gid: o.explicitUidGid ? inode.gid : 0,
      mtime: isRoot ? 0 : inode.mtime,
      mtimeNsec: isRoot ? 0 : inode.mtimeNsec,
      nlink,
    },
    out.subarray(abs),
  );
  if (node.xattrSize > 0) out.set(encodeXattrArea(inode.xattrs), abs + 64);

  const tailAt = abs + node.isz;
  const blocksAt = o.metaAddr + node.direntsOff;
  switch (inode.kind) {
    case "dir":
      writeDirents(out, o.view, node, tailAt, blocksAt);
      break;
    case "symlink": {
      const target = inode.symlinkTarget!;
      if (node.layout === DataLayout.FlatInline) {
        const full = target.length - (target.length % EROFS_BLOCK_SIZE);
        out.set(target.subarray(0, full), blocksAt);
        out.set(target.subarray(full), tailAt);
      } else {
        out.set(target, blocksAt);
      }
      break;
    }
    case "reg": {
      let at = alignUp(tailAt, EROFS_CHUNK_ADDR_SIZE);
      for (const fc of inode.chunks ?? []) {
        encodeChunkAddr({ blobIndex: o.map ? mappedIndex(o.map, fc.chunk.blobIndex) : fc.chunk.blobIndex, chunkIndex: fc.chunk.index, blkAddr: fc.chunk.uncompressedOffset / EROFS_BLOCK_SIZE }, out.subarray(at));
        at += EROFS_CHUNK_ADDR_SIZE;
      }
      break;
    }
    default:
      break;
  }
}

/**
 * Packs a directory's dirents (§3.9.3) straight into `out`: blocks of whole entries, each
 * block's headers then its names; the last block of an inline directory goes right after
 * the inode (`tailAt`), the others to `blocksAt + i * 4096`.
 */
function writeDirents(out: Uint8Array, view: DataView, dir: PlannedNode, tailAt: number, blocksAt: number): void {
  const n = (dir.children?.length ?? 0) + 2;
  let first = 0;
  let used = 0;
  let block = 0;
  for (let i = 0; i < n; i++) {
    const need = EROFS_DIRENT_SIZE + direntAt(dir, i).name.length;
    if (used + need > EROFS_BLOCK_SIZE && i > first) {
      writeDirentBlock(out, view, dir, first, i, blocksAt + block * EROFS_BLOCK_SIZE);
      block++;
      first = i;
      used = 0;
    }
    used += need;
  }
  writeDirentBlock(out, view, dir, first, n, dir.layout === DataLayout.FlatInline ? tailAt : blocksAt + block * EROFS_BLOCK_SIZE);
}

/** Dirents `first..end-1` of `dir` as one block at `at`: headers, then the names back to back. */
function writeDirentBlock(out: Uint8Array, view: DataView, dir: PlannedNode, first: number, end: number, at: number): void {
  let nameoff = EROFS_DIRENT_SIZE * (end - first);
  for (let i = first; i < end; i++) {
    const { name, node } = direntAt(dir, i);
    putDirent(view, at + EROFS_DIRENT_SIZE * (i - first), node.primary.off / EROFS_INODE_SLOT, nameoff, FileType[node.inode.kind]);
    out.set(name, at + nameoff);
    nameoff += name.length;
  }
}

/** Path components of an absolute path (Rust `Path::components` normalisation: "//" and "." vanish). */
function components(path: string): string[] {
  if (!path.startsWith("/")) throw new RangeError(`Cannot resolve prefetch path ${JSON.stringify(path)}: not absolute`);
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

function resolvePrefetch(layout: V6Layout, paths: readonly string[]): number[] {
  const accepted: string[][] = [];
  const acceptedKeys = new Set<string>();
  const nids: number[] = [];
  for (const p of paths) {
    const comps = components(p);
    let covered = false;
    for (let n = comps.length; n >= 0 && !covered; n--) covered = acceptedKeys.has(comps.slice(0, n).join("/"));
    if (covered) continue;
    accepted.push(comps);
    acceptedKeys.add(comps.join("/"));
    const node = lookup(layout.root, comps);
    if (!node) continue;
    if (node.inode.kind === "reg" && node.inode.size === 0) continue; // upstream never matches empty files
    nids.push(node.primary.off / EROFS_INODE_SLOT);
  }
  return nids;
}

function lookup(root: PlannedNode, comps: readonly string[]): PlannedNode | undefined {
  let cur: PlannedNode = root;
  for (const c of comps) {
    const kids = cur.children;
    if (!kids) return undefined;
    const name = Buffer.from(c, "utf8");
    let lo = 0;
    let hi = kids.length - 1;
    let found: PlannedNode | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const cmp = compareBytes(kids[mid]!.name, name);
      if (cmp === 0) {
        found = kids[mid];
        break;
      }
      if (cmp < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    if (!found) return undefined;
    cur = found;
  }
  return cur;
}
