import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { codecByName, compressChunk } from "./codec.ts";
import { fixture } from "../../test/support/paths.ts";

const V6_BLOB = fixture("blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef");

test("zstd output equals upstream's chunk bytes (spec §10.8)", () => {
  const blob = fs.readFileSync(V6_BLOB);
  const zstd = codecByName("zstd");
  for (const [off, len, size] of [[0, 4828, 16931], [4828, 2974, 13400]]) {
    const stored = blob.subarray(off, off + len);
    const plain = zstd.decompress(stored, size);
    assert.equal(plain.length, size);
    assert.deepEqual(Buffer.from(zstd.compress(plain)), stored);
  }
});

test("lz4_block decodes upstream's raw block vector", () => {
  const lz4Blob = fs.readFileSync(fixture("blobs/d7b86b1e74e316fe945741d1a9fa1b271459fe41481e304977659e0c6ecf56ac"));
  const raw = fs.readFileSync(fixture("blobs/7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00"));
  const plain = codecByName("lz4_block").decompress(lz4Blob.subarray(0, 778), 944);
  assert.deepEqual(Buffer.from(plain), raw.subarray(0, 944));
});

test("every codec round-trips and keep-or-discard keeps incompressible data plain", () => {
  const text = new TextEncoder().encode("nydus ".repeat(5000));
  for (const name of ["none", "lz4_block", "zstd", "gzip"]) {
    const c = codecByName(name);
    assert.deepEqual(Buffer.from(c.decompress(c.compress(text), text.length)), Buffer.from(text), name);
  }
  assert.equal(compressChunk(codecByName("zstd"), text).compressed, true);
  const r = compressChunk(codecByName("zstd"), crypto.getRandomValues(new Uint8Array(4096)));
  assert.equal(r.compressed, false);
  assert.equal(r.stored.length, 4096);
});

test("corrupt compressed input throws instead of returning wrong bytes", () => {
  const zstd = codecByName("zstd");
  const good = zstd.compress(new TextEncoder().encode("hello ".repeat(100)));
  const bad = new Uint8Array(good);
  bad[bad.length - 3] ^= 0xff;
  assert.throws(() => zstd.decompress(bad, 600));
  assert.throws(() => codecByName("lz4_block").decompress(new Uint8Array([0xff, 0xff, 0xff]), 100));
  assert.throws(() => codecByName("brotli"), TypeError);
});
