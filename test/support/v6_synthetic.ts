/**
 * A tiny, test-only RAFS v6 image writer built from the struct codecs of
 * `src/erofs/format.ts` / `src/rafs/format.ts`. It is NOT the project builder and makes no
 * attempt at upstream byte-compatibility: every inode gets a block of its own in the meta
 * area (inline tails after it), full data blocks follow the inode blocks. That keeps the
 * layout obviously EROFS-valid, so `dump.erofs`/`fsck.erofs` can act as an oracle, while
 * covering what the upstream fixtures lack: nested and multi-block directories, PLAIN and
 * INLINE directories and symlinks, xattrs, device nodes, fifos, sockets, hardlinks,
 * compact inodes and multi-chunk files.
 */
import { createHash } from "node:crypto";
import {
  DataLayout,
  EROFS_BLOCK_SIZE,
  FileType,
  chunkFormat,
  direntAreaSize,
  encodeChunkAddr,
  encodeDeviceSlot,
  encodeDirentBlock,
  encodeInode,
  encodeRdev,
  encodeSuperBlock,
  encodeXattrArea,
  rafsSuperBlock,
  splitDirentBlocks,
  xattrIcount,
  type NamedDirent,
} from "../../src/erofs/format.ts";
import { encodeBlobEntry, encodeExtSuperBlock, RafsFlags } from "../../src/rafs/format.ts";
import { encodeChunkRecord, CHUNK_FLAG_HAS_CRC32 } from "../../src/rafs/chunk_record.ts";
import { KIND_MODE, type FileKind } from "../../src/rafs/model.ts";

export interface SynNode {
  kind: FileKind;
  /** Permission bits (type bits are added from `kind`). */
  perm?: number;
  /** Regular file content. */
  data?: Uint8Array;
  target?: Uint8Array;
  children?: Map<string, SynNode>;
  xattrs?: Map<string, Uint8Array>;
  rdev?: { major: number; minor: number };
  compact?: boolean;
  /** Directory/symlink data placement preference. */
  layout?: "plain" | "inline";
  uid?: number;
  gid?: number;
  mtime?: number;
  mtimeNsec?: number;
}

export interface SynImage {
  bootstrap: Uint8Array;
  /** Uncompressed blob-cache view of the single blob. */
  view: Uint8Array;
  blobId: string;
  chunkSize: number;
  /** nid of every node (hardlinks share one). */
  nids: Map<SynNode, number>;
}

const BS = EROFS_BLOCK_SIZE;
const enc = new TextEncoder();

