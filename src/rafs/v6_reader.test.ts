import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { openRafsV6, type RafsV6Image } from "./v6_reader.ts";
import { walkRafs } from "./open.ts";
import {
  decodeChunkAddr,
  decodeDeviceSlot,
  decodeDirentBlock,
  decodeInode,
  decodeSuperBlock,
  encodeChunkAddr,
  encodeDeviceSlot,
  encodeDirentBlock,
  encodeInode,
  encodeSuperBlock,
} from "../erofs/format.ts";
import { decodeBlobEntry, decodeExtSuperBlock, encodeBlobEntry, encodeExtSuperBlock } from "./format.ts";
import { decodeChunkRecord, encodeChunkRecord } from "./chunk_record.ts";
import { codecByName } from "../compression/codec.ts";
import { hash, sha256Hex } from "../digest/hasher.ts";
import { FormatError } from "../internal/errors.ts";
import { compareBytes, toHex } from "../internal/bytes.ts";
import { fixture } from "../../test/support/paths.ts";
import { buildSyntheticV6, type SynNode } from "../../test/support/v6_synthetic.ts";
import type { RafsImage, RafsInode } from "./model.ts";

const BOOT = new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot")));
const BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const BLOB = new Uint8Array(fs.readFileSync(fixture(`blobs/${BLOB_ID}`)));
const enc = new TextEncoder();
const names = (img: RafsImage, dir: RafsInode) => img.readdir(dir).map((e) => Buffer.from(e.name).toString());

/** Plain bytes of a regular file, assembled from its chunks in the data blob. */
function readFile(img: RafsImage, ino: RafsInode, blob: Uint8Array): Uint8Array {
  const out = new Uint8Array(ino.size);
  for (const { chunk, fileOffset } of img.chunks(ino)) {
    const stored = blob.subarray(chunk.compressedOffset, chunk.compressedOffset + chunk.compressedSize);
    const plain = chunk.compressed ? codecByName(img.blobs[chunk.blobIndex].compressor).decompress(stored, chunk.uncompressedSize) : stored;
    out.set(plain, fileOffset);
  }
  return out;
}

/** The uncompressed blob-cache view: each chunk's plain bytes at its uncompressed offset. */
function blobCacheView(img: RafsV6Image, blob: Uint8Array): Uint8Array {
  const view = new Uint8Array(img.blobs[0].uncompressedSize);
  for (const r of img.chunkRecords) {
    const stored = blob.subarray(r.compressedOffset, r.compressedOffset + r.compressedSize);
    view.set(codecByName(img.blobs[0].compressor).decompress(stored, r.uncompressedSize), r.uncompressedOffset);
  }
  return view;
}

test("rafs-v6-2.2.boot: superblock, ext superblock, device slot and blob entry (spec §10.1-10.4)", () => {
  const img = openRafsV6(BOOT);
  const sb = img.superBlockRecord;
  assert.equal(sb.magic, 0xe0f5e1e2);
  assert.equal(sb.checksum, 0);
  assert.equal(sb.featureCompat, 0x4000_0000);
  assert.equal(sb.blkszbits, 12);
  assert.equal(sb.extslots, 0);
  assert.equal(sb.rootNid, 128);
  assert.equal(sb.inos, 3);
  assert.equal(sb.buildTime, 0);
  assert.equal(sb.buildTimeNsec, 0);
  assert.equal(sb.blocks, 9);
  assert.equal(sb.metaBlkaddr, 2);
  assert.equal(sb.xattrBlkaddr, 0);
  assert.deepEqual(sb.uuid, new Uint8Array(16));
  assert.deepEqual(sb.volumeName, new Uint8Array(16));
  assert.equal(sb.featureIncompat, 0x0c);
  assert.equal(sb.u, 0);
  assert.equal(sb.extraDevices, 1);
  assert.equal(sb.devtSlotoff, 11);
  assert.equal(img.metaAddr, 0x2000);
  assert.equal(img.blockSize, 4096);

  assert.deepEqual(img.extSuperBlock, {
    flags: 0x194n,
    blobTableOffset: 0x1000,
    blobTableSize: 0x100,
    chunkSize: 0x100000,
    chunkTableOffset: 0x4000,
    chunkTableSize: 0xa0,
    prefetchTableOffset: 0,
    prefetchTableSize: 0,
  });
  assert.deepEqual(img.superBlock, {
    version: 6,
    flags: 0x194n,
    chunkSize: 0x100000,
    compressor: "zstd",
    digester: "blake3",
    explicitUidGid: true,
    rootIno: 128,
    inodeCount: 3,
  });
  assert.deepEqual(img.prefetch, []);
  assert.deepEqual(img.devices, [{ blobId: BLOB_ID, blocks: 9, mappedBlkaddr: 0x200 }]);

  assert.equal(img.blobs.length, 1);
  const b = img.blobEntries[0];
  assert.equal(b, img.blobs[0]);
  assert.equal(b.blobId, BLOB_ID);
  assert.equal(b.blobIndex, 0);
  assert.equal(b.chunkSize, 0x100000);
  assert.equal(b.chunkCount, 2);
  assert.equal(b.compressor, "zstd");
  assert.equal(b.digester, "blake3");
  assert.equal(b.features, 0x7000_0021);
  assert.equal(b.compressedSize, 14554);
  assert.equal(b.compressedSize, BLOB.length);
  assert.equal(b.uncompressedSize, 0x9000);
  assert.equal(b.tocSize, 0x400);
  assert.equal(b.ciCompressor, "none");
  assert.equal(b.ciOffset, 0x207a);
  assert.equal(b.ciCompressedSize, 32);
  assert.equal(b.ciUncompressedSize, 32);
  assert.equal(toHex(b.tocDigest).slice(0, 8), "cfc89ed0");
  assert.equal(toHex(b.tocDigest).slice(-4), "acde");
  // The ToC digest covers the last blob_toc_size bytes of the blob (§4.7).
  assert.equal(toHex(b.tocDigest), sha256Hex(BLOB.subarray(BLOB.length - b.tocSize)));
  assert.deepEqual(b.blobMetaDigest, new Uint8Array(32));
  assert.equal(b.blobMetaSize, 0);
  assert.deepEqual(b.cipherIv, new Uint8Array(8));
  assert.equal(b.cipherAlgo, 0);
});

