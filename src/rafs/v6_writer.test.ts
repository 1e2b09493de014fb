import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { fixture } from "../../test/support/paths.ts";
import { codecByName } from "../compression/codec.ts";
import { hash, sha256Hex } from "../digest/hasher.ts";
import { decodeChunkAddr, decodeDirentBlock, decodeInode, decodeSuperBlock, decodeXattrArea } from "../erofs/format.ts";
import { decodeChunkRecord } from "./chunk_record.ts";
import { RafsFlags, decodeBlobEntry, decodeExtSuperBlock, decodePrefetchTable } from "./format.ts";
import type { BlobInfo, ChunkInfo, FileChunk, FileKind, TreeEntry, TreeInode } from "./model.ts";
import { writeBootstrapV6, type WriteBootstrapV6Options } from "./v6_writer.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const MiB = 0x100000;

function mk(kind: FileKind, extra: Partial<TreeInode> = {}): TreeInode {
  return { kind, mode: kind === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map(), size: 0, ...extra };
}
const entry = (name: string, inode: TreeInode): TreeEntry => ({ name: enc(name), inode });

/** A blob entry with plausible numbers. */
function blobInfo(id: string, chunkCount: number, uncompressedSize: number, features = 0x4000_0001): BlobInfo {
  return {
    blobId: id,
    chunkSize: MiB,
    chunkCount,
    compressor: "none",
    digester: "blake3",
    features,
    compressedSize: uncompressedSize,
    uncompressedSize,
    tocSize: 0,
    tocDigest: new Uint8Array(32),
    ciCompressor: "none",
    ciOffset: uncompressedSize,
    ciCompressedSize: 16 * chunkCount,
    ciUncompressedSize: 16 * chunkCount,
  };
}

/** A file whose chunks are laid out from `startOffset` in blob `blobIndex` with ci indexes from `startIndex`. */
function fileAt(size: number, o: { blobIndex?: number; startOffset?: number; startIndex?: number; gap?: number; seed?: number } = {}): TreeInode {
  const chunks: FileChunk[] = [];
  let uoff = o.startOffset ?? 0;
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    const len = Math.min(MiB, size - off);
    const digest = new Uint8Array(32).fill((o.seed ?? 1) + i);
    const chunk: ChunkInfo = {
      digest,
      blobIndex: o.blobIndex ?? 0,
      index: (o.startIndex ?? 0) + i,
      compressedOffset: uoff,
      compressedSize: len,
      uncompressedOffset: uoff,
      uncompressedSize: len,
      compressed: false,
      crc32: 0x1234_0000 + i,
    };
    chunks.push({ chunk, fileOffset: off });
    uoff += Math.ceil(len / 4096) * 4096 + (o.gap ?? 0);
  }
  return mk("reg", { size, chunks });
}

const baseOptions = (blobs: BlobInfo[]): WriteBootstrapV6Options => ({ blobs, chunkSize: MiB, compressor: "zstd", digester: "blake3" });

// ---------------------------------------------------------------------------
// 1. Upstream fixture rebuilt from a hand-made tree.

