import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BuildCompressor } from "../compression/codec.ts";
import { hash, type DigesterName } from "../digest/hasher.ts";
import { DigestMismatchError, FormatError } from "../internal/errors.ts";
import { bytesReaderAt, fileReaderAt } from "../io/reader_at.ts";
import type { BlobInfo, ChunkInfo } from "../rafs/model.ts";
import { FIXTURE_BLOB_ID, FIXTURE_BLOB_INFO, FIXTURE_FILE_SIZES, FIXTURE_LAYOUT, fixtureBlobBytes } from "./_fixture.ts";
import { openBlob, writeCacheView } from "./reader.ts";
import { BlobWriter } from "./writer.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const sha256 = (...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), crypto.createHash("sha256")).digest("hex");

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-blob-reader-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("fixture blob: header and ci entries validated against its blob-table entry (§10.4, §10.8)", async () => {
  const blob = await openBlob(bytesReaderAt(fixtureBlobBytes()), FIXTURE_BLOB_INFO);
  assert.equal(blob.header.features, 0x7000_0021);
  assert.equal(blob.header.ciEntries, 2);
  assert.equal(blob.header.ciOffset, 8314);
  assert.equal(blob.compressedDataSize, 7802);
  assert.deepEqual(
    blob.entries.map((e) => [e.index, e.compressedOffset, e.compressedSize, e.uncompressedOffset, e.uncompressedSize, e.compressed, e.crc32]),
    [
      [0, 0, 4828, 0, 16931, true, undefined],
      [1, 4828, 2974, 0x5000, 13400, true, undefined],
    ],
  );
});

test("fixture blob: ToC, its digests, the digest array and the blob-id rule (§4.5, §4.7, §4.8)", async () => {
  const bytes = fixtureBlobBytes();
  const blob = await openBlob(bytesReaderAt(bytes), FIXTURE_BLOB_INFO);
  const toc = await blob.readToc();
  assert.equal(toc.offset, 13530);
  assert.equal(toc.size, 0x400);
  assert.ok(hex(toc.digest).startsWith("cfc89ed0") && hex(toc.digest).endsWith("acde"), "spec §10.4 blob_toc_digest");
  assert.equal(hex(toc.digest), sha256(bytes.subarray(13530)));
  assert.deepEqual(toc.entries.map((e) => e.name), ["image.blob", "blob.meta", "blob.meta.header", "blob.digest"]);
  // Digests computed here independently of the reader:
  assert.equal(hex(toc.entries[0]!.digest), sha256(bytes.subarray(0, 8314)), "image.blob = chunk data ‖ its tar header");
  assert.equal(hex(toc.entries[1]!.digest), sha256(bytes.subarray(...FIXTURE_LAYOUT.ciTable)));
  assert.equal(hex(toc.entries[2]!.digest), sha256(bytes.subarray(...FIXTURE_LAYOUT.ciHeader)));
  assert.equal(hex(toc.entries[3]!.digest), sha256(bytes.subarray(...FIXTURE_LAYOUT.digests)));
  await blob.verifyToc(toc);
  await blob.verifyBlobId(toc);
  assert.equal(sha256(bytes.subarray(0, 12954), bytes.subarray(13018)), FIXTURE_BLOB_ID);
  assert.notEqual(sha256(bytes), FIXTURE_BLOB_ID);

  const digests = await blob.readChunkDigests(toc);
  assert.ok(digests);
  assert.ok(hex(digests.subarray(0, 32)).startsWith("f7e2735f") && hex(digests.subarray(32)).startsWith("812465bc"));
  for (const e of blob.entries) {
    const plain = await blob.readChunk(e);
    assert.equal(plain.length, FIXTURE_FILE_SIZES[e.index]);
    assert.equal(hex(hash("blake3", plain)), hex(digests.subarray(32 * e.index, 32 * e.index + 32)));
    await blob.verifyChunk(e, digests.subarray(32 * e.index, 32 * e.index + 32), "blake3");
  }
});

test("fixture blob: a wrong blob id, ToC digest or blob-table number is reported", async () => {
  const bytes = fixtureBlobBytes();
  const r = bytesReaderAt(bytes);
  const wrongId = await openBlob(r, { ...FIXTURE_BLOB_INFO, blobId: "00".repeat(32) });
  await assert.rejects(wrongId.verifyBlobId(), DigestMismatchError);
  const wrongToc = await openBlob(r, { ...FIXTURE_BLOB_INFO, tocDigest: new Uint8Array(32).fill(1) });
  await assert.rejects(wrongToc.readToc(), DigestMismatchError);
  const cases: [Partial<BlobInfo>, string][] = [
    [{ chunkCount: 3 }, "s_ci_entries"],
    [{ ciCompressor: "zstd" }, "s_ci_compressor"],
    [{ ciOffset: 8313, ciCompressedSize: 33 }, "s_ci_offset"],
    [{ ciOffset: 8310 }, "s_magic"],
    [{ ciUncompressedSize: 48 }, "s_ci_uncompressed_size"],
    [{ compressedSize: 14555 }, "(size)"],
    [{ uncompressedSize: 0x8000 }, "uncomp_info"],
  ];
  for (const [patch, field] of cases) {
    await assert.rejects(openBlob(r, { ...FIXTURE_BLOB_INFO, ...patch }), (e: unknown) => e instanceof FormatError && e.field === field, JSON.stringify(patch));
  }
});