test("rafs-v6-2.2.boot: root directory, files, chunk addresses and chunk table (spec §10.5-10.7)", () => {
  const img = openRafsV6(BOOT);
  const root = img.inode(128);
  assert.equal(root.kind, "dir");
  assert.equal(root.mode, 0o40755);
  assert.equal(root.size, 67);
  assert.equal(root.nlink, 2);
  assert.equal(root.mtime, 0);
  assert.equal(root.mtimeNsec, 0);
  assert.equal(root.uid, 0);
  assert.equal(root.gid, 0);
  assert.equal(root.xattrs.size, 0);
  const rootRec = img.inodeRecord(128);
  assert.equal(rootRec.format, 5);
  assert.equal(rootRec.u, 3);
  assert.equal(rootRec.ino, 0);
  assert.equal(img.inodeOffset(128), 0x3000);

  assert.deepEqual(
    img.dirents(root).map((d) => [Buffer.from(d.name).toString(), d.nid, d.fileType]),
    [[".", 128, 2], ["..", 128, 2], ["lib.rs", 133, 1], ["sync_io.rs", 136, 1]],
  );
  assert.deepEqual(
    img.readdir(root).map((e) => [Buffer.from(e.name).toString(), e.ino, e.kind]),
    [["lib.rs", 133, "reg"], ["sync_io.rs", 136, "reg"]],
  );

  const lib = img.lookup("/lib.rs")!;
  const sync = img.lookup("sync_io.rs")!;
  assert.equal(lib.ino, 133);
  assert.equal(sync.ino, 136);
  assert.equal(img.inodeOffset(133), 0x30a0);
  assert.equal(img.inodeOffset(136), 0x3100);
  for (const [f, size, mtimeNsec, ino] of [[lib, 16931, 0x25789c56, 2], [sync, 13400, 0x257dac3c, 3]] as const) {
    assert.equal(f.kind, "reg");
    assert.equal(f.mode, 0o100644);
    assert.equal(f.size, size);
    assert.equal(f.mtime, 1676819553);
    assert.equal(f.mtimeNsec, mtimeNsec);
    assert.equal(f.nlink, 1);
    assert.equal(f.rdevMajor, 0);
    assert.equal(f.rdevMinor, 0);
    const rec = img.inodeRecord(f.ino);
    assert.equal(rec.format, 9);
    assert.equal(rec.u, 0x28);
    assert.equal(rec.ino, ino);
  }
  assert.equal(lib.mtimeNsec, 628661334);
  assert.equal(sync.mtimeNsec, 628993084);
  assert.equal(img.lookup("/nope"), undefined);
  assert.equal(img.lookup("/lib.rs/x"), undefined);
  assert.equal(img.lookup("/")!.ino, 128);

  assert.deepEqual(img.chunkAddrs(lib), [{ blobIndex: 0, chunkIndex: 0, blkAddr: 0 }]);
  assert.deepEqual(img.chunkAddrs(sync), [{ blobIndex: 0, chunkIndex: 1, blkAddr: 5 }]);
  const [lc] = img.chunks(lib);
  const [sc] = img.chunks(sync);
  assert.equal(lc.fileOffset, 0);
  assert.deepEqual(
    { ...lc.chunk, digest: toHex(lc.chunk.digest) },
    {
      digest: toHex(BOOT.subarray(0x4050, 0x4070)),
      blobIndex: 0,
      index: 0,
      compressedOffset: 0,
      compressedSize: 4828,
      uncompressedOffset: 0,
      uncompressedSize: 16931,
      compressed: true,
    },
  );
  assert.deepEqual(
    { ...sc.chunk, digest: toHex(sc.chunk.digest) },
    {
      digest: toHex(BOOT.subarray(0x4000, 0x4020)),
      blobIndex: 0,
      index: 1,
      compressedOffset: 4828,
      compressedSize: 2974,
      uncompressedOffset: 0x5000,
      uncompressedSize: 13400,
      compressed: true,
    },
  );
  assert.ok(toHex(sc.chunk.digest).startsWith("812465bc") && toHex(sc.chunk.digest).endsWith("dc3f"));
  assert.ok(toHex(lc.chunk.digest).startsWith("f7e2735f") && toHex(lc.chunk.digest).endsWith("fe69"));

  // Chunk table: two records sorted by digest; records carry file_offset 0, no CRC (older builder).
  assert.equal(img.chunkRecords.length, 2);
  assert.ok(compareBytes(img.chunkRecords[0].blockId, img.chunkRecords[1].blockId) < 0);
  assert.deepEqual(img.chunkRecords.map((r) => [r.index, r.flags, r.fileOffset, r.crc32]), [[1, 1, 0, 0], [0, 1, 0, 0]]);

  // The chunk digests are BLAKE3 of the plain data, and the files decode to their sizes.
  for (const f of [lib, sync]) {
    const data = readFile(img, f, BLOB);
    assert.equal(data.length, f.size);
    assert.equal(toHex(hash("blake3", data)), toHex(img.chunks(f)[0].chunk.digest));
  }
  assert.match(Buffer.from(readFile(img, lib, BLOB)).toString(), /\S/);
});

