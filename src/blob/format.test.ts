import { test } from "node:test";
import assert from "node:assert/strict";
import { FormatError } from "../internal/errors.ts";
import { FIXTURE_LAYOUT, fixtureBlobBytes } from "./_fixture.ts";
import {
  BLOB_FEATURES_BLOB_TOC,
  BLOB_FEATURE_ALIGNED,
  BLOB_FEATURE_CAP_TAR_TOC,
  BLOB_FEATURE_HAS_TAR_HEADER,
  BLOB_FEATURE_HAS_TOC,
  BLOB_FEATURE_INLINED_CHUNK_DIGEST,
  BLOB_FEATURES_DEFAULT,
  BLOB_META_MAGIC,
  decodeBlobMetaHeader,
  decodeCiEntryV1,
  decodeCiEntryV2,
  decodeCiTable,
  decodeTarHeader,
  decodeTocEntry,
  decodeTocList,
  encodeBlobMetaHeader,
  encodeCiEntryV1,
  encodeCiEntryV2,
  encodeTarHeader,
  encodeTocEntry,
  encodeTocList,
  hasFeature,
  tocEntryCompressor,
} from "./format.ts";

const blob = fixtureBlobBytes();
const sect = (k: keyof typeof FIXTURE_LAYOUT) => blob.subarray(FIXTURE_LAYOUT[k][0], FIXTURE_LAYOUT[k][1]);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("feature constants compose to the values upstream writes (spec §4.4)", () => {
  assert.equal(BLOB_FEATURES_DEFAULT, BLOB_FEATURE_CAP_TAR_TOC | BLOB_FEATURE_ALIGNED);
  assert.equal(
    BLOB_FEATURES_BLOB_TOC,
    (BLOB_FEATURE_CAP_TAR_TOC | BLOB_FEATURE_HAS_TOC | BLOB_FEATURE_HAS_TAR_HEADER | BLOB_FEATURE_INLINED_CHUNK_DIGEST | BLOB_FEATURE_ALIGNED) >>> 0,
  );
  assert.equal(hasFeature(0x8000_0001, 0x8000_0000), true);
  assert.equal(hasFeature(0x4000_0001, BLOB_FEATURE_HAS_TOC), false);
});

test("fixture ci entries decode to the spec §10.8 values and re-encode byte for byte", () => {
  const table = sect("ciTable");
  const [e0, e1] = decodeCiTable(table, 2, false, 8314);
  assert.deepEqual(
    { ...e0 },
    { uncompressedOffset: 0, uncompressedSize: 16931, compressedOffset: 0, compressedSize: 4828, compressed: true, flags: 0, data: 0n, reserved: 0 },
  );
  assert.deepEqual(
    { ...e1 },
    { uncompressedOffset: 0x5000, uncompressedSize: 13400, compressedOffset: 4828, compressedSize: 2974, compressed: true, flags: 0, data: 0n, reserved: 0 },
  );
  assert.equal(hex(encodeCiEntryV1(e0!)), hex(table.subarray(0, 16)));
  assert.equal(hex(encodeCiEntryV1(e1!)), hex(table.subarray(16, 32)));
  // The raw words of entry 1 as printed in spec §4.3.
  const dv = new DataView(table.buffer, table.byteOffset + 16, 16);
  assert.equal(dv.getBigUint64(0, true), 0x0345_7000_0000_5000n);
  assert.equal(dv.getBigUint64(8, true), 0x00b9_d000_0000_12dcn);
});

