import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import {
  DataLayout,
  EROFS_MAGIC,
  FileType,
  chunkFormat,
  decodeBlobIdField,
  decodeChunkAddr,
  decodeDeviceSlot,
  decodeDirent,
  decodeDirentBlock,
  decodeInode,
  decodeRdev,
  decodeSuperBlock,
  decodeXattrArea,
  direntAreaSize,
  encodeBlobIdField,
  encodeChunkAddr,
  encodeDeviceSlot,
  encodeDirent,
  encodeDirentBlock,
  encodeInode,
  encodeRdev,
  encodeSuperBlock,
  encodeXattrArea,
  kindFromFileType,
  rafsSuperBlock,
  splitDirentBlocks,
  splitXattrName,
  validateRafsSuperBlock,
  xattrAreaSize,
  xattrIcount,
  type NamedDirent,
  type SuperBlock,
} from "./format.ts";
import { FormatError } from "../internal/errors.ts";
import { StructReader } from "../internal/bytes.ts";
import { fixture } from "../../test/support/paths.ts";
import { mulberry32 } from "../../test/support/fuzz.ts";
import { throwsFormat } from "../../test/support/asserts.ts";

const BOOT = new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot")));
const enc = new TextEncoder();
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("superblock: fixture fields (spec §10.1), byte-exact round trip, builder defaults", () => {
  const raw = BOOT.subarray(1024, 1152);
  const sb = decodeSuperBlock(raw);
  assert.equal(sb.magic, EROFS_MAGIC);
  assert.equal(sb.featureCompat, 0x4000_0000);
  assert.deepEqual([sb.blkszbits, sb.extslots, sb.rootNid, sb.inos, sb.blocks, sb.metaBlkaddr], [12, 0, 128, 3, 9, 2]);
  assert.deepEqual([sb.featureIncompat, sb.u, sb.extraDevices, sb.devtSlotoff], [0x0c, 0, 1, 11]);
  assert.equal(hexOf(encodeSuperBlock(sb)), hexOf(raw));
  validateRafsSuperBlock(sb, BOOT.length);

  const built = rafsSuperBlock({ inos: 3, blocks: 9, metaBlkaddr: 2, extraDevices: 1 });
  built.rootNid = 128;
  assert.equal(hexOf(encodeSuperBlock(built)), hexOf(raw), "builder defaults reproduce the fixture superblock");

  // Non-zero uuid / volume name / reserved bytes and large values survive too.
  const odd: SuperBlock = { ...sb, inos: 2 ** 40, buildTime: 2 ** 50, buildTimeNsec: 999_999_999, uuid: new Uint8Array(16).fill(0xab), volumeName: enc.encode("volume-name-1234"), reserved: new Uint8Array(38).fill(7) };
  assert.deepEqual(decodeSuperBlock(encodeSuperBlock(odd)), odd);
  // Encoding into a larger buffer writes exactly 128 bytes at its start.
  const big = new Uint8Array(200).fill(0xee);
  encodeSuperBlock(sb, big);
  assert.equal(hexOf(big.subarray(0, 128)), hexOf(raw));
  assert.ok(big.subarray(128).every((b) => b === 0xee));
});