test("rebuilds rafs-v6-2.2.boot byte for byte (modulo the documented §12 builder differences)", () => {
  const expected = new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot")));
  const blobBytes = new Uint8Array(fs.readFileSync(fixture("blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef")));
  // Chunk digests from the data blob itself: blake3 of each decompressed chunk (§10.8).
  const zstd = codecByName("zstd");
  const libDigest = hash("blake3", zstd.decompress(blobBytes.subarray(0, 4828), 16931));
  const syncDigest = hash("blake3", zstd.decompress(blobBytes.subarray(4828, 7802), 13400));
  // ToC digest (§10.8): sha256 of ToC data + its tar header.
  const tocDigest = new Uint8Array(Buffer.from(sha256Hex(blobBytes.subarray(13530, 14554)), "hex"));

  const blob: BlobInfo = {
    blobId: "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef",
    chunkSize: MiB,
    chunkCount: 2,
    compressor: "zstd",
    digester: "blake3",
    features: 0x7000_0021,
    compressedSize: 14554,
    uncompressedSize: 0x9000,
    tocSize: 0x400,
    tocDigest,
    ciCompressor: "none",
    ciOffset: 8314,
    ciCompressedSize: 32,
    ciUncompressedSize: 32,
  };
  // §10.7, built without crc32 (older builder: no HAS_CRC32).
  const libChunk: ChunkInfo = { digest: libDigest, blobIndex: 0, index: 0, compressedOffset: 0, compressedSize: 4828, uncompressedOffset: 0, uncompressedSize: 16931, compressed: true };
  const syncChunk: ChunkInfo = { digest: syncDigest, blobIndex: 0, index: 1, compressedOffset: 4828, compressedSize: 2974, uncompressedOffset: 0x5000, uncompressedSize: 13400, compressed: true };
  const file = (size: number, nsec: number, chunk: ChunkInfo) => mk("reg", { mode: 0o100644, size, mtime: 1676819553, mtimeNsec: nsec, chunks: [{ chunk, fileOffset: 0 }] });
  const root = mk("dir", {
    mode: 0o40755,
    mtime: 1676819999,
    mtimeNsec: 5,
    children: [entry("sync_io.rs", file(13400, 0x257dac3c, syncChunk)), entry("lib.rs", file(16931, 0x25789c56, libChunk))],
  });

  const actual = writeBootstrapV6(root, baseOptions([blob]));
  assert.equal(actual.length, expected.length, "bootstrap size");

  // What the current builder writes at the §12 places, then the older builder's values patched in.
  const dv = new DataView(actual.buffer, actual.byteOffset, actual.byteLength);
  assert.equal(dv.getUint32(0x3014, true), 1, "current builder: root i_ino 1");
  dv.setUint32(0x3014, 0, true);
  assert.equal(dv.getBigUint64(0x480, true), 0x0100_0194n, "current builder: flags incl. ENCRYPTION_NONE");
  dv.setBigUint64(0x480, 0x194n, true);
  assert.equal(dv.getUint32(0x5c4, true), 0x80, "current builder: mapped_blkaddr 512 KiB aligned (20480 → 0x80000)");
  dv.setUint32(0x5c4, 0x200, true);

  const firstDiff = actual.findIndex((b, i) => b !== expected[i]);
  assert.equal(firstDiff, -1, `first differing byte at offset 0x${firstDiff.toString(16)}: ours ${actual[firstDiff]}, fixture ${expected[firstDiff]}`);
});

// ---------------------------------------------------------------------------
// 3. Unit checks of fields.