test("ci V1: 24-bit sizes split across fields, inferred compression, reserved bits kept", () => {
  const e = { uncompressedOffset: 0xabc_def0_1000, uncompressedSize: 1 << 24, compressedOffset: 0xff_ffff_ffff, compressedSize: 0x12_3457 };
  const b = encodeCiEntryV1(e);
  const d = decodeCiEntryV1(b);
  assert.deepEqual({ ...d }, { ...e, compressed: true, flags: 0, data: 0n, reserved: 0 });
  const same = decodeCiEntryV1(encodeCiEntryV1({ ...e, compressedSize: 1 << 24 }));
  assert.equal(same.compressed, false);
  const withReserved = new Uint8Array(b);
  withReserved[0] = 0x5a;
  assert.equal(decodeCiEntryV1(withReserved).reserved, 0x5a);
  assert.equal(hex(encodeCiEntryV1(decodeCiEntryV1(withReserved))), hex(withReserved));
  assert.throws(() => encodeCiEntryV1({ ...e, uncompressedOffset: 4097 }), RangeError);
  assert.throws(() => encodeCiEntryV1({ ...e, uncompressedSize: 0 }), RangeError);
  assert.throws(() => encodeCiEntryV1({ ...e, compressedSize: (1 << 24) + 1 }), RangeError);
  assert.throws(() => encodeCiEntryV1({ ...e, compressedOffset: 2 ** 40 }), RangeError);
});

test("ci V2 round-trips every field, including flags and the data word", () => {
  const e = { uncompressedOffset: 0xfff_ffff_f000, uncompressedSize: 0x10_0000, compressedOffset: 123456789, compressedSize: 0xff_ffff, flags: 0x11, data: 0xdead_beefn };
  const b = encodeCiEntryV2(e);
  assert.equal(b.length, 24);
  const d = decodeCiEntryV2(b);
  assert.deepEqual({ ...d }, { ...e, compressed: true, reserved: 0 });
  assert.equal(hex(encodeCiEntryV2(d)), hex(b));
  const u = new DataView(b.buffer).getBigUint64(0, true);
  assert.equal(u >> 56n, 0x11n);
  assert.equal((u >> 32n) & 0xff_ffffn, 0xf_ffffn);
  assert.throws(() => encodeCiEntryV2({ ...e, compressedSize: 1 << 24 }), RangeError);
});

test("fixture ci header decodes to spec §10.8 and re-encodes byte for byte", () => {
  const raw = sect("ciHeader");
  const h = decodeBlobMetaHeader(raw, 8346);
  assert.deepEqual(
    { ...h },
    { features: 0x7000_0021, ciCompressor: 0, ciEntries: 2, ciOffset: 8314, ciCompressedSize: 32, ciUncompressedSize: 32, ciZranOffset: 0, ciZranSize: 0, ciZranCount: 0 },
  );
  assert.equal(hex(encodeBlobMetaHeader(h)), hex(raw));
  assert.equal(new DataView(raw.buffer, raw.byteOffset).getUint32(4092, true), BLOB_META_MAGIC);
});

test("header decode rejects bad magics with struct, field and absolute offset", () => {
  const raw = new Uint8Array(sect("ciHeader"));
  raw[4094] ^= 1;
  assert.throws(() => decodeBlobMetaHeader(raw, 8346), (e: unknown) => e instanceof FormatError && e.field === "s_magic2" && e.offset === 8346 + 4092);
  assert.throws(() => decodeBlobMetaHeader(raw.subarray(0, 4095), 100), (e: unknown) => e instanceof FormatError && e.offset === 100);
  const reserved = new Uint8Array(sect("ciHeader"));
  reserved[100] = 7;
  assert.equal(hex(encodeBlobMetaHeader(decodeBlobMetaHeader(reserved))), hex(reserved));
});

