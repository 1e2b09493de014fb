import { test } from "node:test";
import assert from "node:assert/strict";
import { FormatError } from "../internal/errors.ts";
import { CHUNK_RECORD_SIZE } from "./chunk_record.ts";
import {
  RAFSV5_EXT_BLOB_ENTRY_SIZE,
  RAFSV5_INODE_FLAG_XATTR,
  RAFSV5_INODE_SIZE,
  RAFSV5_SUPERBLOCK_SIZE,
  type RafsV5Inode,
  compressorFromSuperFlags,
  decodeBlobTable,
  decodeExtBlobEntry,
  decodeInodeTable,
  decodeRafsV5Inode,
  decodeRafsV5InodeRecord,
  decodeRafsV5SuperBlock,
  decodeXattrTable,
  digesterFromSuperFlags,
  encodeBlobTable,
  encodeExtBlobEntry,
  encodeRafsV5Inode,
  encodeRafsV5InodeRecord,
  encodeRafsV5SuperBlock,
  encodeXattrTable,
  validateRafsV5SuperBlock,
} from "./v5_format.ts";
import { openRafsV5 } from "./v5_reader.ts";
import { V5_FIXTURES, readBootstrap } from "./_v5_testing.ts";

const isFormat = (field: string, offset?: number) => (e: unknown) =>
  e instanceof FormatError && e.field === field && (offset === undefined || e.offset === offset);

for (const name of V5_FIXTURES) {
  test(`${name}: encode(decode(x)) == x for superblock, blob tables and every inode record`, () => {
    const bytes = readBootstrap(name);
    const sb = decodeRafsV5SuperBlock(bytes);
    assert.deepEqual(encodeRafsV5SuperBlock(sb), bytes.subarray(0, RAFSV5_SUPERBLOCK_SIZE));
    assert.deepEqual(encodeBlobTable(decodeBlobTable(bytes, sb)), bytes.subarray(sb.blobTableOffset, sb.blobTableOffset + sb.blobTableSize));
    const ext = sb.extendedBlobTableOffset;
    assert.deepEqual(encodeExtBlobEntry(decodeExtBlobEntry(bytes, ext)), bytes.subarray(ext, ext + RAFSV5_EXT_BLOB_ENTRY_SIZE));

    const image = openRafsV5(bytes);
    let prevEnd = 0;
    for (let i = 1; i <= image.indexCount; i++) {
      const rec = image.entry(i).record;
      assert.deepEqual(encodeRafsV5Inode(decodeRafsV5Inode(bytes, rec.offset)), bytes.subarray(rec.offset, rec.offset + RAFSV5_INODE_SIZE));
      const chunks = Array.from({ length: rec.chunkCount }, (_, k) =>
        bytes.subarray(rec.chunksOffset + k * CHUNK_RECORD_SIZE, rec.chunksOffset + (k + 1) * CHUNK_RECORD_SIZE),
      );
      const whole = encodeRafsV5InodeRecord({ inode: rec.inode, name: rec.name, symlink: rec.symlink, xattrs: rec.xattrs, chunks });
      assert.deepEqual(whole, bytes.subarray(rec.offset, rec.end), `record ${i}`);
      // The fixtures (older builder) store records in index order, back to back (spec §5.7).
      if (prevEnd) assert.equal(rec.offset, prevEnd);
      prevEnd = rec.end;
    }
    assert.equal(prevEnd, bytes.length, "records end at the end of the file");
  });
}