test("chunk-format continuity: 0x2A for a continuous 2.1 MiB file, 0x28 otherwise", () => {
  const size = 2.1 * MiB;
  const cont = fileAt(Math.floor(size));
  const gap = fileAt(Math.floor(size), { startOffset: 0x40_0000, startIndex: 3, gap: 4096, seed: 50 });
  const one = fileAt(MiB, { startOffset: 0x80_0000, startIndex: 9, seed: 90 });
  const root = mk("dir", { children: [entry("cont", cont), entry("gap", gap), entry("one", one)] });
  const boot = writeBootstrapV6(root, baseOptions([blobInfo("a".repeat(64), 10, 0x90_0000)]));
  const meta = decodeSuperBlock(boot.subarray(1024), 1024).metaBlkaddr * 4096;
  // Root inline (". .. cont gap one" = 27 + 3*12 + 10 = 73 bytes) at 4096; files follow at 32-aligned slots.
  const inodeAt = (nid: number) => decodeInode(boot.subarray(meta + nid * 32), meta + nid * 32);
  const names = direntsOf(boot, meta, 128);
  assert.deepEqual(names.map((d) => d.name), [".", "..", "cont", "gap", "one"]);
  const [c, g, o] = names.slice(2).map((d) => inodeAt(d.nid));
  assert.equal(c!.u, 0x2a, "continuous 2.1 MiB → next_power_of_two = 4 MiB chunks");
  assert.equal(g!.u, 0x28, "a 4 KiB gap breaks continuity");
  assert.equal(o!.u, 0x28, "exactly one chunk size: no optimisation");
  // Different blob breaks continuity too.
  const twoBlobs = fileAt(2 * MiB + 1);
  twoBlobs.chunks![1] = { ...twoBlobs.chunks![1]!, chunk: { ...twoBlobs.chunks![1]!.chunk, blobIndex: 1, uncompressedOffset: MiB } };
  const boot2 = writeBootstrapV6(mk("dir", { children: [entry("f", twoBlobs)] }), baseOptions([blobInfo("a".repeat(64), 3, 0x40_0000), blobInfo("b".repeat(64), 1, 0x20_0000)]));
  const meta2 = decodeSuperBlock(boot2.subarray(1024), 1024).metaBlkaddr * 4096;
  const f = direntsOf(boot2, meta2, 128)[2]!;
  assert.equal(decodeInode(boot2.subarray(meta2 + f.nid * 32), 0).u, 0x28);
  const addr1 = decodeChunkAddr(boot2.subarray(meta2 + f.nid * 32 + 64 + 8), 0);
  assert.deepEqual(addr1, { blobIndex: 1, chunkIndex: 1, blkAddr: MiB / 4096 });
});

function direntsOf(boot: Uint8Array, meta: number, nid: number) {
  const ino = decodeInode(boot.subarray(meta + nid * 32), meta + nid * 32);
  assert.ok(ino.size < 4096 && ino.layout === 2, "helper handles one inline block only");
  return decodeDirentBlock(boot.subarray(meta + nid * 32 + 64 + ino.xattrIcount * 4 + (ino.xattrIcount ? 8 : 0)), ino.size, 0).map((d) => ({
    name: Buffer.from(d.name).toString(),
    nid: d.nid,
    fileType: d.fileType,
  }));
}

test("hardlinks, nlink, i_ino, devices, root attributes, uid/gid, xattrs, flags", () => {
  const shared = fileAt(100, { seed: 7 });
  shared.uid = 1000;
  shared.gid = 1001;
  const chr = mk("chr", { mode: 0o20620, rdevMajor: 4, rdevMinor: 0x12345 });
  chr.xattrs.set("user.b", enc("2"));
  chr.xattrs.set("trusted.a", enc("1"));
  const root = mk("dir", {
    mtime: 99,
    mtimeNsec: 7,
    children: [entry("d", mk("dir", { children: [entry("link2", shared), entry("sub", mk("dir"))] })), entry("f", shared), entry("tty", chr)],
  });
  const blobs = [blobInfo("c".repeat(64), 1, 4096)];
  const boot = writeBootstrapV6(root, baseOptions(blobs));
  const sb = decodeSuperBlock(boot.subarray(1024), 1024);
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  const meta = sb.metaBlkaddr * 4096;
  assert.equal(sb.rootNid, 128);
  assert.equal(sb.inos, 6, "/, d, f, tty, link2, sub");
  assert.equal(sb.blocks, 1);
  assert.equal(ext.flags, RafsFlags.CompressionZstd | RafsFlags.HashBlake3 | RafsFlags.EncryptionNone | RafsFlags.ExplicitUidGid | RafsFlags.HasXattr);
  const rootIno = decodeInode(boot.subarray(meta + 4096), 0);
  assert.deepEqual([rootIno.ino, rootIno.mtime, rootIno.mtimeNsec, rootIno.nlink, rootIno.mode], [1, 0, 0, 3, 0o40755]);
  const top = direntsOf(boot, meta, 128);
  const byName = Object.fromEntries(top.map((d) => [d.name, d]));
  const f = decodeInode(boot.subarray(meta + byName.f!.nid * 32), 0);
  assert.deepEqual([f.ino, f.nlink, f.uid, f.gid, f.mode], [3, 2, 1000, 1001, 0o100644]);
  const dEntries = direntsOf(boot, meta, byName.d!.nid);
  assert.equal(dEntries.find((e) => e.name === "link2")!.nid, byName.f!.nid, "hardlink shares the first link's nid");
  assert.equal(dEntries.find((e) => e.name === "..")!.nid, 128);
  assert.equal(decodeInode(boot.subarray(meta + byName.d!.nid * 32), 0).nlink, 3);
  const tty = decodeInode(boot.subarray(meta + byName.tty!.nid * 32), 0);
  assert.equal(tty.u, (0x45 | (4 << 8) | (0x123 << 20)) >>> 0, "new_encode_dev(4, 0x12345)");
  assert.equal(tty.layout, 0);
  const xa = decodeXattrArea(boot.subarray(meta + byName.tty!.nid * 32 + 64), tty.xattrIcount, 0);
  assert.deepEqual([...xa.keys()], ["trusted.a", "user.b"], "xattrs sorted by full name");
  assert.equal(byName.tty!.fileType, 3);

  // Not explicit: uid/gid dropped, flag cleared.
  const rep = writeBootstrapV6(root, { ...baseOptions(blobs), explicitUidGid: false });
  const repF = decodeInode(rep.subarray(meta + byName.f!.nid * 32), 0);
  assert.deepEqual([repF.uid, repF.gid], [0, 0]);
  assert.equal(decodeExtSuperBlock(rep.subarray(1152), 1152).flags & RafsFlags.ExplicitUidGid, 0n);
});