test("readChunk refuses a ChunkInfo that disagrees with the ci entry (§4.10)", async () => {
  const blob = await openBlob(bytesReaderAt(fixtureBlobBytes()), FIXTURE_BLOB_INFO);
  const e = blob.entries[1]!;
  await assert.rejects(blob.readChunk({ ...e, compressedOffset: 0 }), (x: unknown) => x instanceof FormatError && x.field === "chunk[1]");
  await assert.rejects(blob.readChunk({ ...e, index: 2 }), (x: unknown) => x instanceof FormatError && x.field === "chunk[2]");
});

test("fixture blob-cache view: chunk 0 at 0, chunk 1 at 0x5000, 36864 bytes, zeros elsewhere (§4.2)", async (t) => {
  const dir = tmpDir(t);
  const blob = await openBlob(bytesReaderAt(fixtureBlobBytes()), FIXTURE_BLOB_INFO);
  const dest = path.join(dir, "view");
  await writeCacheView(blob, dest);
  const view = new Uint8Array(fs.readFileSync(dest));
  assert.equal(view.length, 36864);
  const c0 = await blob.readChunk(blob.entries[0]!);
  const c1 = await blob.readChunk(blob.entries[1]!);
  assert.equal(hex(view.subarray(0, 16931)), hex(c0));
  assert.ok(view.subarray(16931, 0x5000).every((b) => b === 0));
  assert.equal(hex(view.subarray(0x5000, 0x5000 + 13400)), hex(c1));
  assert.ok(view.subarray(0x5000 + 13400).every((b) => b === 0));
});

test("every flipped byte in the fixture's stored chunk bytes is caught: by verifyChunk, or else by the blob-level digests", async () => {
  // zstd frames here carry no checksum and the chunk digest covers the *plain* bytes, so a few
  // flips (frame-header/table bits the decoder ignores) decode to the very same plain bytes:
  // verifyChunk cannot and need not see those (the data served is still right), but the blob id
  // and the ToC's image.blob digest, which cover the stored bytes, do.
  const bytes = fixtureBlobBytes();
  const info = FIXTURE_BLOB_INFO;
  const digests = bytes.subarray(...FIXTURE_LAYOUT.digests);
  const original = await openBlob(bytesReaderAt(bytes), info);
  const plains = [await original.readChunk(original.entries[0]!), await original.readChunk(original.entries[1]!)];
  let invisible = 0;
  for (let off = 0; off < 7802; off++) {
    const index = off < 4828 ? 0 : 1;
    const bad = new Uint8Array(bytes);
    bad[off] ^= 0xff;
    const blob = await openBlob(bytesReaderAt(bad), info);
    const entry = blob.entries[index]!;
    try {
      await blob.verifyChunk(entry, digests.subarray(32 * index, 32 * index + 32), "blake3");
    } catch (e) {
      assert.ok(e instanceof DigestMismatchError || e instanceof FormatError, `byte ${off}: ${String(e)}`);
      assert.ok(e.message.includes(FIXTURE_BLOB_ID) && e.message.includes(`${index}`), `byte ${off}: ${e.message}`);
      continue;
    }
    invisible++;
    assert.equal(hex(await blob.readChunk(entry)), hex(plains[index]!), `byte ${off} passed verifyChunk, so it must decode identically`);
    await assert.rejects(blob.verifyBlobId(), DigestMismatchError, `byte ${off}`);
    await assert.rejects(blob.verifyToc(), DigestMismatchError, `byte ${off}`);
  }
  assert.ok(invisible < 10, `${invisible} decode-invisible flips`);
});

/** Deterministic test data: a mix of text-like (compressible) and pseudo-random bytes. */
function content(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (i >> 9) % 2 === 0 ? 0x61 + ((i * 7 + seed) % 13) : x >>> 24;
  }
  return out;
}