test("superblock: field offsets of spec §5.2 and validation errors name the field", () => {
  const bytes = readBootstrap(V5_FIXTURES[0]);
  const sb = decodeRafsV5SuperBlock(bytes);
  const enc = encodeRafsV5SuperBlock({ ...sb, inodesCount: 2 ** 40 + 1, extendedBlobTableOffset: 2 ** 33 });
  const v = new DataView(enc.buffer);
  assert.equal(enc.length, 8192);
  assert.equal(v.getBigUint64(24, true), 2n ** 40n + 1n);
  assert.equal(v.getBigUint64(72, true), 2n ** 33n);

  const mutate = (off: number, write: (v: DataView) => void) => {
    const b = bytes.slice();
    write(new DataView(b.buffer, off));
    return b;
  };
  assert.throws(() => decodeRafsV5SuperBlock(bytes.subarray(0, 8191)), isFormat("(size)", 0));
  assert.throws(() => decodeRafsV5SuperBlock(mutate(0, (d) => d.setUint32(0, 0x52414654, true))), isFormat("s_magic", 0));
  assert.throws(() => decodeRafsV5SuperBlock(mutate(4, (d) => d.setUint32(0, 0x600, true))), isFormat("s_fs_version", 4));
  assert.throws(() => decodeRafsV5SuperBlock(mutate(8, (d) => d.setUint32(0, 4096, true))), isFormat("s_sb_size", 8));
  for (const bs of [0, 2048, 0x3000, 0x2000000]) {
    assert.throws(() => decodeRafsV5SuperBlock(mutate(12, (d) => d.setUint32(0, bs, true))), isFormat("s_block_size", 12));
  }
  assert.throws(() => decodeRafsV5SuperBlock(mutate(16, (d) => d.setBigUint64(0, 0x400n, true))), isFormat("s_flags", 16));
  assert.equal(decodeRafsV5SuperBlock(mutate(16, (d) => d.setBigUint64(0, 0x8000_0009n, true))).flags, 0x8000_0009n, "PRESERVED_COMPAT bits are accepted");
  assert.throws(() => decodeRafsV5SuperBlock(mutate(32, (d) => d.setBigUint64(0, 2n ** 60n, true))), isFormat("s_inode_table_offset", 32));

  const check = (patch: Partial<typeof sb>, field: string, size = bytes.length) =>
    assert.throws(() => validateRafsV5SuperBlock({ ...sb, ...patch }, size), isFormat(field));
  validateRafsV5SuperBlock(sb, bytes.length);
  check({}, "(size)", 8192);
  check({ inodeTableEntries: 0 }, "s_inode_table_entries");
  check({ inodesCount: 55 }, "s_inodes_count");
  check({ inodeTableOffset: 4096 }, "s_inode_table_offset");
  check({ inodeTableEntries: 0xffffffff, inodesCount: 1 }, "s_inode_table_offset");
  check({ blobTableOffset: 8192 }, "s_blob_table_offset");
  check({ blobTableOffset: bytes.length - 8 }, "s_blob_table_offset");
  check({ extendedBlobTableOffset: sb.blobTableOffset + 8 }, "s_extended_blob_table_offset");
  check({ extendedBlobTableEntries: 0xffffffff }, "s_extended_blob_table_offset");
  check({ prefetchTableEntries: 1, prefetchTableOffset: 8192 }, "s_prefetch_table_offset");
  validateRafsV5SuperBlock({ ...sb, extendedBlobTableEntries: 0, extendedBlobTableOffset: 0 }, bytes.length);
});

test("superblock flags: compressor and digester with upstream's precedence and defaults", () => {
  assert.equal(compressorFromSuperFlags(0x09n), "none");
  assert.equal(compressorFromSuperFlags(0x02n), "lz4_block");
  assert.equal(compressorFromSuperFlags(0x40n), "gzip");
  assert.equal(compressorFromSuperFlags(0x80n), "zstd");
  assert.equal(compressorFromSuperFlags(0x10n), "lz4_block", "no compression bit means lz4_block");
  assert.equal(digesterFromSuperFlags(0x08n), "sha256");
  assert.equal(digesterFromSuperFlags(0x0cn), "blake3");
  assert.equal(digesterFromSuperFlags(0x01n), "blake3", "no hash bit means blake3");
});

test("blob table: separators, padding and parsing rules of spec §5.5", () => {
  const entries = [
    { readaheadOffset: 1, readaheadSize: 2, blobId: "a".repeat(64) },
    { readaheadOffset: 0xffffffff, readaheadSize: 4, blobId: "b".repeat(100) },
    { readaheadOffset: 5, readaheadSize: 6, blobId: "short" },
  ];
  const t = encodeBlobTable(entries);
  assert.equal(t.length, Math.ceil((8 + 64 + 1 + 8 + 100 + 1 + 8 + 5) / 8) * 8);
  assert.equal(t[8 + 64], 0);
  const file = new Uint8Array(8192 + t.length);
  file.set(t, 8192);
  const sb = { ...decodeRafsV5SuperBlock(readBootstrap(V5_FIXTURES[0])), blobTableOffset: 8192, blobTableSize: t.length };
  assert.deepEqual(decodeBlobTable(file, sb), entries);
  assert.equal(encodeBlobTable([]).length, 0);
  file[8192 + 8] = 0xff; // invalid UTF-8 in the first id
  assert.throws(() => decodeBlobTable(file, sb), isFormat("blob_id", 8200));
  assert.throws(() => decodeBlobTable(file, { ...sb, blobTableSize: t.length + 1 }), FormatError);
});

