import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32c, createOneShotDigester, hash, sha256Hex } from "./hasher.ts";
import { toHex } from "../internal/bytes.ts";
import { native } from "../internal/native.ts";

test("blake3 and sha256 known answers", () => {
  assert.equal(toHex(hash("blake3", new TextEncoder().encode("abc"))), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  assert.equal(toHex(hash("sha256", new TextEncoder().encode("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(sha256Hex(new Uint8Array()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
});

test("crc32c check value and running continuation", () => {
  const data = new TextEncoder().encode("123456789");
  assert.equal(crc32c(data), 0xe3069283);
  assert.equal(crc32c(data.subarray(4), crc32c(data.subarray(0, 4))), 0xe3069283);
});

test("crc32c: the SSE4.2 instruction path agrees with the portable tables at every alignment and length", () => {
  const big = new Uint8Array(70_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  for (const [start, end] of [[0, 0], [1, 2], [3, 11], [7, 64], [5, 4101], [0, 70_000], [13, 69_997]] as const) {
    const piece = big.subarray(start, end);
    assert.equal(native.crc32c(piece, 0), native.crc32c(piece, 0, true), `bytes ${start}..${end}`);
    assert.equal(native.crc32c(piece, 0x1234_5678), native.crc32c(piece, 0x1234_5678, true), `bytes ${start}..${end}, continued`);
  }
  assert.equal(native.crc32c(new TextEncoder().encode("123456789"), 0, true), 0xe3069283);
});

test("one-shot digesters reuse their state without carrying input over", () => {
  for (const algo of ["blake3", "sha256"] as const) {
    const d = createOneShotDigester(algo);
    const inputs = ["abc", "", "abc", "x".repeat(5000)].map((s) => new TextEncoder().encode(s));
    const got = inputs.map((i) => toHex(d.digest(i)));
    assert.deepEqual(got, inputs.map((i) => toHex(hash(algo, i))), algo);
    assert.equal(got[0], got[2]);
  }
});
