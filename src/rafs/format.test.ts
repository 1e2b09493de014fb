import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import {
  RafsFlags,
  decodeBlobEntry,
  decodeExtSuperBlock,
  decodePrefetchTable,
  encodeBlobEntry,
  encodeExtSuperBlock,
  encodePrefetchTable,
  flagsAlgorithms,
  isValidChunkSize,
  rafsFlags,
  validateExtSuperBlock,
  validateRafsFlags,
  type ExtSuperBlock,
} from "./format.ts";
import { FormatError } from "../internal/errors.ts";
import { fixture } from "../../test/support/paths.ts";
import { mulberry32 } from "../../test/support/fuzz.ts";
import { throwsFormat } from "../../test/support/asserts.ts";

const BOOT = new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot")));
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("flags: builder words, lenient algorithm decoding, strict v6 validation (spec §2.5, §3.3)", () => {
  assert.equal(rafsFlags({ compressor: "zstd", digester: "blake3", explicitUidGid: true, hasXattr: false, inlinedChunkDigest: false }), 0x0100_0094n);
  assert.equal(rafsFlags({ compressor: "none", digester: "sha256", explicitUidGid: false, hasXattr: true, inlinedChunkDigest: true }), 0x0100_0129n);
  assert.equal(rafsFlags({ compressor: "lz4_block", digester: "blake3", explicitUidGid: false, hasXattr: false, inlinedChunkDigest: false }), 0x0100_0006n);
  assert.deepEqual(flagsAlgorithms(0x194n), { compressor: "zstd", digester: "blake3" });
  assert.deepEqual(flagsAlgorithms(0x9n), { compressor: "none", digester: "sha256" });
  assert.deepEqual(flagsAlgorithms(0x5n), { compressor: "none", digester: "blake3" });
  assert.deepEqual(flagsAlgorithms(0x40n), { compressor: "gzip", digester: "blake3" });
  assert.deepEqual(flagsAlgorithms(0n), { compressor: "lz4_block", digester: "blake3" }, "no bits: lz4 + blake3");
  validateRafsFlags(0x194n, "S", 0, true);
  validateRafsFlags(0x0100_0094n | 0xfc00_0000n, "S", 0, true);
  validateRafsFlags(0x1n, "S", 0, false);
  throwsFormat(() => validateRafsFlags(0x1n, "S", 7, true), "S", "s_flags", 7);
  throwsFormat(() => validateRafsFlags(0x84n | 0x1n, "S", 7, true), "S", "s_flags", 7);
  throwsFormat(() => validateRafsFlags(0x8cn, "S", 7, true), "S", "s_flags", 7);
  throwsFormat(() => validateRafsFlags(0x94n | 0x400n, "S", 7, false), "S", "s_flags", 7);
  throwsFormat(() => validateRafsFlags(0x94n | (1n << 40n), "S", 7, false), "S", "s_flags", 7);
  assert.equal(RafsFlags.EncryptionNone, 0x0100_0000n);
});

test("chunk size range (spec §2.9)", () => {
  for (const n of [0x1000, 0x2000, 0x10_0000, 0x100_0000]) assert.ok(isValidChunkSize(n), String(n));
  for (const n of [0, 0x800, 0x1800, 0x200_0000, 0x10_0001, -4096, 4096.5]) assert.ok(!isValidChunkSize(n), String(n));
});