test("superblock: decode errors and every validation rule (spec §3.2)", () => {
  throwsFormat(() => decodeSuperBlock(BOOT.subarray(1024, 1100)), "ErofsSuperBlock", "(size)", 1024);
  const big = new Uint8Array(BOOT.subarray(1024, 1152));
  new DataView(big.buffer).setBigUint64(16, 2n ** 60n, true);
  throwsFormat(() => decodeSuperBlock(big), "ErofsSuperBlock", "s_inos", 1040);

  const good = decodeSuperBlock(BOOT.subarray(1024, 1152));
  const bad = (patch: Partial<SuperBlock>, field: string, off: number, size = BOOT.length) =>
    throwsFormat(() => validateRafsSuperBlock({ ...good, ...patch }, size), "RafsV6SuperBlock", field, off);
  bad({ magic: 0 }, "s_magic", 0x400);
  bad({ checksum: 1 }, "s_checksum", 0x404);
  bad({ featureCompat: 0 }, "s_feature_compat", 0x408);
  bad({ blkszbits: 13 }, "s_blkszbits", 0x40c);
  bad({ extslots: 1 }, "s_extslots", 0x40d);
  bad({ inos: 0 }, "s_inos", 0x410);
  bad({ u: 1 }, "s_u", 0x454);
  bad({ xattrBlkaddr: 5 }, "s_xattr_blkaddr", 0x42c);
  bad({ featureIncompat: 0x4 }, "s_feature_incompat", 0x450);
  bad({ featureIncompat: 0x1c }, "s_feature_incompat", 0x450);
  bad({ devtSlotoff: 12 }, "s_devt_slotoff", 0x458);
  bad({}, "image_size", 0, 20481);
  bad({}, "image_size", 0, 0);
  bad({ metaBlkaddr: 6 }, "s_meta_blkaddr", 0x428);
  bad({ extraDevices: 0, blocks: 9 }, "s_blocks", 0x424);
  bad({ extraDevices: 200 }, "s_extra_devices", 0x456);
  // Accepted corner cases.
  validateRafsSuperBlock({ ...good, extraDevices: 0, blocks: 4096 }, BOOT.length);
  validateRafsSuperBlock({ ...good, extraDevices: 0, blocks: 0 }, BOOT.length);
  validateRafsSuperBlock({ ...good, metaBlkaddr: 5 }, BOOT.length);
  validateRafsSuperBlock({ ...good, featureCompat: 0x4000_0001 }, BOOT.length);
  validateRafsSuperBlock({ ...good, blkszbits: 9 }, 4608);
});

test("device slot: fixture (spec §10.3), round trip, blob id field rules", () => {
  const raw = BOOT.subarray(1408, 1536);
  const slot = decodeDeviceSlot(raw, 1408);
  assert.deepEqual(slot, { blobId: "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef", blocks: 9, mappedBlkaddr: 0x200 });
  assert.equal(hexOf(encodeDeviceSlot(slot)), hexOf(raw));
  const short = { blobId: "abc", blocks: 1, mappedBlkaddr: 0xffffffff };
  assert.deepEqual(decodeDeviceSlot(encodeDeviceSlot(short), 0), short);
  throwsFormat(() => decodeDeviceSlot(raw.subarray(0, 100), 1408), "RafsV6Device", "(size)", 1408);
  const badUtf8 = new Uint8Array(raw);
  badUtf8[3] = 0xff;
  throwsFormat(() => decodeDeviceSlot(badUtf8, 1408), "RafsV6Device", "blob_id", 1408);
  assert.throws(() => encodeBlobIdField("x".repeat(65)), RangeError);
  assert.equal(encodeBlobIdField("é").length, 64);
  assert.equal(decodeBlobIdField(new StructReader("T", new Uint8Array(64)), encodeBlobIdField("é"), 0), "é");
});

