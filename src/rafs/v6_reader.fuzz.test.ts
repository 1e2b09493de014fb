/**
 * Seeded mutation fuzzing of the RAFS v6 reader: truncations, bit flips and huge u16/u32/u64
 * overwrites of real and synthetic bootstraps. Opening the image and walking the whole tree
 * (readdir, chunks, readlink, xattrs, lookup, prefetch nids) may only throw FormatError, must
 * finish quickly and must return results bounded by the file size.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { openRafsV6 } from "./v6_reader.ts";
import { walkRafs } from "./open.ts";
import { codecByName } from "../compression/codec.ts";
import { FormatError } from "../internal/errors.ts";
import { fixture } from "../../test/support/paths.ts";
import { mulberry32 } from "../../test/support/fuzz.ts";
import { buildSyntheticV6, type SynNode } from "../../test/support/v6_synthetic.ts";

const HUGE_U32 = [0xffffffff, 0x80000000, 0x7fffffff, 0x10000, 0x1000, 0xfff, 1, 0];
const HUGE_U64 = [2n ** 64n - 1n, 2n ** 63n, 2n ** 53n, 2n ** 53n - 1n, 2n ** 32n, 0x1_0000_0000_0000n, 1n, 0n];

function tocBoot(): Uint8Array {
  const blob = codecByName("zstd").decompress(fs.readFileSync(fixture("2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca.zst")), 10034);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const toc = blob.length - 512 - 512;
  for (let o = toc; o < blob.length - 512; o += 128) {
    if (Buffer.from(blob.subarray(o + 8, o + 18)).toString() === "image.boot") {
      const off = Number(dv.getBigUint64(o + 56, true));
      const csize = Number(dv.getBigUint64(o + 64, true));
      return codecByName("zstd").decompress(blob.subarray(off, off + csize), Number(dv.getBigUint64(o + 72, true)));
    }
  }
  throw new Error("image.boot not found");
}

function synthetic(): Uint8Array {
  const enc = new TextEncoder();
  const leaf: SynNode = { kind: "reg", data: enc.encode("x".repeat(9000)) };
  const many = new Map<string, SynNode>();
  for (let i = 0; i < 40; i++) many.set(`entry-with-a-long-name-${i}`, leaf);
  return buildSyntheticV6({
    kind: "dir",
    children: new Map<string, SynNode>([
      ["a", { kind: "dir", children: new Map([["b", { kind: "dir", children: many }], ["l", { kind: "symlink", target: enc.encode("../" .repeat(30)) }]]) }],
      ["c", { kind: "chr", rdev: { major: 5, minor: 1 } }],
      ["f", { kind: "reg", compact: true, data: enc.encode("compact") }],
      ["p", { kind: "dir", layout: "plain", children: new Map([["q", { kind: "symlink", layout: "plain", target: enc.encode("q".repeat(200)) }]]) }],
      ["x", { kind: "reg", data: enc.encode("xattrs"), xattrs: new Map([["user.a", enc.encode("1")], ["security.selinux", enc.encode("ctx")]]) }],
    ]),
  }).bootstrap;
}

/** Opens and exercises everything; returns how many tree entries were visited. */
function exercise(bytes: Uint8Array): number {
  const img = openRafsV6(bytes);
  for (const nid of img.prefetch) img.inode(nid);
  let n = 0;
  for (const { inode } of walkRafs(img)) {
    n++;
    assert.ok(n <= bytes.length / 12 + 1, "walk longer than the dirents the file can hold");
    assert.ok(inode.xattrs.size <= bytes.length / 4);
    if (inode.kind === "reg") {
      const chunks = img.chunks(inode);
      assert.ok(chunks.length <= bytes.length / 8);
      for (const c of chunks) assert.ok(c.chunk.uncompressedSize <= img.superBlock.chunkSize);
    } else if (inode.kind === "symlink") {
      assert.ok(img.readlink(inode).length <= Math.min(0xffff, bytes.length));
    } else if (inode.kind === "dir") {
      assert.ok(img.dirents(inode).length <= bytes.length / 12);
    }
  }
  img.lookup("/a/b/entry-with-a-long-name-7");
  img.lookup("/lib.rs");
  return n;
}

