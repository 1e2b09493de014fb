import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { codecByName } from "../compression/codec.ts";
import { crc32c, hash } from "../digest/hasher.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { FIXTURE_BLOB_INFO, FIXTURE_FILE_SIZES, FIXTURE_LAYOUT, fixtureBlobBytes } from "./_fixture.ts";
import { decodeTocList, encodeTocList } from "./format.ts";
import { BlobWriter } from "./writer.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-blob-writer-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The two files of the fixture image, decompressed from the fixture blob. */
function fixtureFiles(blob: Uint8Array): Uint8Array[] {
  const zstd = codecByName("zstd");
  return [
    zstd.decompress(blob.subarray(...FIXTURE_LAYOUT.chunk0), FIXTURE_FILE_SIZES[0]),
    zstd.decompress(blob.subarray(...FIXTURE_LAYOUT.chunk1), FIXTURE_FILE_SIZES[1]),
  ];
}

test("blob-toc blob of the fixture's files equals upstream's except the documented ToC fields (§10.8, §12)", async (t) => {
  const dir = tmpDir(t);
  const upstream = fixtureBlobBytes();
  const w = new BlobWriter({ path: path.join(dir, "tmp"), compressor: "zstd", digester: "blake3", chunkSize: 0x10_0000, blobToc: true, blobIndex: 0 });
  const cis = fixtureFiles(upstream).map((f) => w.addChunk(f));
  assert.equal(w.chunkCount, 2);
  const info = await w.finishInto(dir);
  assert.ok(info);
  const ours = new Uint8Array(fs.readFileSync(path.join(dir, info.blobId)));
  assert.equal(fs.existsSync(path.join(dir, "tmp")), false);

  // Chunk records as in spec §10.7 (plus the CRC the current builder records).
  assert.deepEqual(
    cis.map((c) => [c.index, c.compressedOffset, c.compressedSize, c.uncompressedOffset, c.uncompressedSize, c.compressed, c.blobIndex]),
    [
      [0, 0, 4828, 0, 16931, true, 0],
      [1, 4828, 2974, 0x5000, 13400, true, 0],
    ],
  );
  const digests = upstream.subarray(...FIXTURE_LAYOUT.digests);
  assert.equal(hex(cis[0]!.digest), hex(digests.subarray(0, 32)));
  assert.equal(hex(cis[1]!.digest), hex(digests.subarray(32, 64)));
  const files = fixtureFiles(upstream);
  assert.equal(cis[0]!.crc32, crc32c(files[0]!));
  assert.equal(cis[1]!.crc32, crc32c(files[1]!));

  // Everything before the ToC data is byte-identical: chunks, tar headers, ci table, header, digests.
  assert.equal(ours.length, upstream.length);
  const [tocStart, tocEnd] = FIXTURE_LAYOUT.toc;
  assert.equal(hex(ours.subarray(0, tocStart)), hex(upstream.subarray(0, tocStart)));
  assert.equal(hex(ours.subarray(tocEnd)), hex(upstream.subarray(tocEnd)), "rafs.blob.toc tar header");

  // ToC: only image.blob's compressed_offset (0 vs 7802) and the stray reserved2 bytes differ.
  const ourToc = decodeTocList(ours.subarray(tocStart, tocEnd));
  const theirToc = decodeTocList(upstream.subarray(tocStart, tocEnd));
  assert.equal(ourToc[0]!.compressedOffset, 0);
  assert.equal(theirToc[0]!.compressedOffset, 7802);
  assert.ok(ourToc.every((e) => e.reserved2 === undefined && e.reserved1 === undefined));
  const oldStyle = ourToc.map((e, i) => ({ ...e, compressedOffset: theirToc[i]!.compressedOffset, reserved2: theirToc[i]!.reserved2 }));
  assert.equal(hex(encodeTocList(oldStyle)), hex(upstream.subarray(tocStart, tocEnd)));

  // With the old builder's ToC bytes patched in, the whole file, and so the id, is upstream's.
  const patched = new Uint8Array(ours);
  patched.set(encodeTocList(oldStyle), tocStart);
  assert.equal(hex(patched), hex(upstream));

  // Blob-table numbers equal §10.4 except the id and ToC digest (they cover the ToC bytes).
  const { blobId, tocDigest, ...rest } = info;
  const { blobId: _i, tocDigest: _d, ...want } = FIXTURE_BLOB_INFO;
  assert.deepEqual(rest, want);
  const withoutDigests = Buffer.concat([ours.subarray(0, 12954), ours.subarray(13018)]);
  assert.equal(blobId, crypto.createHash("sha256").update(withoutDigests).digest("hex"));
  assert.equal(hex(tocDigest), crypto.createHash("sha256").update(ours.subarray(tocStart)).digest("hex"));
});