test("inodes: fixture extended inodes (spec §10.5-10.6) and compact inodes round trip byte for byte", () => {
  const root = decodeInode(BOOT.subarray(0x3000, 0x3040), 0x3000);
  assert.deepEqual(root, {
    format: 5, extended: true, layout: DataLayout.FlatInline, xattrIcount: 0, mode: 0o40755, size: 67, u: 3, ino: 0,
    uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, nlink: 2, inodeSize: 64,
  });
  const lib = decodeInode(BOOT.subarray(0x30a0), 0x30a0);
  assert.deepEqual(lib, {
    format: 9, extended: true, layout: DataLayout.ChunkBased, xattrIcount: 0, mode: 0o100644, size: 16931, u: 0x28, ino: 2,
    uid: 0, gid: 0, mtime: 0x63f23c61, mtimeNsec: 0x25789c56, nlink: 1, inodeSize: 64,
  });
  for (const off of [0x3000, 0x30a0, 0x3100]) {
    assert.equal(hexOf(encodeInode(decodeInode(BOOT.subarray(off, off + 64), off))), hexOf(BOOT.subarray(off, off + 64)));
  }
  const compact = { extended: false, layout: DataLayout.FlatPlain, xattrIcount: 3, mode: 0o20600, size: 0xffff_fffe, u: encodeRdev(1, 3), ino: 77, uid: 65535, gid: 1, mtime: 0, mtimeNsec: 0, nlink: 65535 };
  const bytes = encodeInode(compact);
  assert.equal(bytes.length, 32);
  assert.equal(bytes[0], 0x00);
  const back = decodeInode(bytes, 0);
  assert.deepEqual(back, { ...compact, format: 0, inodeSize: 32 });
  assert.equal(hexOf(encodeInode(back)), hexOf(bytes));
  // A compact inode needs only 32 bytes, an extended one 64.
  throwsFormat(() => decodeInode(BOOT.subarray(0x3000, 0x3020), 0x3000), "RafsV6InodeExtended", "(size)", 0x3000);
  throwsFormat(() => decodeInode(bytes.subarray(0, 20), 100), "RafsV6InodeCompact", "(size)", 100);
  throwsFormat(() => decodeInode(new Uint8Array(1), 9), "ErofsInode", "(size)", 9);
  const bits = new Uint8Array(bytes);
  bits[0] = 0x10;
  throwsFormat(() => decodeInode(bits, 64), "ErofsInode", "i_format", 64);
  const huge = new Uint8Array(BOOT.subarray(0x30a0, 0x30e0));
  new DataView(huge.buffer).setBigUint64(8, 2n ** 63n, true);
  throwsFormat(() => decodeInode(huge, 0x30a0), "RafsV6InodeExtended", "i_size", 0x30a8);
});

test("inodes: compact encoding refuses values that do not fit instead of truncating them", () => {
  const base = { extended: false, layout: 0, xattrIcount: 0, mode: 0o100644, size: 1, u: 0, ino: 1, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, nlink: 1 };
  assert.throws(() => encodeInode({ ...base, uid: 65536 }), RangeError);
  assert.throws(() => encodeInode({ ...base, gid: 70000 }), RangeError);
  assert.throws(() => encodeInode({ ...base, nlink: 65536 }), RangeError);
  assert.throws(() => encodeInode({ ...base, size: 2 ** 32 }), RangeError);
  assert.equal(decodeInode(encodeInode({ ...base, extended: true, uid: 70000, size: 2 ** 40 }), 0).size, 2 ** 40);
});

test("rdev: Linux new_encode_dev (spec §3.7.3)", () => {
  assert.equal(encodeRdev(1, 3), 0x103);
  assert.equal(encodeRdev(8, 1), 0x801);
  assert.equal(encodeRdev(259, 0x12345), 0x45 | (259 << 8) | (0x123 << 20));
  for (const [maj, min] of [[0, 0], [1, 3], [4095, 0xfffff], [259, 0x12345], [136, 256]]) {
    assert.deepEqual(decodeRdev(encodeRdev(maj, min)), { major: maj, minor: min });
  }
  assert.deepEqual(decodeRdev(0xffff_ffff), { major: 0xfff, minor: 0xfffff });
});

test("chunk addresses: fixture (spec §10.6), 24-bit ci_index split, device id rules", () => {
  assert.deepEqual(decodeChunkAddr(BOOT.subarray(0x30e0, 0x30e8), 0x30e0), { blobIndex: 0, chunkIndex: 0, blkAddr: 0 });
  assert.deepEqual(decodeChunkAddr(BOOT.subarray(0x3140, 0x3148), 0x3140), { blobIndex: 0, chunkIndex: 1, blkAddr: 5 });
  for (const off of [0x30e0, 0x3140]) assert.equal(hexOf(encodeChunkAddr(decodeChunkAddr(BOOT.subarray(off, off + 8), off))), hexOf(BOOT.subarray(off, off + 8)));
  const a = { blobIndex: 253, chunkIndex: 0xab_cdef, blkAddr: 0xffff_ffff };
  const bytes = encodeChunkAddr(a);
  assert.equal(hexOf(bytes), "efcdfeabffffffff");
  assert.deepEqual(decodeChunkAddr(bytes, 0), a);
  throwsFormat(() => decodeChunkAddr(new Uint8Array([1, 0, 0, 5, 0, 0, 0, 0]), 40), "RafsV6InodeChunkAddr", "c_blob_addr_hi", 42);
  throwsFormat(() => decodeChunkAddr(new Uint8Array(7), 40), "RafsV6InodeChunkAddr", "(size)", 40);
  assert.throws(() => encodeChunkAddr({ ...a, blobIndex: 254 }), RangeError);
  assert.throws(() => encodeChunkAddr({ ...a, blobIndex: -1 }), RangeError);
  assert.throws(() => encodeChunkAddr({ ...a, chunkIndex: 0x100_0000 }), RangeError);
});