test("chunk table: sorted by (digest, blob), deduplicated, last writer's file offset, HAS_CRC32", () => {
  const dig = (b: number) => new Uint8Array(32).fill(b);
  const c = (d: number, blobIndex: number, index: number, uoff: number, crc?: number): ChunkInfo => ({
    digest: dig(d),
    blobIndex,
    index,
    compressedOffset: uoff,
    compressedSize: MiB,
    uncompressedOffset: uoff,
    uncompressedSize: MiB,
    compressed: false,
    ...(crc === undefined ? {} : { crc32: crc }),
  });
  const shared = c(5, 0, 0, 0, 0xdeadbeef);
  const a = mk("reg", { size: 2 * MiB, chunks: [{ chunk: shared, fileOffset: 0 }, { chunk: c(9, 0, 1, MiB), fileOffset: MiB }] });
  const b = mk("reg", { size: 3 * MiB, chunks: [{ chunk: c(1, 1, 0, 0), fileOffset: 0 }, { chunk: shared, fileOffset: MiB }, { chunk: c(5, 1, 1, MiB), fileOffset: 2 * MiB }] });
  const root = mk("dir", { children: [entry("a", a), entry("b", b)] });
  const boot = writeBootstrapV6(root, baseOptions([blobInfo("d".repeat(64), 2, 2 * MiB), blobInfo("e".repeat(64), 2, 2 * MiB)]));
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  assert.equal(ext.chunkTableSize, 4 * 80);
  const recs = [0, 1, 2, 3].map((i) => decodeChunkRecord(boot, ext.chunkTableOffset + 80 * i));
  assert.deepEqual(
    recs.map((r) => [r.blockId[0], r.blobIndex, r.index, r.fileOffset, r.flags, r.crc32]),
    [
      [1, 1, 0, 0, 0, 0],
      [5, 0, 0, MiB, 0x10, 0xdeadbeef],
      [5, 1, 1, 2 * MiB, 0, 0],
      [9, 0, 1, MiB, 0, 0],
    ],
  );
  assert.equal(ext.chunkTableOffset % 4096, 0);
  assert.equal(boot.length % 4096, 0);
});