function mutate(clean: Uint8Array, rnd: () => number, hot: number[]): { bytes: Uint8Array; what: string[] } {
  let bytes = new Uint8Array(clean);
  const what: string[] = [];
  const pick = () => {
    // Mostly near meaningful (non-zero) bytes; sometimes anywhere.
    const base = rnd() < 0.8 ? hot[Math.floor(rnd() * hot.length)] : Math.floor(rnd() * bytes.length);
    return Math.max(0, Math.min(bytes.length - 1, base + Math.floor(rnd() * 16) - 8));
  };
  const count = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < count; i++) {
    const dv = new DataView(bytes.buffer);
    const r = rnd();
    if (r < 0.1) {
      const len = rnd() < 0.5 ? Math.floor(rnd() * bytes.length) : Math.floor((rnd() * bytes.length) / 4096) * 4096;
      bytes = bytes.slice(0, len);
      what.push(`truncate ${len}`);
    } else if (r < 0.45) {
      const off = pick();
      const bit = Math.floor(rnd() * 8);
      bytes[off] ^= 1 << bit;
      what.push(`flip ${off}:${bit}`);
    } else if (r < 0.65) {
      const off = Math.min(pick(), bytes.length - 2);
      if (off < 0) continue;
      const v = HUGE_U32[Math.floor(rnd() * HUGE_U32.length)] & 0xffff;
      dv.setUint16(off, v, true);
      what.push(`u16 ${off}=${v}`);
    } else if (r < 0.85) {
      const off = Math.min(pick(), bytes.length - 4);
      if (off < 0) continue;
      const v = rnd() < 0.7 ? HUGE_U32[Math.floor(rnd() * HUGE_U32.length)] : Math.floor(rnd() * 2 ** 32);
      dv.setUint32(off, v, true);
      what.push(`u32 ${off}=${v}`);
    } else {
      const off = Math.min(pick(), bytes.length - 8);
      if (off < 0) continue;
      const v = HUGE_U64[Math.floor(rnd() * HUGE_U64.length)];
      dv.setBigUint64(off, v, true);
      what.push(`u64 ${off}=${v}`);
    }
  }
  return { bytes, what };
}

function fuzz(name: string, clean: Uint8Array, seed: number, iterations: number): void {
  assert.ok(exercise(clean) > 1, `${name} must be valid before mutation`);
  const hot: number[] = [];
  clean.forEach((b, i) => {
    if (b !== 0) hot.push(i);
  });
  const rng = mulberry32(seed);
  const rnd = () => rng.float();
  let rejected = 0;
  let slowest = 0;
  for (let i = 0; i < iterations; i++) {
    const { bytes, what } = mutate(clean, rnd, hot);
    const t0 = performance.now();
    try {
      exercise(bytes);
    } catch (e) {
      if (!(e instanceof FormatError)) {
        assert.fail(`${name} seed ${seed} iteration ${i} [${what.join(", ")}]: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
      }
      rejected++;
    }
    slowest = Math.max(slowest, performance.now() - t0);
  }
  assert.ok(slowest < 500, `${name}: slowest iteration took ${slowest.toFixed(1)} ms`);
  // The mutations must actually reach the validators (not a vacuous pass) …
  assert.ok(rejected > iterations / 10, `${name}: only ${rejected} of ${iterations} mutants rejected`);
  // … and not everything may be rejected at the superblock either.
  assert.ok(rejected < iterations, `${name}: every mutant rejected`);
}

test("fuzz: mutated rafs-v6-2.2.boot only ever throws FormatError", () => {
  fuzz("rafs-v6-2.2.boot", new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot"))), 0x5eed_0001, 3000);
});

test("fuzz: mutated ToC-embedded bootstrap only ever throws FormatError", () => {
  fuzz("toc image.boot", tocBoot(), 0x5eed_0002, 2000);
});

test("fuzz: mutated synthetic bootstrap (dirs, symlinks, xattrs, devices) only ever throws FormatError", () => {
  fuzz("synthetic", synthetic(), 0x5eed_0003, 2000);
});

test("fuzz: random bytes and zero-filled files of many sizes only ever throw FormatError", () => {
  const rng = mulberry32(0x5eed_0004);
  const rnd = () => rng.float();
  for (let i = 0; i < 500; i++) {
    const size = [0, 1, 1024, 1100, 1152, 1408, 4096, 8192, 20480][i % 9];
    const bytes = new Uint8Array(size);
    if (i % 2) for (let j = 0; j < size; j++) bytes[j] = Math.floor(rnd() * 256);
    assert.throws(() => exercise(bytes), FormatError);
  }
});
