import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { fixture } from "../../test/support/paths.ts";
import { mulberry32 } from "../../test/support/fuzz.ts";
import { compareBytes, toHex } from "../internal/bytes.ts";
import { DigestMismatchError, FormatError } from "../internal/errors.ts";
import { codecByName, compressChunk } from "../compression/codec.ts";
import { crc32c, hash } from "../digest/hasher.ts";
import { openRafsV5, type RafsV5Image } from "./v5_reader.ts";
import { verifyRafsV5ChunkData, verifyRafsV5Digests } from "./v5_verify.ts";
import { CHUNK_FLAG_COMPRESSED, CHUNK_FLAG_HAS_CRC32, CHUNK_RECORD_SIZE, encodeChunkRecord } from "./chunk_record.ts";
import * as f from "./v5_format.ts";
import {
  V5_BLOB_ID,
  V5_FIXTURES,
  allPaths,
  extractFile,
  parseResult,
  readBlob,
  readBootstrap,
  readChunk,
  strverscmp,
  treeJson,
} from "./_v5_testing.ts";

const blob = readBlob(V5_BLOB_ID);
const enc = (s: string) => new TextEncoder().encode(s);

test("the shared v5 blob is named by its SHA-256 (spec §5.8)", () => {
  assert.equal(crypto.createHash("sha256").update(blob).digest("hex"), V5_BLOB_ID);
});

test("strverscmp orders like glibc's (version sort used by tree -v)", () => {
  // The example of the glibc manual page, then names with a common prefix.
  const sorted = ["000", "00", "01", "010", "09", "0", "1", "9", "10", "a", "a1", "a2", "a9", "a10", "b", "item#99", "item#100"];
  const shuffled = [...sorted].reverse();
  assert.deepEqual(shuffled.sort((x, y) => strverscmp(enc(x), enc(y))), sorted);
  assert.ok(strverscmp(enc("x10"), enc("x9")) > 0, "version order differs from byte order");
  assert.ok(compareBytes(enc("x10"), enc("x9")) < 0);
});