test("rafs-v6-2.2.boot: every struct re-encodes byte for byte and together they are the whole file", () => {
  const img = openRafsV6(BOOT);
  const rebuilt = new Uint8Array(BOOT.length);
  const put = (off: number, bytes: Uint8Array) => {
    assert.deepEqual(Buffer.from(bytes), Buffer.from(BOOT.subarray(off, off + bytes.length)), `struct at ${off}`);
    rebuilt.set(bytes, off);
  };
  put(1024, encodeSuperBlock(decodeSuperBlock(BOOT.subarray(1024, 1152))));
  put(1152, encodeExtSuperBlock(decodeExtSuperBlock(BOOT.subarray(1152, 1408))));
  put(1408, encodeDeviceSlot(decodeDeviceSlot(BOOT.subarray(1408, 1536), 1408)));
  put(0x1000, encodeBlobEntry(decodeBlobEntry(BOOT.subarray(0x1000, 0x1100), 0x1000)));
  for (const { inode } of walkRafs(img)) {
    const off = img.inodeOffset(inode.ino);
    const rec = decodeInode(BOOT.subarray(off, off + 64), off);
    put(off, encodeInode(rec));
    if (inode.kind === "dir") {
      // Inline tail: the whole 67-byte dirent block right after the inode.
      const block = BOOT.subarray(off + 64, off + 64 + inode.size);
      put(off + 64, encodeDirentBlock(decodeDirentBlock(block, inode.size, off + 64)));
    } else {
      const at = Math.ceil((off + 64) / 8) * 8;
      put(at, encodeChunkAddr(decodeChunkAddr(BOOT.subarray(at, at + 8), at)));
    }
  }
  for (let i = 0; i < 2; i++) {
    const off = 0x4000 + 80 * i;
    put(off, encodeChunkRecord(decodeChunkRecord(BOOT, off)));
  }
  assert.deepEqual(Buffer.from(rebuilt), Buffer.from(BOOT));
});

test("the bootstrap embedded in the ToC fixture reads through openRafsV6 (spec §4.7, §11)", () => {
  const zst = fs.readFileSync(fixture("2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca.zst"));
  const blob = codecByName("zstd").decompress(zst, 10034);
  assert.equal(sha256Hex(blob), "2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca");
  const { boot, entries } = extractTocBoot(blob);
  assert.deepEqual(entries.map((e) => e.name), ["image.blob", "blob.meta", "blob.meta.header", "image.boot"]);
  assert.equal(boot.length, 20480);
  assert.ok(sha256Hex(boot).startsWith("d85f1b77"));
  const img = openRafsV6(boot);
  assert.equal(img.superBlock.rootIno, 128);
  assert.deepEqual(
    img.readdir(img.inode(128)).map((e) => [Buffer.from(e.name).toString(), e.ino, e.kind]),
    [["error.rs", 133, "reg"], ["lib.rs", 136, "reg"], ["logger.rs", 139, "reg"]],
  );
  assert.equal(img.blobs.length, 1);
  assert.equal(img.blobs[0].features, 0x1);
  assert.ok(img.blobs[0].blobId.startsWith("d788a0ea"));
  // Chunk data lives in the same blob ("image.blob" section at offset 0): decode every file.
  const imageBlob = entries.find((e) => e.name === "image.blob")!;
  let total = 0;
  for (const { path: p, inode } of walkRafs(img)) {
    if (inode.kind !== "reg") continue;
    const data = readFile(img, inode, blob);
    assert.equal(data.length, inode.size, p);
    for (const { chunk } of img.chunks(inode)) {
      assert.ok(chunk.compressedOffset + chunk.compressedSize <= imageBlob.compressedSize, p);
      assert.ok(chunk.uncompressedOffset + chunk.uncompressedSize <= imageBlob.uncompressedSize, p);
    }
    assert.equal(toHex(hash(img.superBlock.digester, data)), toHex(img.chunks(inode)[0].chunk.digest), p);
    total += data.length;
  }
  assert.ok(total > 0);
});

