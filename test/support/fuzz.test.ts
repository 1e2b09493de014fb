import assert from "node:assert/strict";
import { test } from "node:test";
import { FormatError } from "../../src/internal/errors.ts";
import { StructReader } from "../../src/internal/bytes.ts";
import { Prng, flipBits, fuzzDecoder, overwriteU32, overwriteU64, truncate } from "./fuzz.ts";

test("Prng is deterministic, seed-dependent and spreads values", () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const xs = Array.from({ length: 1000 }, () => a.u32());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.u32()));
  assert.notEqual(new Prng(43).u32(), xs[0]);
  assert.equal(new Set(xs).size, 1000);
  const r = new Prng(1);
  for (let i = 0; i < 1000; i++) {
    const v = r.range(3, 5);
    assert.ok(v >= 3 && v <= 5);
  }
  // fill() in one go equals fill() in 4-byte-multiple pieces (content streaming relies on it)
  const whole = new Prng(9).bytes(1000);
  const p = new Prng(9);
  assert.deepEqual(new Uint8Array([...p.bytes(400), ...p.bytes(600)]), whole);
});

test("mutators change what they say and leave the input alone", () => {
  const input = new Uint8Array(64).fill(0x11);
  const rng = new Prng(7);
  const t = truncate(input, rng);
  assert.ok(t.bytes.length <= 64);
  const f = flipBits(input, rng);
  assert.notDeepEqual(f.bytes, input);
  assert.equal(f.bytes.length, 64);
  const u = overwriteU32(input, rng, { start: 8, end: 16 });
  const off = Number(/u32@(\d+)/.exec(u.describe)![1]);
  assert.ok(off >= 8 && off + 4 <= 16, u.describe);
  const w = overwriteU64(input, rng);
  assert.match(w.describe, /^u64@\d+=0x/);
  assert.deepEqual(input, new Uint8Array(64).fill(0x11));
});

test("fuzzDecoder passes a decoder that only throws allowed errors", async () => {
  const decode = (b: Uint8Array) => {
    const r = new StructReader("Demo", b, 0, 16);
    return r.u64("big", 8) + r.u32("x", 0);
  };
  const stats = await fuzzDecoder(new Uint8Array(16), decode, { iterations: 500, allowed: [FormatError], seed: 3 });
  assert.equal(stats.iterations, 500);
  assert.ok((stats.rejected.FormatError ?? 0) > 0, "some mutations must be rejected");
  assert.ok(stats.accepted > 0);
});

test("fuzzDecoder fails on a disallowed error and names seed and mutation", async () => {
  const decode = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(12, true); // RangeError when short
  await assert.rejects(
    fuzzDecoder(new Uint8Array(16), decode, { iterations: 300, allowed: [FormatError], seed: 11 }),
    (err: Error) => /disallowed RangeError at seed=11 iteration=\d+ \(.*truncate/.test(err.message),
  );
});