for (const name of V5_FIXTURES) {
  test(`${name}: reproduces the .result tree JSON and md5 list exactly`, () => {
    const image = openRafsV5(readBootstrap(name));
    const expected = parseResult(fs.readFileSync(fixture(`${name}.result`), "utf8"));
    assert.deepEqual(treeJson(image), expected.tree);

    const blobs = image.blobs.map((b) => (b.blobId === V5_BLOB_ID ? blob : readBlob(b.blobId)));
    const lines = allPaths(image)
      .filter(([, inode]) => inode.kind === "reg")
      .map(([path, inode]) => {
        const data = extractFile(image, inode, blobs);
        return `${crypto.createHash("md5").update(data).digest("hex")}  ${path}`;
      })
      .sort((a, b) => compareBytes(enc(a), enc(b)));
    assert.deepEqual(lines, expected.md5Lines);
    assert.ok(lines.length >= 20, "the .result lists the regular files");
  });

  test(`${name}: readdir is byte-sorted on disk and lookup finds every path`, () => {
    const image = openRafsV5(readBootstrap(name));
    let dirsWhereOrdersDiffer = 0;
    for (const [path, inode] of allPaths(image)) {
      assert.equal(image.lookup(path)?.ino, inode.ino, path);
      assert.equal(image.lookup(path + "/.")?.ino, inode.kind === "dir" ? inode.ino : undefined, path);
      if (inode.kind !== "dir") continue;
      const names = image.readdir(inode).map((e) => e.name);
      for (let i = 1; i < names.length; i++) assert.ok(compareBytes(names[i - 1], names[i]) < 0, path);
      const ver = [...names].sort(strverscmp);
      if (ver.some((n, i) => compareBytes(n, names[i]) !== 0)) dirsWhereOrdersDiffer++;
    }
    // In this tree version order and byte order agree; the .result comparison above sorts
    // with strverscmp anyway, so this only documents the fixture.
    assert.equal(dirsWhereOrdersDiffer, 0);
    assert.equal(image.lookup("/nope"), undefined);
    assert.equal(image.lookup("/hardlink-test/foo/x"), undefined, "a file has no children");
    assert.equal(image.lookup("/symlink-test/../hardlink-test/foo")?.ino, image.lookup("/hardlink-test/foo")?.ino);
    assert.throws(() => image.lookup("relative"), TypeError);
  });

  test(`${name}: superblock, blob table and root match spec §5.2`, () => {
    const image = openRafsV5(readBootstrap(name));
    const sb = image.v5SuperBlock;
    assert.equal(sb.magic, 0x52414653);
    assert.equal(sb.fsVersion, 0x500);
    assert.equal(sb.sbSize, 8192);
    assert.equal(sb.blockSize, 0x100000);
    assert.equal(sb.flags, name.startsWith("sha256") ? 0x09n : 0x05n);
    assert.equal(sb.inodesCount, 51);
    assert.equal(sb.inodeTableOffset, 8192);
    assert.equal(sb.prefetchTableOffset, 0x20d8);
    assert.equal(sb.blobTableOffset, 0x20d8);
    assert.equal(sb.inodeTableEntries, 54);
    assert.equal(sb.prefetchTableEntries, 0);
    assert.equal(sb.blobTableSize, 72);
    assert.equal(sb.extendedBlobTableEntries, 1);
    assert.equal(sb.extendedBlobTableOffset, 0x2120);

    // 0x09 = COMPRESSION_NONE | HASH_SHA256; 0x05 = COMPRESSION_NONE | HASH_BLAKE3 (bit 0x1 is
    // NONE, not LZ4, whatever the fixture's name says; its chunks are stored uncompressed).
    assert.equal(image.superBlock.compressor, "none");
    assert.equal(image.superBlock.digester, name.startsWith("sha256") ? "sha256" : "blake3");
    assert.equal(image.superBlock.explicitUidGid, false);
    assert.equal(image.superBlock.version, 5);
    assert.equal(image.superBlock.chunkSize, 0x100000);
    assert.equal(image.superBlock.inodeCount, 51);
    assert.deepEqual(image.prefetch, []);

    assert.equal(image.blobs.length, 1);
    const b = image.blobs[0];
    assert.equal(b.blobId, V5_BLOB_ID);
    assert.equal(b.chunkCount, 23);
    assert.equal(b.features, 0);
    assert.equal(b.compressedSize, 3508766);
    assert.equal(b.uncompressedSize, 3508766);
    assert.equal(b.compressedSize, blob.length);
    assert.deepEqual(image.blobTable, [{ readaheadOffset: 0, readaheadSize: 0, blobId: V5_BLOB_ID }]);

    const root = image.inode(1);
    assert.equal(root.kind, "dir");
    assert.equal(root.mode, 0o40755);
    assert.equal(image.indexCount, 54);
    // Chunk ci_index values are 0..chunkCount-1 and each distinct chunk appears in the blob once.
    const indexes = new Set<number>();
    for (const [, inode] of allPaths(image)) if (inode.kind === "reg") for (const c of image.chunks(inode)) indexes.add(c.chunk.index);
    assert.deepEqual([...indexes].sort((x, y) => x - y), Array.from({ length: 23 }, (_, i) => i));
  });

  test(`${name}: hardlinks share the inode number and have nlink 3`, () => {
    const image = openRafsV5(readBootstrap(name));
    const expected = parseResult(fs.readFileSync(fixture(`${name}.result`), "utf8"));
    const links = ["/hardlink-test/foo", "/hardlink-test/test.sh", "/normal-file-test/test.sh"];
    for (const l of links) assert.ok(expected.md5Lines.some((line) => line.endsWith(`  ${l}`)), `${l} is in the .result`);
    const inodes = links.map((l) => image.lookup(l)!);
    assert.ok(inodes.every((i) => i.kind === "reg" && i.nlink === 3 && i.ino === inodes[0].ino));
    assert.equal(inodes[0].ino, 5);
    // Each link is its own table index with its own record, all pointing at inode 5.
    const dirEntries = image.readdir(image.lookup("/hardlink-test")!);
    assert.deepEqual(dirEntries.map((e) => [Buffer.from(e.name).toString(), e.ino]), [["foo", 5], ["test.sh", 5]]);
    const records = [5, 6, 9].map((i) => image.entry(i).record);
    assert.deepEqual(records.map((r) => r.inode.ino), [5, 5, 5]);
    assert.equal(new Set(records.map((r) => r.offset)).size, 3);
    // Other paths are not hardlinked.
    const inos = allPaths(image).filter(([p]) => !links.includes(p)).map(([, i]) => i.ino);
    assert.equal(new Set(inos).size, inos.length);
    assert.ok(!inos.includes(5));
  });

  test(`${name}: symlinks read back and every chunk's data matches its digest`, () => {
    const image = openRafsV5(readBootstrap(name));
    const link = image.lookup("/symlink-test/root-1")!;
    assert.equal(link.kind, "symlink");
    assert.equal(Buffer.from(image.readlink(link)).toString(), "/////////////////");
    assert.equal(link.size, 17);
    assert.throws(() => image.readlink(image.inode(1)), TypeError);
    assert.throws(() => image.chunks(link), TypeError);

    let checked = 0;
    verifyRafsV5ChunkData(image, {
      readChunk(c) {
        checked++;
        const data = readChunk(image, blob, c);
        assert.equal(toHex(hash(image.superBlock.digester, data)), toHex(c.digest));
        return data;
      },
    });
    assert.equal(checked, 23, "each of the blob's 23 chunks is read once");
    verifyRafsV5Digests(image);
  });
}