test("chunk table: digests equal in their first bytes still sort by all 32, and duplicates keep the last reference", () => {
  // 60 files of one chunk each, over 12 digests that share their first 6 bytes in pairs (so the
  // sort's leading number ties) and differ later, in two blobs; the reference is a plain sort.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const digests = Array.from({ length: 12 }, (_, i) => {
    const d = new Uint8Array(32);
    d[0] = i >> 1; // pairs share bytes 0..5
    d[6 + Math.floor(rnd() * 26)] = 1 + Math.floor(rnd() * 255);
    return d;
  });
  const children: TreeEntry[] = [];
  const refs: { name: string; d: Uint8Array; blob: number }[] = [];
  for (let f = 0; f < 60; f++) {
    const d = digests[Math.floor(rnd() * digests.length)]!;
    const blob = rnd() < 0.5 ? 0 : 1;
    const name = `f${String(f).padStart(2, "0")}`;
    refs.push({ name, d, blob });
    const chunk: ChunkInfo = { digest: d, blobIndex: blob, index: f, compressedOffset: 0, compressedSize: 4096, uncompressedOffset: f * 4096, uncompressedSize: 4096, compressed: false };
    children.push(entry(name, mk("reg", { size: 4096, chunks: [{ chunk, fileOffset: 0 }] })));
  }
  const boot = writeBootstrapV6(mk("dir", { children }), baseOptions([blobInfo("d".repeat(64), 60, 60 * 4096), blobInfo("e".repeat(64), 60, 60 * 4096)]));
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  const got = Array.from({ length: ext.chunkTableSize / 80 }, (_, i) => decodeChunkRecord(boot, ext.chunkTableOffset + 80 * i));
  // Reference: the last reference (files are in name order = dump order) per (digest, blob), sorted by bytes then blob.
  const last = new Map<string, { d: Uint8Array; blob: number; index: number }>();
  refs.forEach((r, f) => last.set(`${Buffer.from(r.d).toString("hex")}/${r.blob}`, { d: r.d, blob: r.blob, index: f }));
  const want = [...last.values()].sort((a, b) => Buffer.compare(a.d, b.d) || a.blob - b.blob);
  assert.ok(want.length > 12, "the case has duplicates across blobs");
  assert.deepEqual(
    got.map((r) => [Buffer.from(r.blockId).toString("hex"), r.blobIndex, r.index]),
    want.map((w) => [Buffer.from(w.d).toString("hex"), w.blob, w.index]),
  );
});

test("device slots, blob table and mapped_blkaddr (512 KiB rule)", () => {
  const blobs = [blobInfo("1".repeat(64), 1, 0x12_3000, 0x4000_0021), blobInfo("2".repeat(64), 1, 0x1000, 0x4000_0001)];
  const root = mk("dir", { children: [entry("a", fileAt(4096, { seed: 1 })), entry("b", fileAt(4096, { blobIndex: 1, seed: 2 }))] });
  const boot = writeBootstrapV6(root, baseOptions(blobs));
  const sb = decodeSuperBlock(boot.subarray(1024), 1024);
  assert.equal(sb.extraDevices, 2);
  assert.equal(sb.blocks, 0x123 + 1);
  const dv = new DataView(boot.buffer);
  const m0 = Math.ceil(boot.length / 0x80000) * 0x80;
  assert.deepEqual([dv.getUint32(1408 + 64, true), dv.getUint32(1408 + 68, true)], [0x123, m0]);
  const m1 = Math.ceil(((m0 + 0x123) * 4096) / 0x80000) * 0x80;
  assert.deepEqual([dv.getUint32(1536 + 64, true), dv.getUint32(1536 + 68, true)], [1, m1]);
  const e1 = decodeBlobEntry(boot.subarray(4096 + 256), 4096 + 256);
  assert.equal(e1.blobIndex, 1);
  assert.equal(e1.blobId, "2".repeat(64));
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  assert.equal(ext.flags & RafsFlags.InlinedChunkDigest, 0n, "not every blob inlines digests");
  assert.equal(ext.blobTableOffset, 4096);
  assert.equal(ext.blobTableSize, 512);
});