test("writer → reader round trip for every compressor × digester × chunk size × blob kind", async (t) => {
  const dir = tmpDir(t);
  const compressors: BuildCompressor[] = ["none", "lz4_block", "zstd"];
  const digesters: DigesterName[] = ["blake3", "sha256"];
  let n = 0;
  for (const compressor of compressors) {
    for (const digester of digesters) {
      for (const chunkSize of [4096, 0x10_0000]) {
        for (const blobToc of [false, true]) {
          const sizes = [1, 4095, 4096, 4097, chunkSize].filter((s) => s <= chunkSize);
          const plains = sizes.map((s, i) => content(s, n * 10 + i));
          const tmp = path.join(dir, `tmp-${n++}`);
          const w = new BlobWriter({ path: tmp, compressor, digester, chunkSize, blobToc, blobIndex: 1 });
          const cis: ChunkInfo[] = plains.map((p) => w.addChunk(p));
          const info = await w.finishInto(dir);
          assert.ok(info);
          const label = `${compressor}/${digester}/${chunkSize}/${blobToc}`;
          assert.equal(info.chunkCount, plains.length, label);
          assert.equal(info.features, blobToc ? 0x7000_0021 : 0x4000_0001, label);
          assert.equal(info.uncompressedSize, sizes.reduce((a, s) => a + Math.ceil(s / 4096) * 4096, 0), label);
          const file = path.join(dir, info.blobId);
          assert.equal(fs.statSync(file).size, info.compressedSize, label);
          const reader = await fileReaderAt(file);
          try {
            const blob = await openBlob(reader, info);
            for (const [i, ci] of cis.entries()) {
              const e = blob.entries[i]!;
              assert.deepEqual(
                [e.index, e.compressedOffset, e.compressedSize, e.uncompressedOffset, e.uncompressedSize, e.compressed],
                [ci.index, ci.compressedOffset, ci.compressedSize, ci.uncompressedOffset, ci.uncompressedSize, ci.compressed],
                label,
              );
              assert.equal(hex(await blob.readChunk(ci)), hex(plains[i]!), label);
              await blob.verifyChunk(ci, hash(digester, plains[i]!), digester);
              await assert.rejects(blob.verifyChunk({ ...ci, crc32: (ci.crc32! + 1) >>> 0 }, ci.digest, digester), DigestMismatchError);
            }
            if (blobToc) {
              const toc = await blob.readToc();
              assert.equal(toc.size, info.tocSize);
              assert.equal(hex(toc.digest), hex(info.tocDigest));
              await blob.verifyToc(toc);
              const digests = await blob.readChunkDigests(toc);
              assert.equal(hex(digests!), cis.map((c) => hex(c.digest)).join(""), label);
            } else {
              await assert.rejects(blob.readToc(), FormatError);
              assert.equal(sha256(fs.readFileSync(file)), info.blobId, label);
            }
            await blob.verifyBlobId();
            const view = path.join(dir, `view-${n}`);
            await writeCacheView(blob, view);
            const expected = new Uint8Array(info.uncompressedSize);
            cis.forEach((c, i) => expected.set(plains[i]!, c.uncompressedOffset));
            assert.equal(sha256(fs.readFileSync(view)), sha256(expected), label);
          } finally {
            await reader.close();
          }
        }
      }
    }
  }
});

test("a flipped byte in any stored chunk of an uncompressed blob is caught by verifyChunk", async (t) => {
  const dir = tmpDir(t);
  const w = new BlobWriter({ path: path.join(dir, "tmp"), compressor: "none", digester: "sha256", chunkSize: 4096, blobIndex: 0 });
  const cis = [content(4096, 1), content(100, 2), content(3000, 3)].map((p) => w.addChunk(p));
  const info = (await w.finish())!;
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, "tmp")));
  for (const ci of cis) {
    for (let off = ci.compressedOffset; off < ci.compressedOffset + ci.compressedSize; off += 7) {
      const bad = new Uint8Array(bytes);
      bad[off] ^= 1 << (off % 8);
      const blob = await openBlob(bytesReaderAt(bad), info);
      await assert.rejects(blob.verifyChunk(ci, ci.digest, "sha256"), (e: unknown) => e instanceof DigestMismatchError && e.message.includes(`chunk ${ci.index} of blob ${info.blobId}`));
    }
  }
});

test("a large ci table is stored compressed (ci_compressor = blob compressor) and still reads back", async (t) => {
  const dir = tmpDir(t);
  for (const compressor of ["zstd", "lz4_block"] as const) {
    const w = new BlobWriter({ path: path.join(dir, "tmp"), compressor, digester: "blake3", chunkSize: 4096, blobToc: true, blobIndex: 0 });
    const plains = Array.from({ length: 300 }, (_, i) => content(1 + (i % 50), i));
    const cis = plains.map((p) => w.addChunk(p));
    const info = (await w.finishInto(dir))!;
    assert.equal(info.ciCompressor, compressor);
    assert.equal(info.ciUncompressedSize, 300 * 16);
    assert.ok(info.ciCompressedSize < info.ciUncompressedSize);
    const reader = await fileReaderAt(path.join(dir, info.blobId));
    try {
      const blob = await openBlob(reader, info);
      assert.equal(blob.header.ciCompressor, compressor === "zstd" ? 3 : 1);
      const toc = await blob.readToc();
      assert.equal(toc.entries[1]!.flags, compressor === "zstd" ? 2 : 4);
      await blob.verifyToc(toc);
      await blob.verifyBlobId(toc);
      for (const [i, ci] of cis.entries()) assert.equal(hex(await blob.verifyChunk(ci, ci.digest, "blake3")), hex(plains[i]!));
    } finally {
      await reader.close();
    }
  }
});