// ---------------------------------------------------------------------------------------------
// Seeded fuzz: hostile bootstraps may only raise FormatError / DigestMismatchError, quickly.

const WALK_LIMIT = 5000;

/** Opens, walks everything (bounded) and verifies; returns what happened. */
function exercise(bytes: Uint8Array): "ok" | "format" | "digest" {
  try {
    const image: RafsV5Image = openRafsV5(bytes);
    let visited = 0;
    const stack = [{ path: "", inode: image.inode(image.superBlock.rootIno) }];
    while (stack.length > 0) {
      const { path, inode } = stack.pop()!;
      if (++visited > WALK_LIMIT) throw new Error(`walk did not terminate: more than ${WALK_LIMIT} entries`);
      if (inode.kind === "reg") image.chunks(inode);
      if (inode.kind === "symlink") image.readlink(inode);
      if (inode.kind !== "dir") continue;
      for (const e of image.readdir(inode)) {
        const p = `${path}/${Buffer.from(e.name).toString("latin1")}`;
        const child = image.inode(e.ino);
        assert.equal(child.kind, e.kind);
        if (visited % 7 === 0) image.lookup(p);
        stack.push({ path: p, inode: child });
      }
    }
    for (const ino of image.prefetch) if (ino >= 1 && ino <= image.indexCount) image.inode(ino);
    verifyRafsV5Digests(image);
    return "ok";
  } catch (e) {
    if (e instanceof FormatError) return "format";
    if (e instanceof DigestMismatchError) return "digest";
    throw e;
  }
}

test("fuzz: truncation, bit flips and huge numbers raise only FormatError/DigestMismatchError", () => {
  const t0 = Date.now();
  const outcomes = { ok: 0, format: 0, digest: 0 };
  for (const name of V5_FIXTURES) {
    const orig = readBootstrap(name);
    const image = openRafsV5(orig);
    const recordOffsets = Array.from({ length: image.indexCount }, (_, i) => image.entry(i + 1).record);
    const chunkOffsets = recordOffsets.flatMap((r) => Array.from({ length: r.chunkCount }, (_, k) => r.chunksOffset + k * CHUNK_RECORD_SIZE));
    const rng = mulberry32(name.length * 7919);
    const rnd = () => rng.float();
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const hugeU32 = [0, 1, 2, 7, 8, 0x3ff, 0x400, 1023, 8192 / 8, 8193, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, orig.length, orig.length / 8];
    const hugeU64 = [0n, 1n, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(orig.length)];
    for (let iter = 0; iter < 1500; iter++) {
      let bytes = orig.slice();
      const mode = iter % 5;
      if (mode === 0) {
        bytes = bytes.slice(0, Math.floor(rnd() * (orig.length + 1)));
      } else if (mode === 1) {
        const flips = 1 + Math.floor(rnd() * 8);
        for (let f = 0; f < flips; f++) {
          const at = rnd() < 0.3 ? Math.floor(rnd() * 96) : Math.floor(rnd() * bytes.length);
          bytes[at] ^= 1 << Math.floor(rnd() * 8);
        }
      } else {
        // Write a huge/odd number into a field of a table or record.
        const view = new DataView(bytes.buffer);
        let base: number;
        let fields: number[];
        if (mode === 2) {
          base = 0;
          fields = [12, 16, 24, 32, 40, 48, 56, 60, 64, 68, 72];
        } else if (mode === 3) {
          base = pick(recordOffsets).offset;
          fields = [32, 40, 60, 64, 80, 88, 92, 96, 100, 102, 104];
        } else if (rnd() < 0.5 && chunkOffsets.length) {
          base = pick(chunkOffsets);
          fields = [32, 36, 40, 44, 48, 56, 64, 72];
        } else {
          base = 8192;
          fields = Array.from({ length: 54 }, (_, i) => i * 4);
        }
        const off = base + pick(fields);
        const wide = rnd() < 0.4 && off + 8 <= bytes.length;
        if (wide) view.setBigUint64(off, pick(hugeU64), true);
        else if (off + 4 <= bytes.length) view.setUint32(off, pick(hugeU32) >>> 0, true);
        if (rnd() < 0.3) view.setUint16(base + 100 <= bytes.length - 2 ? base + 100 : 0, Math.floor(rnd() * 65536), true);
      }
      outcomes[exercise(bytes)]++;
    }
  }
  const ms = Date.now() - t0;
  // Each strategy must actually reach the checks; an untouched pass-through would show as all "ok".
  assert.ok(outcomes.format > 500, JSON.stringify(outcomes));
  assert.ok(outcomes.digest > 10, JSON.stringify(outcomes));
  assert.ok(ms < 60_000, `fuzz took ${ms} ms`);
});