test("zero blobs: meta_addr 0, no prefetch table, INLINED_CHUNK_DIGEST vacuously set", () => {
  const root = mk("dir", { children: [entry("empty", mk("reg")), entry("l", mk("symlink", { mode: 0o777, symlinkTarget: enc("target") }))] });
  const boot = writeBootstrapV6(root, { ...baseOptions([]), prefetchPaths: ["/l"] });
  const sb = decodeSuperBlock(boot.subarray(1024), 1024);
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  assert.deepEqual([sb.metaBlkaddr, sb.blocks, sb.extraDevices, sb.rootNid], [0, 0, 0, 128]);
  assert.deepEqual([ext.prefetchTableOffset, ext.prefetchTableSize, ext.chunkTableSize], [0, 0, 0]);
  assert.ok(ext.flags & RafsFlags.InlinedChunkDigest);
  assert.equal(ext.chunkTableOffset, boot.length);
  const root0 = decodeInode(boot.subarray(4096), 4096);
  assert.equal(root0.mode, 0o40755);
});

test("prefetch table: pattern order, covered patterns dropped, missing and empty files ignored", () => {
  const root = mk("dir", {
    children: [
      entry("a", mk("dir", { children: [entry("b", mk("dir", { children: [entry("c", fileAt(10, { seed: 3 }))] }))] })),
      entry("empty", mk("reg")),
      entry("f", fileAt(10, { seed: 4 })),
      entry("ghost-parent", mk("fifo")),
    ],
  });
  const blobs = [blobInfo("f".repeat(64), 2, 8192)];
  const paths = ["/f", "/a/b", "/a/b/c", "/missing", "/missing/x", "/empty", "/a", "/f/", "/a//b/./c", "/"];
  const boot = writeBootstrapV6(root, { ...baseOptions(blobs), prefetchPaths: paths });
  const ext = decodeExtSuperBlock(boot.subarray(1152), 1152);
  const sb = decodeSuperBlock(boot.subarray(1024), 1024);
  const meta = sb.metaBlkaddr * 4096;
  const top = Object.fromEntries(direntsOf(boot, meta, 128).map((d) => [d.name, d.nid]));
  const b = direntsOf(boot, meta, top.a!).find((d) => d.name === "b")!.nid;
  assert.equal(ext.prefetchTableOffset, 4096 + 256);
  // "/f" ok, "/a/b" ok, "/a/b/c" covered, "/missing" counts as a pattern but matches nothing, "/missing/x" covered,
  // "/empty" is an empty file, "/a" ok (a later ancestor is not covered), "/f/" = "/f" duplicate, "/a//b/./c" covered, "/" ok.
  assert.deepEqual(decodePrefetchTable(boot.subarray(ext.prefetchTableOffset, ext.prefetchTableOffset + ext.prefetchTableSize), 0), [top.f, b, top.a, 128]);
  assert.equal(sb.metaBlkaddr, 2);
  assert.throws(() => writeBootstrapV6(root, { ...baseOptions(blobs), prefetchPaths: ["rel/path"] }), /not absolute/);
});