interface TocEntry {
  flags: number;
  name: string;
  digest: string;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

/** Parses the ToC at the blob's end (128-byte entries + 512-byte tar header) and inflates image.boot. */
function extractTocBoot(blob: Uint8Array): { boot: Uint8Array; entries: TocEntry[] } {
  const hdr = blob.subarray(blob.length - 512);
  assert.equal(Buffer.from(hdr.subarray(0, 13)).toString(), "rafs.blob.toc");
  const tocSize = parseInt(Buffer.from(hdr.subarray(124, 136)).toString().replace(/\0.*$/, "").trim(), 8);
  assert.equal(tocSize % 128, 0);
  const toc = blob.subarray(blob.length - 512 - tocSize, blob.length - 512);
  const dv = new DataView(toc.buffer, toc.byteOffset, toc.byteLength);
  const entries: TocEntry[] = [];
  for (let o = 0; o < toc.length; o += 128) {
    const rawName = toc.subarray(o + 8, o + 24);
    entries.push({
      flags: dv.getUint32(o, true),
      name: Buffer.from(rawName.subarray(0, rawName.indexOf(0) < 0 ? 16 : rawName.indexOf(0))).toString(),
      digest: toHex(toc.subarray(o + 24, o + 56)),
      compressedOffset: Number(dv.getBigUint64(o + 56, true)),
      compressedSize: Number(dv.getBigUint64(o + 64, true)),
      uncompressedSize: Number(dv.getBigUint64(o + 72, true)),
    });
  }
  const e = entries.find((x) => x.name === "image.boot")!;
  assert.equal(e.flags, 0x2, "image.boot is zstd-compressed");
  const stored = blob.subarray(e.compressedOffset, e.compressedOffset + e.compressedSize);
  const boot = codecByName("zstd").decompress(stored, e.uncompressedSize);
  assert.equal(sha256Hex(boot), e.digest, "ToC digest of image.boot is over the plain bootstrap");
  return { boot, entries };
}

// ---------------------------------------------------------------------------
// A synthetic image covering what the fixtures lack.

/** The synthetic tree; `kernelSymlinks` drops the targets Linux cannot create (> 4095 bytes). */
function syntheticTree(kernelSymlinks = false): { root: SynNode; big: Uint8Array; shared: SynNode } {
  const big = new Uint8Array(10000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
  const shared: SynNode = { kind: "reg", data: enc.encode("hardlinked\n") };
  const many = new Map<string, SynNode>();
  for (let i = 0; i < 300; i++) many.set(`f${String(i).padStart(3, "0")}`, shared);
  const root: SynNode = {
    kind: "dir",
    children: new Map<string, SynNode>([
      ["-dash", { kind: "reg", data: enc.encode("sorts before the dot\n"), uid: 1000, gid: 1001, mtime: 1_700_000_000, mtimeNsec: 5 }],
      ["big", { kind: "reg", data: big, perm: 0o600, xattrs: new Map([["user.foo", enc.encode("bar")], ["security.capability", new Uint8Array([1, 0, 0, 2])], ["trusted.t", new Uint8Array(0)]]) }],
      ["chr", { kind: "chr", rdev: { major: 1, minor: 3 } }],
      ["blk", { kind: "blk", rdev: { major: 259, minor: 0x12345 } }],
      ["compact", { kind: "reg", compact: true, data: big.subarray(0, 5000), uid: 7, gid: 8 }],
      ["empty", { kind: "reg", data: new Uint8Array(0) }],
      ["fifo", { kind: "fifo" }],
      ["hard", shared],
      ["link", { kind: "symlink", target: enc.encode("big") }],
      ["longlink", { kind: "symlink", target: enc.encode("x/".repeat(2500)) }],
      ["blocklink", { kind: "symlink", target: enc.encode("y".repeat(4096)) }],
      ["plainlink", { kind: "symlink", layout: "plain", target: enc.encode("z".repeat(3000)) }],
      ["many", { kind: "dir", children: many }],
      ["plaindir", { kind: "dir", layout: "plain", children: new Map([["inner", { kind: "dir", children: new Map([["deep", { kind: "reg", data: enc.encode("deep\n") }]]) }]]) }],
      ["sock", { kind: "sock" }],
    ]),
  };
  if (kernelSymlinks) {
    root.children!.delete("longlink");
    root.children!.delete("blocklink");
  }
  return { root, big, shared };
}

test("synthetic image: every kind, xattrs, rdev, hardlinks, multi-block and PLAIN/INLINE directories and symlinks", () => {
  const { root, big } = syntheticTree();
  const syn = buildSyntheticV6(root);
  const img = openRafsV6(syn.bootstrap);
  const r = img.inode(img.superBlock.rootIno);
  assert.deepEqual(names(img, r), ["-dash", "big", "blk", "blocklink", "chr", "compact", "empty", "fifo", "hard", "link", "longlink", "many", "plaindir", "plainlink", "sock"]);
  assert.equal(r.nlink, 4);
  // "-dash" sorts before "." in the on-disk order.
  assert.deepEqual(img.dirents(r).slice(0, 3).map((d) => Buffer.from(d.name).toString()), ["-dash", ".", ".."]);
  assert.deepEqual(img.prefetch, [img.superBlock.rootIno]);

  const dash = img.lookup("/-dash")!;
  assert.deepEqual([dash.uid, dash.gid, dash.mtime, dash.mtimeNsec], [1000, 1001, 1_700_000_000, 5]);
  const b = img.lookup("/big")!;
  assert.equal(b.mode, 0o100600);
  assert.deepEqual(b.xattrs, new Map([["security.capability", new Uint8Array([1, 0, 0, 2])], ["trusted.t", new Uint8Array(0)], ["user.foo", enc.encode("bar")]]));
  const bc = img.chunks(b);
  assert.deepEqual(bc.map((c) => [c.fileOffset, c.chunk.uncompressedSize]), [[0, 4096], [4096, 4096], [8192, 1808]]);
  assert.deepEqual(readFile(img, b, syn.view), big);
  const c = img.lookup("/compact")!;
  assert.equal(img.inodeRecord(c.ino).extended, false);
  assert.deepEqual([c.uid, c.gid, c.mtime, c.mtimeNsec, c.size], [7, 8, 0, 0, 5000]);
  assert.deepEqual(readFile(img, c, syn.view), big.subarray(0, 5000));
  // Dedup: compact's first chunk is big's first chunk.
  assert.equal(img.chunks(c)[0].chunk.index, bc[0].chunk.index);
  assert.deepEqual(img.chunks(img.lookup("/empty")!), []);

  const chr = img.lookup("/chr")!;
  assert.deepEqual([chr.kind, chr.rdevMajor, chr.rdevMinor], ["chr", 1, 3]);
  const blk = img.lookup("/blk")!;
  assert.deepEqual([blk.kind, blk.rdevMajor, blk.rdevMinor], ["blk", 259, 0x12345]);
  assert.equal(img.lookup("/fifo")!.kind, "fifo");
  assert.equal(img.lookup("/sock")!.kind, "sock");
  assert.equal(img.lookup("/fifo")!.rdevMajor, 0);

  assert.equal(Buffer.from(img.readlink(img.lookup("/link")!)).toString(), "big");
  const longlink = img.lookup("/longlink")!;
  assert.equal(img.inodeRecord(longlink.ino).layout, 2, "5000-byte target: one block + inline tail");
  assert.equal(Buffer.from(img.readlink(longlink)).toString(), "x/".repeat(2500));
  const blocklink = img.lookup("/blocklink")!;
  assert.equal(img.inodeRecord(blocklink.ino).layout, 0, "4096-byte target is PLAIN");
  assert.equal(Buffer.from(img.readlink(blocklink)).toString(), "y".repeat(4096));
  const plainlink = img.lookup("/plainlink")!;
  assert.equal(img.inodeRecord(plainlink.ino).layout, 0);
  assert.equal(Buffer.from(img.readlink(plainlink)).toString(), "z".repeat(3000));

  const many = img.lookup("/many")!;
  assert.ok(many.size > 4096, "two dirent blocks");
  const manyNames = names(img, many);
  assert.equal(manyNames.length, 300);
  assert.equal(manyNames[299], "f299");
  const hard = img.lookup("/hard")!;
  assert.equal(hard.nlink, 301);
  assert.ok(img.readdir(many).every((e) => e.ino === hard.ino));
  assert.equal(img.lookup("/many/f150")!.ino, hard.ino);
  assert.equal(img.inodeRecord(img.lookup("/plaindir")!.ino).layout, 0);
  assert.equal(Buffer.from(readFile(img, img.lookup("/plaindir/inner/deep")!, syn.view)).toString(), "deep\n");
  assert.equal(img.lookup("/plaindir/inner/./deep")!.ino, img.lookup("plaindir/inner/deep")!.ino);

  // walkRafs: pre-order, each link once per entry, deterministic.
  const walked = [...walkRafs(img)].map((e) => e.path);
  assert.equal(walked.length, 1 + 15 + 300 + 2);
  assert.deepEqual(walked.slice(0, 3), ["/", "/-dash", "/big"]);
  const expected = ["/", ...["-dash", "big", "blk", "blocklink", "chr", "compact", "empty", "fifo", "hard", "link", "longlink", "many"].map((n) => `/${n}`)];
  for (let i = 0; i < 300; i++) expected.push(`/many/f${String(i).padStart(3, "0")}`);
  expected.push("/plaindir", "/plaindir/inner", "/plaindir/inner/deep", "/plainlink", "/sock");
  assert.deepEqual(walked, expected);
  assert.deepEqual([...walkRafs(img)].map((e) => e.path), walked);
});

test("reader rejections name struct, field and offset", () => {
  const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
    const b = new Uint8Array(BOOT);
    f(b, new DataView(b.buffer));
    return b;
  };
  const expectFormat = (bytes: Uint8Array, struct: string, field: string, offset: number, run?: (img: RafsV6Image) => unknown) => {
    assert.throws(
      () => {
        const img = openRafsV6(bytes);
        if (run) run(img);
      },
      (e: unknown) => {
        assert.ok(e instanceof FormatError, String(e));
        assert.deepEqual([e.struct, e.field, e.offset], [struct, field, offset], e.message);
        return true;
      },
    );
  };
  expectFormat(BOOT.subarray(0, 1000), "ErofsSuperBlock", "(size)", 1024);
  expectFormat(mutate((b) => (b[1024] = 0)), "RafsV6SuperBlock", "s_magic", 1024);
  expectFormat(BOOT.subarray(0, 20000), "RafsV6SuperBlock", "image_size", 0);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1044, 4096, true)), "RafsV6Blob", "chunk_size", 0x1044);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1040, 1, true)), "RafsV6Blob", "blob_index", 0x1040);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1054, 0x7000_0020, true)), "RafsV6Blob", "features", 0x1054);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1054, 0x7000_1021, true)), "RafsV6Blob", "features", 0x1054);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1054, 0xf000_0021, true)), "RafsV6Blob", "features", 0x1054);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1048, 3, true)), "RafsV6Blob", "ci_uncompressed_size", 0x1080);
  expectFormat(mutate((_, dv) => dv.setUint32(0x1048, 0x100_0001, true)), "RafsV6Blob", "chunk_count", 0x1048);
  expectFormat(mutate((_, dv) => dv.setUint32(0x5c0, 0, true)), "RafsV6Device", "blocks", 0x5c0);
  expectFormat(mutate((b) => (b[0x580] = 0x30)), "RafsV6Device", "blob_id", 0x580);
  expectFormat(mutate((_, dv) => dv.setUint16(0x456, 2, true)), "RafsV6SuperBlock", "s_extra_devices", 0x456);
  expectFormat(mutate((_, dv) => dv.setUint16(0x40e, 133, true)), "RafsV6SuperBlock", "s_root_nid", 0x40e);
  expectFormat(mutate((_, dv) => dv.setUint16(0x40e, 0xffff, true)), "RafsV6Inode", "nid", 0x2000);
  // Dirent pointing outside the meta area (the chunk table starts at 0x4000 → max nid (0x4000-0x2000)/32).
  expectFormat(mutate((_, dv) => dv.setBigUint64(0x3058, 300n, true)), "RafsV6Dirent", "e_nid", 0x3058, (img) => img.readdir(img.inode(128)));
  // Dirent type REG pointing at the (directory) root.
  expectFormat(mutate((_, dv) => dv.setBigUint64(0x3058, 128n, true)), "RafsV6Dirent", "e_file_type", 0x3062, (img) => img.readdir(img.inode(128)));
  // Names out of order: swap "lib.rs" → "zib.rs".
  expectFormat(mutate((b) => (b[0x3073] = 0x7a)), "RafsV6Dirent", "e_nameoff", 0x306c, (img) => img.readdir(img.inode(128)));
  // "." pointing elsewhere.
  expectFormat(mutate((_, dv) => dv.setBigUint64(0x3040, 133n, true)), "RafsV6Dirent", "e_nid", 0x3040, (img) => img.readdir(img.inode(128)));
  // A chunk address without a chunk-table record names the inode.
  expectFormat(mutate((_, dv) => dv.setUint32(0x30e4, 7, true)), "RafsV6InodeChunkAddr", "c_blk_addr", 0x30e0, (img) => img.chunks(img.inode(133)));
  assert.throws(() => openRafsV6(mutate((_, dv) => dv.setUint32(0x30e4, 7, true))).chunks(openRafsV6(mutate((_, dv) => dv.setUint32(0x30e4, 7, true))).inode(133)), /nid 133/);
  // Device id 2 with one blob.
  expectFormat(mutate((_, dv) => dv.setUint16(0x30e2, 2, true)), "RafsV6InodeChunkAddr", "c_blob_addr_hi", 0x30e2, (img) => img.chunks(img.inode(133)));
  // File size needing more chunk addresses than the meta area holds.
  expectFormat(mutate((_, dv) => dv.setBigUint64(0x30a8, 1n << 50n, true)), "RafsV6InodeExtended", "i_size", 0x30a8, (img) => img.chunks(img.inode(133)));
  // Second chunk of a file whose record says 16931 bytes: size now needs 2 chunks but only one record length fits.
  expectFormat(mutate((_, dv) => dv.setBigUint64(0x30a8, 16930n, true)), "RafsV5ChunkInfo", "uncompressed_size", 0x30e0, (img) => img.chunks(img.inode(133)));
  // Regular file with a FLAT_INLINE layout.
  expectFormat(mutate((_, dv) => dv.setUint16(0x30a0, 5, true)), "RafsV6InodeExtended", "i_format", 0x30a0, (img) => img.inode(133));
  // Unknown i_format bits.
  expectFormat(mutate((_, dv) => dv.setUint16(0x30a0, 0x19, true)), "ErofsInode", "i_format", 0x30a0, (img) => img.inode(133));
  // Unknown file type in the mode.
  expectFormat(mutate((_, dv) => dv.setUint16(0x30a4, 0o644, true)), "RafsV6InodeExtended", "i_mode", 0x30a4, (img) => img.inode(133));
  // Directory data beyond the file (root made PLAIN at a huge block).
  expectFormat(
    mutate((_, dv) => {
      dv.setUint16(0x3000, 1, true);
      dv.setUint32(0x3010, 0x10_0000, true);
    }),
    "RafsV6InodeExtended",
    "i_u",
    0x3010,
    (img) => img.readdir(img.inode(128)),
  );
  // Chunk record naming a blob that does not exist.
  expectFormat(mutate((_, dv) => dv.setUint32(0x4020, 5, true)), "RafsV5ChunkInfo", "blob_index", 0x4020);
  // Wrong-kind calls are argument errors.
  const img = openRafsV6(BOOT);
  assert.throws(() => img.readlink(img.inode(133)), TypeError);
  assert.throws(() => img.chunks(img.inode(128)), TypeError);
  assert.throws(() => img.readdir(img.inode(133)), TypeError);
});