test("ext superblock: fixture (spec §10.2), byte-exact round trip, validation rules (spec §3.3)", () => {
  const raw = BOOT.subarray(1152, 1408);
  const e = decodeExtSuperBlock(raw);
  assert.deepEqual(e, {
    flags: 0x194n,
    blobTableOffset: 0x1000,
    blobTableSize: 0x100,
    chunkSize: 0x10_0000,
    chunkTableOffset: 0x4000,
    chunkTableSize: 0xa0,
    prefetchTableOffset: 0,
    prefetchTableSize: 0,
  });
  assert.equal(hexOf(encodeExtSuperBlock(e)), hexOf(raw));
  const odd: ExtSuperBlock = { flags: 2n ** 63n + 5n, blobTableOffset: 2 ** 52, blobTableSize: 0xffff_ffff, chunkSize: 7, chunkTableOffset: 2 ** 40, chunkTableSize: 2 ** 45, prefetchTableOffset: 3, prefetchTableSize: 0xffff_fff0 };
  assert.deepEqual(decodeExtSuperBlock(encodeExtSuperBlock(odd)), odd);
  throwsFormat(() => decodeExtSuperBlock(raw.subarray(0, 255)), "RafsV6SuperBlockExt", "(size)", 1152);
  const huge = new Uint8Array(raw);
  new DataView(huge.buffer).setBigUint64(24, 2n ** 54n, true);
  throwsFormat(() => decodeExtSuperBlock(huge), "RafsV6SuperBlockExt", "s_chunk_table_offset", 1152 + 24);

  const size = BOOT.length;
  validateExtSuperBlock(e, size);
  const bad = (patch: Partial<ExtSuperBlock>, field: string, off: number) =>
    throwsFormat(() => validateExtSuperBlock({ ...e, ...patch }, size), "RafsV6SuperBlockExt", field, 1152 + off);
  bad({ flags: 0x94n | 0x1n }, "s_flags", 0);
  bad({ flags: 0x80n }, "s_flags", 0);
  bad({ chunkSize: 0x800 }, "s_chunk_size", 20);
  bad({ chunkSize: 0x200_0000 }, "s_chunk_size", 20);
  bad({ blobTableOffset: 0x1100 }, "s_blob_table_offset", 8);
  bad({ blobTableOffset: 0 }, "s_blob_table_offset", 8);
  bad({ blobTableSize: 0x80 }, "s_blob_table_offset", 8);
  bad({ blobTableOffset: size - 0x80 }, "s_blob_table_offset", 8);
  bad({ chunkTableOffset: 0x4010 }, "s_chunk_table_offset", 24);
  bad({ chunkTableSize: 0xa1 }, "s_chunk_table_offset", 24);
  bad({ chunkTableOffset: size }, "s_chunk_table_offset", 24);
  bad({ chunkTableOffset: 0x1000 }, "s_chunk_table_offset", 24);
  bad({ prefetchTableOffset: 0x800, prefetchTableSize: 4 }, "s_prefetch_table_offset", 40);
  bad({ prefetchTableOffset: 0x1100, prefetchTableSize: 6 }, "s_prefetch_table_offset", 40);
  bad({ prefetchTableOffset: size - 4, prefetchTableSize: 8 }, "s_prefetch_table_offset", 40);
  bad({ prefetchTableOffset: 0x10f0, prefetchTableSize: 0x20 }, "s_prefetch_table_offset", 40);
  bad({ prefetchTableOffset: 0x4090, prefetchTableSize: 0x20 }, "s_prefetch_table_offset", 40);
  // Accepted: empty chunk table anywhere, prefetch table right after the blob table, offset 0 means none.
  validateExtSuperBlock({ ...e, chunkTableOffset: 0x123, chunkTableSize: 0 }, size);
  validateExtSuperBlock({ ...e, prefetchTableOffset: 0x1100, prefetchTableSize: 8 }, size);
  validateExtSuperBlock({ ...e, prefetchTableOffset: 0, prefetchTableSize: 8 }, size);
  validateExtSuperBlock({ ...e, flags: 0x0100_0194n }, size);
});