test("validation: blobs, chunk references, chunk size", () => {
  const good = blobInfo("a".repeat(64), 1, 4096);
  const root = mk("dir", { children: [entry("f", fileAt(10, { blobIndex: 1 }))] });
  assert.throws(() => writeBootstrapV6(root, baseOptions([good])), /references blob index 1, but the blob table has 1 entries/);
  const many = Array.from({ length: 255 }, (_, i) => blobInfo(i.toString(16).padStart(64, "0"), 1, 4096));
  assert.throws(() => writeBootstrapV6(mk("dir"), baseOptions(many)), /255 blobs, at most 254/);
  assert.doesNotThrow(() => writeBootstrapV6(mk("dir"), baseOptions(many.slice(0, 254))));
  assert.throws(() => writeBootstrapV6(mk("dir"), baseOptions([good, good])), /appears twice/);
  assert.throws(() => writeBootstrapV6(mk("dir"), baseOptions([{ ...good, blobId: "" }])), /1\.\.64/);
  assert.throws(() => writeBootstrapV6(mk("dir"), baseOptions([{ ...good, chunkCount: 0 }])), /no chunks/);
  assert.throws(() => writeBootstrapV6(mk("dir"), baseOptions([{ ...good, chunkSize: 4096 }])), /chunk size 4096/);
  assert.throws(() => writeBootstrapV6(mk("dir"), { ...baseOptions([]), chunkSize: 3000 }), /chunk size 3000/);
  const unaligned = fileAt(10);
  unaligned.chunks![0] = { ...unaligned.chunks![0]!, chunk: { ...unaligned.chunks![0]!.chunk, uncompressedOffset: 100 } };
  assert.throws(() => writeBootstrapV6(mk("dir", { children: [entry("f", unaligned)] }), baseOptions([good])), /not 4096-aligned/);
  assert.throws(() => writeBootstrapV6(mk("dir", { children: [entry("a/b", mk("fifo"))] }), baseOptions([good])), RangeError);
});

test("determinism: same input → same bytes; xattr insertion order does not matter", () => {
  const build = (order: string[]) => {
    const x = new Map(order.map((k) => [k, enc(k)] as [string, Uint8Array]));
    const big = mk("dir", { children: Array.from({ length: 700 }, (_, i) => entry(`entry-${(i * 7919) % 700}`, mk(i % 3 ? "fifo" : "sock"))) });
    return writeBootstrapV6(
      mk("dir", { children: [entry("big", big), entry("x", mk("fifo", { xattrs: x })), entry("file", fileAt(3 * MiB))] }),
      { ...baseOptions([blobInfo("9".repeat(64), 3, 3 * MiB)]), prefetchPaths: ["/big", "/file"] },
    );
  };
  const one = build(["user.z", "security.a", "trusted.m", "user.a"]);
  const two = build(["user.a", "trusted.m", "user.z", "security.a"]);
  assert.equal(sha256Hex(one), sha256Hex(two));
  assert.equal(sha256Hex(one), sha256Hex(build(["user.z", "security.a", "trusted.m", "user.a"])));
});

test("blobIndexMap: chunks renumbered as written, the same bytes as a renumbered tree", () => {
  const blobs = [blobInfo("1".repeat(64), 4, 0x40_0000), blobInfo("2".repeat(64), 4, 0x40_0000)];
  // Raw indexes 7 and 9 both name blob 0 (a blob id found in two layers of a merge): a file
  // spanning both is still continuous.
  const raw = (a: number, b: number, c: number) =>
    mk("dir", {
      children: [
        entry("a", fileAt(3 * MiB, { blobIndex: a, seed: 1 })),
        entry("b", fileAt(MiB, { blobIndex: b, seed: 9, startOffset: 3 * MiB, startIndex: 3 })),
        entry("c", fileAt(2 * MiB + 1, { blobIndex: c, seed: 20 })),
      ],
    });
  const mixed = raw(7, 9, 3);
  mixed.children![0]!.inode.chunks![2] = { ...mixed.children![0]!.inode.chunks![2]!, chunk: { ...mixed.children![0]!.inode.chunks![2]!.chunk, blobIndex: 9 } };
  const want = writeBootstrapV6(raw(0, 0, 1), baseOptions(blobs));
  const got = writeBootstrapV6(mixed, { ...baseOptions(blobs), blobIndexMap: new Map([[7, 0], [9, 0], [3, 1]]) });
  assert.ok(Buffer.from(got).equals(Buffer.from(want)));
  assert.throws(() => writeBootstrapV6(raw(7, 9, 4), { ...baseOptions(blobs), blobIndexMap: new Map([[7, 0], [9, 0]]) }), /blob index 4, which the blob index map does not name/);
});