test("walkRafs stops at a directory loop instead of recursing forever", () => {
  const { root } = syntheticTree();
  const syn = buildSyntheticV6(root);
  const img = openRafsV6(syn.bootstrap);
  // Point /plaindir/inner's "deep" entry at /plaindir (an ancestor) with type DIR.
  const inner = img.lookup("/plaindir/inner")!;
  const plaindir = img.lookup("/plaindir")!;
  const bytes = new Uint8Array(syn.bootstrap);
  const dv = new DataView(bytes.buffer);
  const ents = img.dirents(inner);
  const idx = ents.findIndex((e) => Buffer.from(e.name).toString() === "deep");
  const innerOff = img.inodeOffset(inner.ino);
  const dirent = innerOff + 64 + 12 * idx;
  dv.setBigUint64(dirent, BigInt(plaindir.ino), true);
  bytes[dirent + 10] = 2;
  const bad = openRafsV6(bytes);
  assert.throws(
    () => [...walkRafs(bad)],
    (e: unknown) => e instanceof FormatError && e.struct === "RafsDirectory" && /reached twice/.test(e.message) && e.offset === img.inodeOffset(plaindir.ino),
  );
});

// ---------------------------------------------------------------------------
// erofs-utils as an oracle.

function erofsUtils(): string | undefined {
  for (const tool of ["dump.erofs", "fsck.erofs"]) {
    const r = spawnSync(tool, ["-V"], { encoding: "utf8" });
    if (r.error || r.status !== 0) return `${tool} is not installed (${r.error?.message ?? `exit ${r.status}`})`;
  }
  return undefined;
}