test("blob entry: fixture (spec §10.4), byte-exact round trip, algorithm ids", () => {
  const raw = BOOT.subarray(0x1000, 0x1100);
  const b = decodeBlobEntry(raw, 0x1000);
  assert.equal(b.blobId, "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef");
  assert.deepEqual(
    [b.blobIndex, b.chunkSize, b.chunkCount, b.compressor, b.digester, b.features, b.compressedSize, b.uncompressedSize, b.tocSize, b.ciCompressor, b.ciOffset, b.ciCompressedSize, b.ciUncompressedSize, b.blobMetaSize, b.cipherAlgo],
    [0, 0x10_0000, 2, "zstd", "blake3", 0x7000_0021, 14554, 0x9000, 0x400, "none", 0x207a, 32, 32, 0, 0],
  );
  assert.equal(hexOf(b.tocDigest).slice(0, 8), "cfc89ed0");
  assert.equal(hexOf(encodeBlobEntry(b)), hexOf(raw));

  // Every optional field survives, and the BlobInfo-only form encodes zeros for them.
  const full = {
    ...b,
    blobId: "x".repeat(64),
    blobIndex: 253,
    compressor: "lz4_block" as const,
    digester: "sha256" as const,
    ciCompressor: "zstd" as const,
    compressedSize: 2 ** 40,
    uncompressedSize: 2 ** 44,
    blobMetaDigest: new Uint8Array(32).fill(3),
    blobMetaSize: 2 ** 33,
    cipherIv: new Uint8Array(8).fill(9),
    cipherAlgo: 1,
  };
  assert.deepEqual(decodeBlobEntry(encodeBlobEntry(full), 0), full);
  const minimal = encodeBlobEntry({ blobId: "a", blobIndex: 0, chunkSize: 4096, chunkCount: 1, compressor: "none", digester: "blake3", features: 1, compressedSize: 1, uncompressedSize: 4096, tocSize: 0, tocDigest: new Uint8Array(0), ciCompressor: "none", ciOffset: 1, ciCompressedSize: 16, ciUncompressedSize: 16 });
  assert.ok(minimal.subarray(136).every((x) => x === 0));
  assert.equal(decodeBlobEntry(minimal, 0).blobId, "a");

  const patched = (off: number, v: number) => {
    const x = new Uint8Array(raw);
    new DataView(x.buffer).setUint32(off, v, true);
    return x;
  };
  throwsFormat(() => decodeBlobEntry(patched(76, 9), 0x1000), "RafsV6Blob", "compression_algo", 0x1000 + 76);
  throwsFormat(() => decodeBlobEntry(patched(80, 2), 0x1000), "RafsV6Blob", "digest_algo", 0x1000 + 80);
  throwsFormat(() => decodeBlobEntry(patched(108, 4), 0x1000), "RafsV6Blob", "ci_compressor", 0x1000 + 108);
  throwsFormat(() => decodeBlobEntry(patched(0, 0xffff_ffff), 0x1000), "RafsV6Blob", "blob_id", 0x1000);
  const big = new Uint8Array(raw);
  new DataView(big.buffer).setBigUint64(96, 2n ** 60n, true);
  throwsFormat(() => decodeBlobEntry(big, 0x1000), "RafsV6Blob", "uncompressed_size", 0x1000 + 96);
  throwsFormat(() => decodeBlobEntry(raw.subarray(0, 200), 0x1000), "RafsV6Blob", "(size)", 0x1000);
});

test("prefetch table: nids, a 0 entry ends it (spec §3.6)", () => {
  const t = encodePrefetchTable([128, 133, 0xffff_ffff]);
  assert.equal(hexOf(t), "8000000085000000ffffffff");
  assert.deepEqual(decodePrefetchTable(t, 0x1100), [128, 133, 0xffff_ffff]);
  assert.deepEqual(decodePrefetchTable(encodePrefetchTable([128, 0, 136]), 0), [128]);
  assert.deepEqual(decodePrefetchTable(new Uint8Array([1, 0, 0, 0, 2, 0]), 0), [1], "a trailing partial entry is ignored");
  assert.deepEqual(decodePrefetchTable(new Uint8Array(0), 0), []);
});

test("fuzz: every rafs/format.ts decoder and validator on random bytes throws only FormatError", () => {
  const rng = mulberry32(0x4a75_0001);
  const rnd = () => rng.float();
  const base = BOOT.subarray(1152, 1408);
  const blob = BOOT.subarray(0x1000, 0x1100);
  const decoders: [string, (b: Uint8Array) => unknown][] = [
    ["decodeExtSuperBlock", (b) => validateExtSuperBlock(decodeExtSuperBlock(b), Math.floor(rnd() * 2 ** 24))],
    ["decodeBlobEntry", (b) => decodeBlobEntry(b, 0x1000)],
    ["decodePrefetchTable", (b) => decodePrefetchTable(b, 0x1100)],
    ["validateRafsFlags", (b) => validateRafsFlags(new DataView(b.buffer, b.byteOffset, b.length).getBigUint64(0, true), "S", 0, rnd() < 0.5)],
  ];
  let rejected = 0;
  let accepted = 0;
  for (const [name, decode] of decoders) {
    for (let i = 0; i < 2000; i++) {
      // Half random bytes, half a real struct with a few random bytes.
      const real = name === "decodeBlobEntry" ? blob : base;
      let b: Uint8Array;
      if (rnd() < 0.5 || name === "validateRafsFlags") {
        b = new Uint8Array(name === "validateRafsFlags" ? 8 : Math.floor(rnd() * 300));
        for (let j = 0; j < b.length; j++) b[j] = rnd() < 0.3 ? Math.floor(rnd() * 256) : 0;
      } else {
        b = new Uint8Array(real);
        for (let k = 0; k < 3; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      }
      try {
        decode(b);
        accepted++;
      } catch (e) {
        if (!(e instanceof FormatError)) assert.fail(`${name} iteration ${i}: ${e instanceof Error ? e.stack : String(e)}`);
        rejected++;
      }
    }
  }
  assert.ok(rejected > 500 && accepted > 500, `rejected ${rejected}, accepted ${accepted}`);
});