test("hostile counts: directory cycles and a huge inode table are rejected, not walked", () => {
  const orig = readBootstrap(V5_FIXTURES[0]);
  const image = openRafsV5(orig);
  // Make /normal-file-test/holefiles (index 8) also list busybox's child directory (index 10):
  // upstream's range rule (child index > ino) passes, but a shared subtree would let a
  // hostile image grow walks exponentially; the i_parent check rejects it.
  const holefiles = image.entry(8).record.offset;
  const bytes = orig.slice();
  const view = new DataView(bytes.buffer);
  view.setUint32(holefiles + 92, 10, true);
  view.setUint32(holefiles + 96, 1, true);
  const hostile = openRafsV5(bytes);
  assert.throws(
    () => hostile.readdir(hostile.inode(8)),
    (e: unknown) => e instanceof FormatError && e.field === "i_parent" && e.offset === image.entry(10).record.offset + 32,
  );
  // A child directory that claims a smaller inode number than its parent (a back edge).
  const b2 = orig.slice();
  new DataView(b2.buffer).setBigUint64(image.entry(7).record.offset + 40, 2n, true);
  assert.throws(() => allPaths(openRafsV5(b2)), FormatError);
  // 2^32-1 inode-table entries: rejected from the superblock without allocating.
  const b3 = orig.slice();
  new DataView(b3.buffer).setUint32(56, 0xffffffff, true);
  assert.throws(() => openRafsV5(b3), (e: unknown) => e instanceof FormatError && e.field === "s_inode_table_offset");
  // 2^32-1 chunk records on one file.
  const b4 = orig.slice();
  new DataView(b4.buffer).setUint32(image.entry(20).record.offset + 96, 0xffffffff, true);
  assert.throws(() => openRafsV5(b4).inode(20), (e: unknown) => e instanceof FormatError && e.field === "i_child_count");
});