test("chunk format in i_u (spec §3.10)", () => {
  assert.equal(chunkFormat(0x10_0000), 0x28);
  assert.equal(chunkFormat(4096), 0x20);
  assert.equal(chunkFormat(2 ** 22), 0x2a);
  assert.equal(chunkFormat(2 ** 43), 0x20 | 31);
  assert.throws(() => chunkFormat(3000), RangeError);
  assert.throws(() => chunkFormat(2048), RangeError);
  assert.throws(() => chunkFormat(2 ** 44), RangeError, "log2 - 12 must fit the 5-bit field");
});

test("dirents: fixture block (spec §10.5) and byte-exact round trip", () => {
  const block = BOOT.subarray(0x3040, 0x3040 + 67);
  const ents = decodeDirentBlock(block, 67, 0x3040);
  assert.deepEqual(ents.map((e) => [Buffer.from(e.name).toString(), e.nid, e.fileType]), [[".", 128, 2], ["..", 128, 2], ["lib.rs", 133, 1], ["sync_io.rs", 136, 1]]);
  assert.equal(hexOf(encodeDirentBlock(ents)), hexOf(block));
  assert.deepEqual(decodeDirent(block, 0x3040), { nid: 128, nameoff: 48, fileType: 2 });
  assert.equal(hexOf(encodeDirent({ nid: 128, nameoff: 48, fileType: 2 })), hexOf(block.subarray(0, 12)));
  assert.equal(direntAreaSize(ents), 67);
  assert.deepEqual(splitDirentBlocks(ents), [ents]);
  assert.equal(kindFromFileType(FileType.symlink), "symlink");
  assert.equal(kindFromFileType(0), undefined);
  assert.equal(kindFromFileType(8), undefined);
});

test("dirents: multi-block packing agrees with the size walk, and full blocks decode with NUL padding", () => {
  const mk = (name: string, nid: number): NamedDirent => ({ name: enc.encode(name), nid, fileType: FileType.reg });
  for (const nameLen of [1, 7, 52, 200, 255]) {
    const ents = Array.from({ length: 150 }, (_, i) => mk(String(i).padStart(4, "0") + "n".repeat(nameLen - Math.min(nameLen, 4)), 1000 + i)).sort((a, b) => Buffer.compare(a.name, b.name));
    const blocks = splitDirentBlocks(ents);
    const encoded = blocks.map(encodeDirentBlock);
    assert.ok(encoded.every((b) => b.length <= 4096));
    const size = direntAreaSize(ents);
    assert.equal(size, 4096 * (blocks.length - 1) + encoded[encoded.length - 1].length, `nameLen ${nameLen}`);
    // Every non-last block is packed as far as the next entry allows.
    blocks.slice(0, -1).forEach((b, i) => assert.ok(encoded[i].length + 12 + blocks[i + 1][0].name.length > 4096));
    const decoded = encoded.flatMap((b, i) => {
      const padded = new Uint8Array(4096);
      padded.set(b);
      const last = i === encoded.length - 1;
      return decodeDirentBlock(last ? b : padded, last ? b.length : 4096, i * 4096);
    });
    assert.deepEqual(decoded.map((d) => [hexOf(d.name), d.nid]), ents.map((d) => [hexOf(d.name), d.nid]));
  }
  // 16 entries of 12 + 244 bytes fill one block exactly; a 17th opens a second block.
  const exact = Array.from({ length: 17 }, (_, i) => mk(String.fromCharCode(0x41 + i).repeat(244), i + 1));
  assert.deepEqual(splitDirentBlocks(exact).map((b) => b.length), [16, 1]);
  assert.equal(encodeDirentBlock(exact.slice(0, 16)).length, 4096);
  assert.equal(direntAreaSize(exact.slice(0, 16)), 4096);
  assert.equal(direntAreaSize(exact), 4096 + 256);
  const full = decodeDirentBlock(encodeDirentBlock(exact.slice(0, 16)), 4096, 0);
  assert.equal(full[15].name.length, 244, "last name of a full block ends at the block end");
});

