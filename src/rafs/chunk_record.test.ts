import { test } from "node:test";
import assert from "node:assert/strict";
import { FormatError } from "../internal/errors.ts";
import {
  CHUNK_FLAG_COMPRESSED,
  CHUNK_FLAG_HAS_CRC32,
  CHUNK_RECORD_SIZE,
  type ChunkRecord,
  chunkInfoFromRecord,
  decodeChunkRecord,
  encodeChunkRecord,
} from "./chunk_record.ts";
import { openRafsV5 } from "./v5_reader.ts";
import { V5_FIXTURES, readBootstrap } from "./_v5_testing.ts";

const sample: ChunkRecord = {
  blockId: Uint8Array.from({ length: 32 }, (_, i) => i + 1),
  blobIndex: 0x01020304,
  flags: CHUNK_FLAG_COMPRESSED | CHUNK_FLAG_HAS_CRC32,
  compressedSize: 0x0a0b0c0d,
  uncompressedSize: 0xfffffffe,
  compressedOffset: 2 ** 40 + 3,
  uncompressedOffset: 2 ** 52 + 4096,
  fileOffset: 0x1_0000_0000,
  index: 0x80000001,
  crc32: 0xdeadbeef,
};

test("chunk record: 80 bytes with the field offsets of spec §3.13 (values above 2^31/2^32 survive)", () => {
  const b = encodeChunkRecord(sample);
  assert.equal(b.length, CHUNK_RECORD_SIZE);
  const v = new DataView(b.buffer);
  assert.deepEqual(b.subarray(0, 32), sample.blockId);
  assert.equal(v.getUint32(32, true), 0x01020304);
  assert.equal(v.getUint32(36, true), 0x11);
  assert.equal(v.getUint32(40, true), 0x0a0b0c0d);
  assert.equal(v.getUint32(44, true), 0xfffffffe);
  assert.equal(v.getBigUint64(48, true), 2n ** 40n + 3n);
  assert.equal(v.getBigUint64(56, true), 2n ** 52n + 4096n);
  assert.equal(v.getBigUint64(64, true), 0x1_0000_0000n);
  assert.equal(v.getUint32(72, true), 0x80000001);
  assert.equal(v.getUint32(76, true), 0xdeadbeef);
  assert.deepEqual(decodeChunkRecord(b), sample);
  // Decoding at an offset inside a larger buffer, and encoding into one.
  const big = new Uint8Array(200);
  encodeChunkRecord(sample, big.subarray(100));
  assert.deepEqual(decodeChunkRecord(big, 100), sample);
});

test("chunk record: truncated input and u64 above 2^53 throw FormatError with absolute offsets", () => {
  const b = encodeChunkRecord(sample);
  assert.throws(() => decodeChunkRecord(b.subarray(0, 79)), (e: unknown) => e instanceof FormatError && e.offset === 0);
  const big = new Uint8Array(150);
  big.set(b.subarray(0, 50), 100);
  assert.throws(() => decodeChunkRecord(big, 100), (e: unknown) => e instanceof FormatError && e.field === "(size)" && e.offset === 100);
  assert.throws(() => decodeChunkRecord(big, 1000), FormatError);
  new DataView(b.buffer).setBigUint64(64, 2n ** 53n, true);
  assert.throws(() => decodeChunkRecord(b), (e: unknown) => e instanceof FormatError && e.field === "file_offset" && e.offset === 64);
  assert.throws(() => decodeChunkRecord(b, -1), RangeError);
  assert.throws(() => encodeChunkRecord({ ...sample, blockId: new Uint8Array(31) }), RangeError);
  assert.throws(() => encodeChunkRecord({ ...sample, index: 2 ** 32 }), RangeError);
});

test("chunk record: model ChunkInfo carries crc32 only with HAS_CRC32", () => {
  const withCrc = chunkInfoFromRecord(sample);
  assert.equal(withCrc.crc32, 0xdeadbeef);
  assert.equal(withCrc.compressed, true);
  const without = chunkInfoFromRecord({ ...sample, flags: 0, crc32: 0 });
  assert.equal("crc32" in without, false);
  assert.equal(without.compressed, false);
  assert.equal(without.index, sample.index);
});

test("chunk record: encode(decode(x)) == x for every chunk record of the v5 fixtures", () => {
  for (const name of V5_FIXTURES) {
    const bytes = readBootstrap(name);
    const image = openRafsV5(bytes);
    let n = 0;
    for (let i = 1; i <= image.indexCount; i++) {
      const r = image.entry(i).record;
      for (let k = 0; k < r.chunkCount; k++) {
        const off = r.chunksOffset + k * CHUNK_RECORD_SIZE;
        assert.deepEqual(encodeChunkRecord(decodeChunkRecord(bytes, off)), bytes.subarray(off, off + CHUNK_RECORD_SIZE));
        n++;
      }
    }
    // 23 distinct chunks, plus the two extra links of the 3-way hardlink and dedup'd zero chunks.
    assert.ok(n >= 23, `${name}: ${n} records`);
  }
});