function run(tool: string, args: string[]): string {
  const r = spawnSync(tool, args, { encoding: "utf8" });
  assert.equal(r.status, 0, `${tool} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

/** Compares dump.erofs / fsck.erofs --extract with the reader on one image. */
function oracleCheck(t: { diagnostic(msg: string): void }, boot: Uint8Array, view: Uint8Array): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-ts-v6-oracle-"));
  try {
    const bootPath = path.join(dir, "boot");
    const viewPath = path.join(dir, "view");
    fs.writeFileSync(bootPath, boot);
    fs.writeFileSync(viewPath, view);
    const img = openRafsV6(boot);
    const s = run("dump.erofs", [`--device=${viewPath}`, "-s", bootPath]);
    assert.match(s, /magic number:\s+0xE0F5E1E2/);
    assert.equal(Number(/root nid:\s+(\d+)/.exec(s)![1]), img.superBlock.rootIno);
    assert.equal(Number(/inode count:\s+(\d+)/.exec(s)![1]), img.superBlock.inodeCount);
    assert.equal(Number(/metadata start block:\s+(\d+)/.exec(s)![1]), img.metaAddr / 4096);
    assert.equal(Number(/Filesystem blocks:\s+(\d+)/.exec(s)![1]), img.superBlockRecord.blocks + img.devices.reduce((a, d) => a + d.blocks, 0));

    for (const { path: p, inode } of walkRafs(img)) {
      const info = run("dump.erofs", [`--device=${viewPath}`, `--path=${p}`, bootPath]);
      assert.equal(Number(/NID:\s+(\d+)/.exec(info)![1]), inode.ino, p);
      assert.equal(Number(/Size:\s+(\d+)/.exec(info)![1]), inode.size, p);
      assert.equal(Number(/Links:\s+(\d+)/.exec(info)![1]), inode.nlink, p);
      assert.equal(parseInt(/Access:\s+(\d+)/.exec(info)![1], 8), inode.mode & 0o7777, p);
      assert.equal(Number(/Uid:\s+(\d+)/.exec(info)![1]), inode.uid, p);
      assert.equal(Number(/Gid:\s+(\d+)/.exec(info)![1]), inode.gid, p);
      const nsec = /Timestamp: .*\.(\d{9})/.exec(info);
      if (nsec && img.inodeRecord(inode.ino).extended) assert.equal(Number(nsec[1]), inode.mtimeNsec, p);
      if (inode.kind !== "dir") continue;
      const ls = run("dump.erofs", [`--device=${viewPath}`, "--ls", `--path=${p}`, bootPath]);
      const listed = ls
        .split("\n")
        .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => [m![3], Number(m![1]), Number(m![2])]);
      assert.deepEqual(
        listed,
        img.dirents(inode).map((d) => [Buffer.from(d.name).toString(), d.nid, d.fileType]),
        p,
      );
    }

    const out = path.join(dir, "out");
    run("fsck.erofs", [`--device=${viewPath}`, `--extract=${out}`, bootPath]);
    let files = 0;
    for (const { path: p, inode } of walkRafs(img)) {
      const on = path.join(out, p);
      const st = fs.lstatSync(on);
      assert.equal(st.mode & 0o170000, inode.mode & 0o170000, p);
      if (inode.kind === "reg") {
        const data = new Uint8Array(inode.size);
        for (const { chunk, fileOffset } of img.chunks(inode)) {
          data.set(view.subarray(chunk.uncompressedOffset, chunk.uncompressedOffset + chunk.uncompressedSize), fileOffset);
        }
        assert.deepEqual(fs.readFileSync(on), Buffer.from(data), p);
        files++;
      } else if (inode.kind === "symlink") {
        assert.equal(fs.readlinkSync(on, { encoding: "buffer" }).toString("latin1"), Buffer.from(img.readlink(inode)).toString("latin1"), p);
      } else if (inode.kind === "chr" || inode.kind === "blk") {
        assert.deepEqual([Math.floor(st.rdev / 256) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)], [inode.rdevMajor, inode.rdevMinor], p);
      }
    }
    t.diagnostic(`dump.erofs/fsck.erofs agree on ${files} files`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("dump.erofs and fsck.erofs agree with the reader on rafs-v6-2.2.boot", (t) => {
  const why = erofsUtils();
  if (why) return t.skip(why);
  const img = openRafsV6(BOOT);
  const view = blobCacheView(img, BLOB);
  assert.equal(view.length, 36864);
  oracleCheck(t, BOOT, view);
});

test("dump.erofs and fsck.erofs agree with the reader on the ToC fixture's embedded bootstrap", (t) => {
  const why = erofsUtils();
  if (why) return t.skip(why);
  const blob = codecByName("zstd").decompress(fs.readFileSync(fixture("2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca.zst")), 10034);
  const { boot } = extractTocBoot(blob);
  oracleCheck(t, boot, blobCacheView(openRafsV6(boot), blob));
});

test("dump.erofs and fsck.erofs agree with the reader on the synthetic image", (t) => {
  const why = erofsUtils();
  if (why) return t.skip(why);
  if (process.getuid?.() !== 0) return t.skip("extracting device nodes needs root");
  const syn = buildSyntheticV6(syntheticTree(true).root);
  oracleCheck(t, syn.bootstrap, syn.view);
});

test("chunk table: records sharing a blob and ci_index are told apart by their block", () => {
  // Give both fixture records ci_index 0 (blocks 5 and 0), and point sync_io.rs's chunk address
  // at ci_index 0 too: each file must still get its own record, found by its block.
  const bytes = BOOT.slice();
  const img0 = openRafsV6(BOOT);
  const ext = img0.extSuperBlock;
  const syncAddr = encodeChunkAddr({ blobIndex: 0, chunkIndex: 1, blkAddr: 5 });
  const at = Buffer.from(bytes).indexOf(Buffer.from(syncAddr), img0.inodeOffset(136));
  assert.ok(at > 0 && at < img0.inodeOffset(136) + 0x60, "sync_io.rs's chunk address is after its inode");
  bytes.set(encodeChunkAddr({ blobIndex: 0, chunkIndex: 0, blkAddr: 5 }), at);
  const recIndexAt = ext.chunkTableOffset + 72; // record 0 (sync_io.rs's chunk) index field
  assert.equal(new DataView(bytes.buffer).getUint32(recIndexAt, true), 1);
  new DataView(bytes.buffer).setUint32(recIndexAt, 0, true);

  const img = openRafsV6(bytes);
  const lib = img.lookup("/lib.rs")!;
  const sync = img.lookup("/sync_io.rs")!;
  assert.deepEqual(img.chunks(lib).map((c) => [c.chunk.index, c.chunk.uncompressedOffset]), [[0, 0]]);
  assert.deepEqual(img.chunks(sync).map((c) => [c.chunk.index, c.chunk.uncompressedOffset]), [[0, 0x5000]]);
  assert.equal(readFile(img, sync, BLOB).length, sync.size);
  assert.equal(toHex(hash("blake3", readFile(img, sync, BLOB))), toHex(img.chunks(sync)[0]!.chunk.digest));

  // An address whose block matches neither record finds none.
  bytes.set(encodeChunkAddr({ blobIndex: 0, chunkIndex: 0, blkAddr: 7 }), at);
  assert.throws(() => openRafsV6(bytes).chunks(sync), (e: unknown) => e instanceof FormatError && /no chunk-table record for blob 0 index 0 block 7/.test(e.message));
});