test("xattr table: layout of spec §5.7, round trip, and malformed tables", () => {
  const pairs: Array<[string, Uint8Array]> = [
    ["user.a", Uint8Array.of(1, 2, 3)],
    ["security.capability", new Uint8Array(20).fill(7)],
    ["trusted.empty", new Uint8Array(0)],
  ];
  const t = encodeXattrTable(pairs);
  const size = pairs.reduce((s, [n, v]) => s + 4 + n.length + 1 + v.length, 0);
  assert.equal(new DataView(t.buffer).getBigUint64(0, true), BigInt(size));
  assert.equal(t.length, 8 + Math.ceil(size / 8) * 8);
  assert.equal(new DataView(t.buffer).getUint32(8, true), 6 + 1 + 3);
  const d = decodeXattrTable(t, 0);
  assert.deepEqual([...d.xattrs], pairs);
  assert.equal(d.onDiskSize, t.length);

  const bad = (mut: (b: Uint8Array, v: DataView) => void, field: string) => {
    const b = t.slice();
    mut(b, new DataView(b.buffer));
    assert.throws(() => decodeXattrTable(b, 0), isFormat(field));
  };
  bad((_, v) => v.setBigUint64(0, 2n ** 40n, true), "size");
  bad((_, v) => v.setUint32(8, 0xffffffff, true), "pair_size");
  bad((b) => b.fill(0x41, 12, 19), "name"); // no NUL in the first pair
  bad((b) => (b[12] = 0), "name"); // empty name
  const dup = encodeXattrTable([pairs[0], ["user.a", Uint8Array.of(9)]]);
  assert.throws(() => decodeXattrTable(dup, 0), isFormat("name", 8 + 14 + 4));
  bad((_, v) => v.setBigUint64(0, BigInt(size + 2), true), "pair_size"); // 2 trailing bytes cannot hold a pair size
});

test("inode record: xattrs and chunk records are located after name and symlink", () => {
  const inode: RafsV5Inode = {
    digest: new Uint8Array(32).fill(9),
    parent: 1,
    ino: 2,
    uid: 1000,
    gid: 1000,
    projid: 0,
    mode: 0o100644,
    size: 10,
    blocks: 1,
    flags: RAFSV5_INODE_FLAG_XATTR,
    nlink: 1,
    childIndex: 0,
    childCount: 1,
    nameSize: 3,
    symlinkSize: 0,
    rdev: 0,
    mtimeNsec: 5,
    mtime: 2 ** 33,
    reserved: new Uint8Array(8),
  };
  const chunk = new Uint8Array(CHUNK_RECORD_SIZE).fill(3);
  const rec = encodeRafsV5InodeRecord({ inode, name: new TextEncoder().encode("abc"), xattrs: [["user.k", Uint8Array.of(1)]], chunks: [chunk] });
  const file = new Uint8Array(8200 + rec.length);
  file.set(rec, 8200);
  const d = decodeRafsV5InodeRecord(file, 8200);
  assert.deepEqual(d.inode, inode);
  assert.equal(Buffer.from(d.name).toString(), "abc");
  assert.deepEqual([...d.xattrs], [["user.k", Uint8Array.of(1)]]);
  assert.equal(d.chunksOffset, 8200 + 128 + 8 + 8 + 16);
  assert.equal(d.chunkCount, 1);
  assert.equal(d.end, file.length);
  assert.throws(() => decodeRafsV5InodeRecord(file.subarray(0, file.length - 1), 8200), isFormat("i_child_count", 8200 + 96));
  assert.throws(() => decodeRafsV5InodeRecord(file.subarray(0, 8200 + 130), 8200), isFormat("name", 8200 + 128));
  assert.throws(() => decodeRafsV5Inode(file, file.length - 127), isFormat("(size)"));
});

test("inode table: entries are absolute offsets >> 3, checked against the superblock and file end", () => {
  const bytes = readBootstrap(V5_FIXTURES[0]);
  const sb = decodeRafsV5SuperBlock(bytes);
  const offsets = decodeInodeTable(bytes, sb);
  assert.equal(offsets.length, 54);
  assert.equal(offsets[0], 0x2160, "root record right after the extended blob table");
  for (const [v, why] of [[0, "zero"], [1024, "inside the superblock"], [1 << 29, "at 2^32"], [bytes.length / 8, "at the end of the file"]] as const) {
    const b = bytes.slice();
    new DataView(b.buffer).setUint32(8192 + 12, v, true);
    assert.throws(() => decodeInodeTable(b, sb), isFormat("entries[3]", 8192 + 12), why);
  }
});