/** Writes a one-blob v6 bootstrap (chunk size 4096, uncompressed chunks, deduplicated by content). */
export function buildSyntheticV6(root: SynNode, options: { chunkSize?: number } = {}): SynImage {
  const chunkSize = options.chunkSize ?? 4096;
  // 1. Unique nodes in DFS order, each gets an inode block; parents recorded for "..".
  const order: SynNode[] = [];
  const parent = new Map<SynNode, SynNode>();
  const links = new Map<SynNode, number>();
  const visit = (n: SynNode, p: SynNode) => {
    links.set(n, (links.get(n) ?? 0) + 1);
    if (order.includes(n)) return;
    order.push(n);
    parent.set(n, p);
    for (const c of [...(n.children ?? new Map()).values()]) visit(c, n);
  };
  visit(root, root);
  const metaBlk = 2;
  const metaAddr = metaBlk * BS;
  const nids = new Map<SynNode, number>();
  order.forEach((n, i) => nids.set(n, ((metaBlk + 1 + i) * BS - metaAddr) / 32));

  // 2. Chunks: dedup by content, 4096-aligned slots in the view.
  const chunkByDigest = new Map<string, { index: number; uoff: number; data: Uint8Array }>();
  const viewParts: { uoff: number; data: Uint8Array }[] = [];
  let viewSize = 0;
  const fileChunks = new Map<SynNode, { index: number; uoff: number; data: Uint8Array }[]>();
  for (const n of order) {
    if (n.kind !== "reg") continue;
    const data = n.data ?? new Uint8Array(0);
    const list = [];
    for (let o = 0; o < data.length; o += chunkSize) {
      const piece = data.subarray(o, Math.min(data.length, o + chunkSize));
      const key = createHash("sha256").update(piece).digest("hex");
      let c = chunkByDigest.get(key);
      if (!c) {
        c = { index: chunkByDigest.size, uoff: viewSize, data: piece };
        chunkByDigest.set(key, c);
        viewParts.push({ uoff: viewSize, data: piece });
        viewSize += Math.ceil(piece.length / BS) * BS;
      }
      list.push(c);
    }
    fileChunks.set(n, list);
  }
  const view = new Uint8Array(Math.max(viewSize, BS));
  for (const p of viewParts) view.set(p.data, p.uoff);
  const blobId = createHash("sha256").update(view).digest("hex");

  // 3. Inode blocks and data blocks.
  const dataBlocks: Uint8Array[] = [];
  let nextDataBlk = metaBlk + 1 + order.length;
  const inodeBlocks: Uint8Array[] = [];
  for (const n of order) {
    const nid = nids.get(n)!;
    const block = new Uint8Array(BS);
    const xattrs = encodeXattrArea(n.xattrs ?? new Map());
    const isz = (n.compact ? 32 : 64) + xattrs.length;
    let size = 0;
    let layout: number = DataLayout.FlatPlain;
    let u = 0;
    let tail: Uint8Array | undefined;
    let body = new Uint8Array(0);
    if (n.kind === "dir" || n.kind === "symlink") {
      let full: Uint8Array[];
      if (n.kind === "dir") {
        const ents: NamedDirent[] = [
          { name: enc.encode("."), nid, fileType: FileType.dir },
          { name: enc.encode(".."), nid: nids.get(parent.get(n)!)!, fileType: FileType.dir },
          ...[...n.children!].map(([name, c]) => ({ name: enc.encode(name), nid: nids.get(c)!, fileType: FileType[c.kind] })),
        ].sort((a, b) => Buffer.compare(a.name, b.name));
        size = direntAreaSize(ents);
        full = splitDirentBlocks(ents).map(encodeDirentBlock);
      } else {
        const t = n.target!;
        size = t.length;
        full = [];
        for (let o = 0; o < t.length; o += BS) full.push(t.subarray(o, Math.min(t.length, o + BS)));
      }
      const tailLen = size % BS;
      if (n.layout !== "plain" && tailLen !== 0 && isz + tailLen <= BS) {
        layout = DataLayout.FlatInline;
        tail = full.pop()!;
      }
      u = nextDataBlk;
      for (const b of full) {
        const pad = new Uint8Array(BS);
        pad.set(b);
        dataBlocks.push(pad);
        nextDataBlk++;
      }
    } else if (n.kind === "reg") {
      layout = DataLayout.ChunkBased;
      size = n.data?.length ?? 0;
      u = chunkFormat(chunkSize);
      const list = fileChunks.get(n)!;
      body = new Uint8Array(8 * list.length);
      list.forEach((c, k) => encodeChunkAddr({ blobIndex: 0, chunkIndex: c.index, blkAddr: c.uoff / BS }, body.subarray(8 * k)));
    } else if (n.kind === "chr" || n.kind === "blk") {
      u = encodeRdev(n.rdev!.major, n.rdev!.minor);
    }
    const mode = KIND_MODE[n.kind] | (n.perm ?? (n.kind === "dir" ? 0o755 : 0o644));
    const nlink = n.kind === "dir" ? 2 + [...n.children!.values()].filter((c) => c.kind === "dir").length : links.get(n)!;
    encodeInode(
      {
        extended: !n.compact,
        layout,
        xattrIcount: xattrIcount(xattrs.length),
        mode,
        size,
        u,
        ino: order.indexOf(n) + 1,
        uid: n.uid ?? 0,
        gid: n.gid ?? 0,
        mtime: n.compact ? 0 : (n.mtime ?? 0),
        mtimeNsec: n.compact ? 0 : (n.mtimeNsec ?? 0),
        nlink,
      },
      block,
    );
    block.set(xattrs, n.compact ? 32 : 64);
    if (tail) block.set(tail, isz);
    if (body.length) {
      const at = Math.ceil(isz / 8) * 8;
      if (at + body.length > BS) throw new RangeError("synthetic file has too many chunks for one block");
      block.set(body, at);
    }
    inodeBlocks.push(block);
  }

  // 4. Chunk table, sorted by digest like upstream (sha256 of content stands in for the digest).
  const chunks = [...chunkByDigest.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  const chunkTableBlk = nextDataBlk;
  const chunkTable = new Uint8Array(Math.ceil((80 * chunks.length) / BS) * BS);
  chunks.forEach(([digest, c], i) =>
    encodeChunkRecord(
      {
        blockId: Buffer.from(digest, "hex"),
        blobIndex: 0,
        flags: CHUNK_FLAG_HAS_CRC32,
        compressedSize: c.data.length,
        uncompressedSize: c.data.length,
        compressedOffset: c.uoff,
        uncompressedOffset: c.uoff,
        fileOffset: 0,
        index: c.index,
        crc32: 0,
      },
      chunkTable.subarray(80 * i),
    ),
  );
  const total = chunkTableBlk * BS + chunkTable.length;
  const out = new Uint8Array(total);
  inodeBlocks.forEach((b, i) => out.set(b, (metaBlk + 1 + i) * BS));
  dataBlocks.forEach((b, i) => out.set(b, (metaBlk + 1 + order.length + i) * BS));
  out.set(chunkTable, chunkTableBlk * BS);
  const sb = rafsSuperBlock({ inos: order.length, blocks: view.length / BS, metaBlkaddr: metaBlk, extraDevices: 1 });
  sb.rootNid = nids.get(root)!;
  encodeSuperBlock(sb, out.subarray(1024));
  encodeExtSuperBlock(
    {
      flags: RafsFlags.CompressionNone | RafsFlags.HashSha256 | RafsFlags.EncryptionNone | RafsFlags.ExplicitUidGid | RafsFlags.HasXattr,
      blobTableOffset: BS,
      blobTableSize: 256,
      chunkSize,
      chunkTableOffset: chunkTableBlk * BS,
      chunkTableSize: 80 * chunks.length,
      prefetchTableOffset: BS + 256,
      prefetchTableSize: 4,
    },
    out.subarray(1152),
  );
  out.set(new Uint8Array(new Uint32Array([nids.get(root)!]).buffer), BS + 256);
  encodeDeviceSlot({ blobId, blocks: view.length / BS, mappedBlkaddr: 0 }, out.subarray(1408));
  encodeBlobEntry(
    {
      blobId,
      blobIndex: 0,
      chunkSize,
      chunkCount: chunks.length,
      compressor: "none",
      digester: "sha256",
      features: 0x4000_0001,
      compressedSize: view.length,
      uncompressedSize: view.length,
      tocSize: 0,
      tocDigest: new Uint8Array(32),
      ciCompressor: "none",
      ciOffset: view.length,
      ciCompressedSize: 16 * chunks.length,
      ciUncompressedSize: 16 * chunks.length,
    },
    out.subarray(BS),
  );
  return { bootstrap: out, view, blobId, chunkSize, nids };
}