test("synthetic image: xattrs, device numbers, zstd chunks with CRC-32C, explicit uid/gid", () => {
  const algo = "sha256";
  const H = (...parts: Uint8Array[]) => hash(algo, Buffer.concat(parts));
  const chunkSize = 4096;
  const plain = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) % 13);
  const pieces = [plain.subarray(0, 4096), plain.subarray(4096)];
  const zstd = codecByName("zstd");
  let blobBytes = new Uint8Array(0);
  const chunkRecs = pieces.map((p, k) => {
    const { stored, compressed } = compressChunk(zstd, p);
    const rec = {
      blockId: hash(algo, p),
      blobIndex: 0,
      flags: (compressed ? CHUNK_FLAG_COMPRESSED : 0) | CHUNK_FLAG_HAS_CRC32,
      compressedSize: stored.length,
      uncompressedSize: p.length,
      compressedOffset: blobBytes.length,
      uncompressedOffset: k * 4096,
      fileOffset: k * 4096,
      index: k,
      crc32: crc32c(p),
    };
    blobBytes = Buffer.concat([blobBytes, stored]);
    return rec;
  });
  assert.ok(chunkRecs.every((c) => c.flags & CHUNK_FLAG_COMPRESSED), "test data compresses");

  const base = { parent: 1, uid: 1000, gid: 2000, projid: 0, blocks: 0, nlink: 1, childIndex: 0, childCount: 0, symlinkSize: 0, rdev: 0, mtimeNsec: 7, mtime: 1_700_000_000, reserved: new Uint8Array(8), flags: 0n };
  const te = (s: string) => new TextEncoder().encode(s);
  const xattrs: Array<[string, Uint8Array]> = [["user.comment", te("hello")], ["security.capability", Uint8Array.of(1, 0, 0, 2)]];
  const devRdev = (300 & 0xff) | (259 << 8) | ((300 & ~0xff) << 12);
  const file = { ...base, ino: 3, mode: 0o100640, size: 5000, flags: f.RAFSV5_INODE_FLAG_XATTR, childCount: 2, nameSize: 4, digest: H(...chunkRecs.map((c) => c.blockId)) };
  const dev = { ...base, ino: 2, mode: 0o20600, size: 0, nameSize: 3, rdev: devRdev, digest: H() };
  const link = { ...base, ino: 4, mode: 0o120777, size: 4, nameSize: 4, symlinkSize: 4, flags: f.RAFSV5_INODE_FLAG_SYMLINK, digest: H(te("file")) };
  const root = { ...base, parent: 0, ino: 1, mode: 0o40755, size: 4096, nlink: 2, childIndex: 2, childCount: 3, nameSize: 1, digest: H(dev.digest, file.digest, link.digest) };
  const records = [
    f.encodeRafsV5InodeRecord({ inode: root, name: te("/") }),
    f.encodeRafsV5InodeRecord({ inode: dev, name: te("dev") }),
    f.encodeRafsV5InodeRecord({ inode: file, name: te("file"), xattrs, chunks: chunkRecs.map((c) => encodeChunkRecord(c)) }),
    f.encodeRafsV5InodeRecord({ inode: link, name: te("link"), symlink: te("file") }),
  ];
  const blobId = crypto.createHash("sha256").update(blobBytes).digest("hex");
  const blobTable = f.encodeBlobTable([{ readaheadOffset: 0, readaheadSize: 0, blobId }]);
  const ext = f.encodeExtBlobEntry({ chunkCount: 2, features: 0x4000_0000, uncompressedSize: 8192, compressedSize: blobBytes.length, reserved: new Uint8Array(40) });
  const inodeTableOff = 8192;
  const blobOff = inodeTableOff + 16;
  const extOff = blobOff + blobTable.length;
  let pos = extOff + ext.length;
  const table = new Uint8Array(16);
  const tv = new DataView(table.buffer);
  records.forEach((r, i) => {
    tv.setUint32(i * 4, pos / 8, true);
    pos += r.length;
  });
  const sb = f.encodeRafsV5SuperBlock({
    magic: f.RAFSV5_MAGIC,
    fsVersion: f.RAFSV5_VERSION,
    sbSize: 8192,
    blockSize: chunkSize,
    flags: 0x80n | 0x08n | 0x10n | 0x20n,
    inodesCount: 4,
    inodeTableOffset: inodeTableOff,
    prefetchTableOffset: 0,
    blobTableOffset: blobOff,
    inodeTableEntries: 4,
    prefetchTableEntries: 0,
    blobTableSize: blobTable.length,
    extendedBlobTableEntries: 1,
    extendedBlobTableOffset: extOff,
    reserved: new Uint8Array(8112),
  });
  const bootstrap = new Uint8Array(Buffer.concat([sb, table, blobTable, ext, ...records]));

  const image = openRafsV5(bootstrap);
  assert.equal(image.superBlock.compressor, "zstd");
  assert.equal(image.superBlock.explicitUidGid, true);
  assert.equal(image.blobs[0].features, 0x4000_0000);
  assert.deepEqual(image.readdir(image.inode(1)).map((e) => [Buffer.from(e.name).toString(), e.ino, e.kind]), [
    ["dev", 2, "chr"],
    ["file", 3, "reg"],
    ["link", 4, "symlink"],
  ]);
  const d = image.lookup("/dev")!;
  assert.deepEqual([d.rdevMajor, d.rdevMinor, d.mode], [259, 300, 0o20600]);
  const fi = image.lookup("/file")!;
  assert.deepEqual([...fi.xattrs], xattrs);
  assert.deepEqual([fi.uid, fi.gid, fi.mtime, fi.mtimeNsec, fi.size], [1000, 2000, 1_700_000_000, 7, 5000]);
  assert.equal(image.lookup("/link")!.rdevMajor, 0);
  const chunks = image.chunks(fi);
  assert.deepEqual(chunks.map((c) => [c.fileOffset, c.chunk.compressed, c.chunk.crc32]), chunkRecs.map((c) => [c.fileOffset, true, c.crc32]));
  assert.deepEqual(extractFile(image, fi, [blobBytes]), plain);
  verifyRafsV5Digests(image);
  verifyRafsV5ChunkData(image, { readChunk: (c) => readChunk(image, blobBytes, c) });
  // A wrong CRC (digest intact) is caught too.
  const crcOff = image.entry(3).record.chunksOffset + 76;
  const bad = bootstrap.slice();
  bad[crcOff] ^= 1;
  assert.throws(
    () => verifyRafsV5ChunkData(openRafsV5(bad), { readChunk: (c) => readChunk(image, blobBytes, c) }),
    (e) => e instanceof DigestMismatchError && e.subject.startsWith('CRC-32C of chunk 0') && e.subject.endsWith('"/file"'),
  );
});