test("default blob: chunks | ci table | header, features 0x4000_0001, id = SHA-256 of the file", async (t) => {
  const dir = tmpDir(t);
  const files = fixtureFiles(fixtureBlobBytes());
  const w = new BlobWriter({ path: path.join(dir, "tmp"), compressor: "zstd", digester: "blake3", chunkSize: 0x10_0000, blobIndex: 3 });
  for (const f of files) w.addChunk(f);
  const info = await w.finish();
  assert.ok(info);
  const ours = new Uint8Array(fs.readFileSync(path.join(dir, "tmp")));
  const upstream = fixtureBlobBytes();
  assert.equal(ours.length, 7802 + 32 + 4096);
  assert.equal(hex(ours.subarray(0, 7802)), hex(upstream.subarray(0, 7802)));
  assert.equal(hex(ours.subarray(7802, 7834)), hex(upstream.subarray(...FIXTURE_LAYOUT.ciTable)));
  const header = ours.subarray(7834);
  const dv = new DataView(header.buffer, header.byteOffset);
  assert.equal(dv.getUint32(4, true), 0x4000_0001);
  assert.equal(dv.getBigUint64(16, true), 7802n);
  assert.equal(info.features, 0x4000_0001);
  assert.equal(info.ciOffset, 7802);
  assert.equal(info.tocSize, 0);
  assert.equal(hex(info.tocDigest), "00".repeat(32));
  assert.equal(info.blobId, crypto.createHash("sha256").update(ours).digest("hex"));
  assert.equal(info.compressedSize, ours.length);
});

test("small chunks are staged and written in order; large ones go straight to the file", async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, "tmp");
  const w = new BlobWriter({ path: p, compressor: "none", digester: "sha256", chunkSize: 1 << 20, blobIndex: 0 });
  const parts: Uint8Array[] = [];
  let expect = 0;
  for (let i = 1; i <= 5; i++) {
    const data = new Uint8Array(i * 700).fill(i);
    const ci = w.addChunk(data);
    data.fill(0xee); // the writer must have copied the bytes: callers reuse their buffer
    parts.push(new Uint8Array(i * 700).fill(i));
    assert.equal(ci.compressedOffset, expect);
    expect += i * 700;
    assert.equal(w.size, expect);
  }
  assert.equal(fs.statSync(p).size, 0, "small chunks are staged");
  const big = new Uint8Array(1 << 20).fill(9);
  const ci = w.addChunk(big);
  parts.push(big);
  assert.equal(ci.compressedOffset, expect);
  expect += big.length;
  assert.equal(fs.statSync(p).size, expect, "a full-size chunk flushes the staged bytes and is written through");
  assert.deepEqual(new Uint8Array(fs.readFileSync(p)), new Uint8Array(Buffer.concat(parts)));
  await w.abort();
  assert.equal(fs.existsSync(p), false);
});

test("keep-or-discard: incompressible chunks are stored raw and flagged uncompressed", async (t) => {
  const dir = tmpDir(t);
  const w = new BlobWriter({ path: path.join(dir, "tmp"), compressor: "zstd", digester: "blake3", chunkSize: 4096, blobIndex: 0 });
  const random = crypto.getRandomValues(new Uint8Array(4000));
  const ci = w.addChunk(random);
  assert.equal(ci.compressed, false);
  assert.equal(ci.compressedSize, 4000);
  assert.equal(hex(ci.digest), hex(hash("blake3", random)));
  const ci2 = w.addChunk(new Uint8Array(4096));
  assert.equal(ci2.compressed, true);
  assert.ok(ci2.compressedSize < 100);
  assert.equal(ci2.uncompressedOffset, 4096);
  await w.abort();
});

test("no chunks: finish returns undefined and leaves no file", async (t) => {
  const dir = tmpDir(t);
  for (const blobToc of [false, true]) {
    const p = path.join(dir, `empty-${blobToc}`);
    const w = new BlobWriter({ path: p, compressor: "zstd", digester: "blake3", chunkSize: 0x10_0000, blobToc, blobIndex: 0 });
    assert.equal(fs.existsSync(p), true);
    assert.equal(await w.finishInto(dir), undefined);
    assert.equal(fs.existsSync(p), false);
  }
  assert.deepEqual(fs.readdirSync(dir), []);
});

test("argument and state errors", async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, "tmp");
  assert.throws(() => new BlobWriter({ path: p, compressor: "zstd", digester: "blake3", chunkSize: 3000, blobIndex: 0 }), RangeError);
  assert.throws(() => new BlobWriter({ path: p, compressor: "zstd", digester: "blake3", chunkSize: 1 << 25, blobIndex: 0 }), RangeError);
  assert.throws(() => new BlobWriter({ path: p, compressor: "gzip" as never, digester: "blake3", chunkSize: 4096, blobIndex: 0 }), TypeError);
  assert.throws(() => new BlobWriter({ path: p, compressor: "zstd", digester: "md5" as never, chunkSize: 4096, blobIndex: 0 }), TypeError);
  const w = new BlobWriter({ path: p, compressor: "lz4_block", digester: "sha256", chunkSize: 4096, blobIndex: 0 });
  assert.throws(() => w.addChunk(new Uint8Array(0)), RangeError);
  assert.throws(() => w.addChunk(new Uint8Array(4097)), RangeError);
  w.addChunk(new Uint8Array(4096));
  const info = await w.finish();
  assert.equal(info?.chunkCount, 1);
  assert.throws(() => w.addChunk(new Uint8Array(1)), InvalidInputError);
  await assert.rejects(w.finish(), InvalidInputError);
  await w.abort();
  assert.equal(fs.existsSync(p), false);
});