test("fixture ToC entries decode (spec §10.8) and re-encode byte for byte, stray reserved bytes included", () => {
  const raw = sect("toc");
  const entries = decodeTocList(raw, 13530);
  assert.deepEqual(
    entries.map((e) => [e.name, e.flags, e.compressedOffset, e.compressedSize, e.uncompressedSize]),
    [
      ["image.blob", 1, 7802, 7802, 36864],
      ["blob.meta", 1, 8314, 32, 32],
      ["blob.meta.header", 1, 8346, 4096, 4096],
      ["blob.digest", 1, 12954, 64, 64],
    ],
  );
  assert.ok(hex(entries[0]!.digest).startsWith("632d11c7"));
  // Spec §4.7/§12: older builders left junk in reserved2. The fixture has `ff ff 00 00` at
  // 124..127 in entries 0-2 and ASCII "0000" in entry 3; decode keeps it so encode is exact.
  assert.deepEqual([...entries[0]!.reserved2!.subarray(44)], [0xff, 0xff, 0, 0]);
  assert.deepEqual([...entries[3]!.reserved2!.subarray(44)], [0x30, 0x30, 0x30, 0x30]);
  for (const [i, e] of entries.entries()) {
    assert.equal(hex(encodeTocEntry(e)), hex(raw.subarray(i * 128, (i + 1) * 128)), e.name);
    assert.equal(tocEntryCompressor(e.flags), "none");
  }
  assert.equal(hex(encodeTocList(entries)), hex(raw));
  const clean = encodeTocEntry({ ...entries[0]!, reserved2: undefined });
  assert.equal(clean.subarray(80).every((b) => b === 0), true);
});

test("ToC entry decode validates flags and name", () => {
  const raw = new Uint8Array(sect("toc").subarray(0, 128));
  const flags = new Uint8Array(raw);
  flags[0] = 0x3;
  assert.throws(() => decodeTocEntry(flags, 50), (e: unknown) => e instanceof FormatError && e.field === "flags" && e.offset === 50);
  const name = new Uint8Array(raw);
  name[8 + 12] = 0x41; // after the NUL that ends "image.blob"
  assert.throws(() => decodeTocEntry(name, 0), (e: unknown) => e instanceof FormatError && e.field === "name");
  assert.throws(() => decodeTocList(raw.subarray(0, 127), 9), (e: unknown) => e instanceof FormatError && e.offset === 9);
  assert.throws(() => encodeTocEntry({ ...decodeTocEntry(raw), name: "x".repeat(17) }), RangeError);
});

test("tar headers: fixture bytes decode and encodeTarHeader reproduces them exactly (spec §4.6)", () => {
  const cases = [
    ["tarImageBlob", "image.blob", 7802],
    ["tarBlobMeta", "blob.meta", 4128],
    ["tarBlobDigest", "blob.digest", 64],
    ["tarToc", "rafs.blob.toc", 512],
  ] as const;
  for (const [k, name, size] of cases) {
    const raw = sect(k);
    assert.deepEqual(decodeTarHeader(raw, FIXTURE_LAYOUT[k][0]), { name, size });
    assert.equal(hex(encodeTarHeader(name, size)), hex(raw), name);
  }
  assert.equal(Buffer.from(sect("tarImageBlob").subarray(148, 156)).toString("latin1"), "0005641\0");
});

test("tar header: checksum, magic and typeflag are checked; huge sizes use base-256", () => {
  const good = encodeTarHeader("blob.meta", 4128);
  const bad = new Uint8Array(good);
  bad[0] ^= 1;
  assert.throws(() => decodeTarHeader(bad, 7), (e: unknown) => e instanceof FormatError && e.field === "chksum" && e.offset === 7 + 148);
  const dir = new Uint8Array(good);
  dir[156] = 0x35;
  // Fix up the checksum so only the typeflag is wrong.
  const sum = [...dir].reduce((a, b, i) => a + (i >= 148 && i < 156 ? 0x20 : b), 0);
  dir.set(new TextEncoder().encode(sum.toString(8).padStart(7, "0") + "\0"), 148);
  assert.throws(() => decodeTarHeader(dir), (e: unknown) => e instanceof FormatError && e.field === "typeflag");
  const big = encodeTarHeader("image.blob", 2 ** 40);
  assert.equal(big[124]! & 0x80, 0x80);
  assert.equal(decodeTarHeader(big).size, 2 ** 40);
  assert.equal(decodeTarHeader(encodeTarHeader("image.blob", 8 ** 11 - 1)).size, 8 ** 11 - 1);
});