test("dirents: malformed blocks throw FormatError with the offending offset", () => {
  const block = new Uint8Array(BOOT.subarray(0x3040, 0x3040 + 67));
  throwsFormat(() => decodeDirentBlock(block, 11, 0x3040), "RafsV6DirentBlock", "e_nameoff", 0x3040);
  throwsFormat(() => decodeDirentBlock(block.subarray(0, 50), 67, 0x3040), "RafsV6DirentBlock", "(size)", 0x3040);
  const mutated = (f: (dv: DataView) => void) => {
    const b = new Uint8Array(block);
    f(new DataView(b.buffer));
    return b;
  };
  // First nameoff not a multiple of 12 / beyond the data.
  throwsFormat(() => decodeDirentBlock(mutated((dv) => dv.setUint16(8, 47, true)), 67, 0x3040), "RafsV6DirentBlock", "e_nameoff", 0x3048);
  throwsFormat(() => decodeDirentBlock(mutated((dv) => dv.setUint16(8, 72, true)), 67, 0x3040), "RafsV6DirentBlock", "e_nameoff", 0x3048);
  // Names going backwards.
  throwsFormat(() => decodeDirentBlock(mutated((dv) => dv.setUint16(32, 60, true)), 67, 0x3040), "RafsV6DirentBlock", "e_nameoff", 0x3040 + 32);
  // Last name running past validLen.
  throwsFormat(() => decodeDirentBlock(mutated((dv) => dv.setUint16(44, 67, true)), 67, 0x3040), "RafsV6DirentBlock", "e_nameoff", 0x3040 + 44);
  // A 256-byte name.
  const long = encodeDirentBlock([{ name: new Uint8Array(256).fill(0x61), nid: 1, fileType: 1 }]);
  throwsFormat(() => decodeDirentBlock(long, long.length, 0), "RafsV6DirentBlock", "e_nameoff", 8);
  // u64 nid above 2^53.
  throwsFormat(() => decodeDirent(mutated((dv) => dv.setBigUint64(0, 2n ** 60n, true)), 0x3040), "RafsV6Dirent", "e_nid", 0x3040);
});

test("xattrs: encode/decode, icount, prefixes, ACL names, order (spec §3.8)", () => {
  const x = new Map<string, Uint8Array>([
    ["user.mime", enc.encode("text/plain")],
    ["security.capability", new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0])],
    ["trusted.overlay.opaque", enc.encode("y")],
    ["system.posix_acl_access", new Uint8Array([2, 0, 0, 0])],
    ["system.posix_acl_default", new Uint8Array(0)],
  ]);
  const area = encodeXattrArea(x);
  assert.equal(area.length, xattrAreaSize(x));
  assert.equal(area.length % 4, 0);
  // 12 header + security.capability 24 + posix_acl_access 8 + posix_acl_default 4 + trusted.overlay.opaque 20 + user.mime 20
  assert.equal(area.length, 88);
  const icount = xattrIcount(area.length);
  assert.equal(icount, (area.length - 12) / 4 + 1);
  const back = decodeXattrArea(area, icount, 0);
  assert.deepEqual(new Map([...back].map(([k, v]) => [k, hexOf(v)])), new Map([...x].map(([k, v]) => [k, hexOf(v)])));
  // Entries are sorted by full name: security. < system. < trusted. < user.
  assert.deepEqual([...back.keys()], ["security.capability", "system.posix_acl_access", "system.posix_acl_default", "trusted.overlay.opaque", "user.mime"]);
  assert.deepEqual([area[12], area[13]], [10, 6], "first entry: name_len 10 ('capability'), index 6 (security.)");
  assert.deepEqual(splitXattrName("system.posix_acl_access"), { index: 2, suffix: new Uint8Array(0) });
  assert.equal(encodeXattrArea(new Map()).length, 0);
  assert.equal(xattrIcount(0), 0);
  assert.equal(decodeXattrArea(new Uint8Array(0), 0, 5).size, 0);
  assert.equal(decodeXattrArea(new Uint8Array(12), 1, 5).size, 0, "icount 1 = header only");
  assert.throws(() => splitXattrName("os2.foo"), RangeError);
  assert.throws(() => splitXattrName("user." + "a".repeat(256)), RangeError);
  assert.throws(() => encodeXattrArea(new Map([["user.big", new Uint8Array(65536)]])), RangeError);
  const maxValue = encodeXattrArea(new Map([["user.big", new Uint8Array(65535).fill(9)]]));
  assert.equal(decodeXattrArea(maxValue, xattrIcount(maxValue.length), 0).get("user.big")!.length, 65535);
});

test("xattrs: malformed areas throw FormatError", () => {
  const area = encodeXattrArea(new Map([["user.a", enc.encode("bcd")]]));
  const icount = xattrIcount(area.length);
  throwsFormat(() => decodeXattrArea(area.subarray(0, area.length - 1), icount, 100), "ErofsXattrIbody", "(size)", 100);
  const shared = new Uint8Array(area);
  shared[4] = 1;
  throwsFormat(() => decodeXattrArea(shared, icount, 100), "ErofsXattrIbody", "h_shared_count", 104);
  const idx = new Uint8Array(area);
  idx[13] = 5;
  throwsFormat(() => decodeXattrArea(idx, icount, 100), "ErofsXattrEntry", "e_name_index", 113);
  const val = new Uint8Array(area);
  val[14] = 200;
  throwsFormat(() => decodeXattrArea(val, icount, 100), "ErofsXattrIbody", "e_value_size", 114);
  // An icount larger than the bytes available.
  throwsFormat(() => decodeXattrArea(area, 65535, 100), "ErofsXattrIbody", "(size)", 100);
});

test("fuzz: every erofs/format.ts decoder on random bytes throws only FormatError", () => {
  const rng = mulberry32(0x0e80f5);
  const rnd = () => rng.float();
  const decoders: [string, (b: Uint8Array) => unknown][] = [
    ["decodeSuperBlock", (b) => validateRafsSuperBlock(decodeSuperBlock(b), Math.floor(rnd() * 2 ** 20))],
    ["decodeDeviceSlot", (b) => decodeDeviceSlot(b, 1408)],
    ["decodeInode", (b) => decodeInode(b, 4096)],
    ["decodeChunkAddr", (b) => decodeChunkAddr(b, 0)],
    ["decodeDirent", (b) => decodeDirent(b, 0)],
    ["decodeDirentBlock", (b) => decodeDirentBlock(b, Math.floor(rnd() * (b.length + 20)), 0)],
    ["decodeXattrArea", (b) => decodeXattrArea(b, Math.floor(rnd() * (rnd() < 0.5 ? 8 : 70000)), 0)],
  ];
  let rejected = 0;
  let accepted = 0;
  for (const [name, decode] of decoders) {
    for (let i = 0; i < 1500; i++) {
      const len = Math.floor(rnd() * (rnd() < 0.8 ? 160 : 4200));
      const b = new Uint8Array(len);
      const density = rnd();
      for (let j = 0; j < len; j++) b[j] = rnd() < density ? Math.floor(rnd() * 256) : 0;
      try {
        decode(b);
        accepted++;
      } catch (e) {
        if (!(e instanceof FormatError)) assert.fail(`${name} iteration ${i} (len ${len}): ${e instanceof Error ? e.stack : String(e)}`);
        rejected++;
      }
    }
  }
  assert.ok(rejected > 1000 && accepted > 1000, `rejected ${rejected}, accepted ${accepted}`);
});
