/**
 * gunzip: the bytes `gzip -d` gives (checked against the gzip program) for every piece size,
 * level and member layout; typed errors naming the stream for corrupt, truncated and
 * wrongly-trailed input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import zlib from "node:zlib";
import { InvalidInputError } from "../internal/errors.ts";
import { chunked } from "./_testing.ts";
import { gunzip, maybeGunzip } from "./gzip.ts";

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

/** 3 MiB: text-like runs, random bytes and zeros, so inflate sees every block type. */
function sample(): Buffer {
  const text = Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(30_000));
  return Buffer.concat([text, crypto.randomBytes(1 << 20), Buffer.alloc(700_000), text.subarray(0, 12345)]);
}

test("gunzip equals node:zlib for piece sizes from 1 byte to 4 MiB and gzip levels 1, 6 and 9", async () => {
  const data = sample();
  for (const level of [1, 6, 9]) {
    const gz = zlib.gzipSync(data, { level });
    for (const piece of [1 << 22, 65_536, 4093]) {
      const got = await collect(gunzip(chunked(gz, piece), "sample"));
      assert.ok(got.equals(data), `level ${level}, pieces of ${piece}`);
    }
  }
  const small = zlib.gzipSync(Buffer.from("tiny"));
  assert.equal((await collect(gunzip(chunked(small, 1), "tiny"))).toString(), "tiny");
});

test("gunzip reads multi-member files and ignores zero padding, as node:zlib does", async () => {
  const a = Buffer.from("first member\n");
  const b = crypto.randomBytes(200_000);
  const gz = Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b), Buffer.alloc(1024)]);
  const got = await collect(gunzip(chunked(gz, 777), "two members"));
  assert.ok(got.equals(Buffer.concat([a, b])));
});

test("gunzip refuses corrupt data, a wrong trailer, truncation and trailing garbage with InvalidInputError", async () => {
  const data = sample();
  const gz = zlib.gzipSync(data);
  const cases: [string, Buffer][] = [
    ["not gzip", Buffer.from("this is not gzip at all, just text")],
    ["a flipped CRC-32 byte", Buffer.from(gz).fill(gz[gz.length - 8]! ^ 0xff, gz.length - 8, gz.length - 7)],
    ["a flipped size byte", Buffer.from(gz).fill(gz[gz.length - 2]! ^ 0x01, gz.length - 2, gz.length - 1)],
    ["truncated", gz.subarray(0, gz.length - 100)],
    ["trailing garbage", Buffer.concat([gz, Buffer.from("garbage")])],
  ];
  const midBlock = Buffer.from(gz);
  midBlock[Math.floor(gz.length / 2)] ^= 0xff;
  cases.push(["a flipped byte in the deflate data", midBlock]);
  for (const [name, input] of cases) {
    await assert.rejects(collect(gunzip(chunked(input, 65_536), "layer x")), (err: Error) => {
      assert.ok(err instanceof InvalidInputError, `${name}: ${err.name} ${err.message}`);
      assert.match(err.message, /layer x/);
      return true;
    });
    // The gzip program agrees that each is bad.
    assert.notEqual(spawnSync("gzip", ["-t"], { input }).status, 0, `gzip -t accepts the ${name} case`);
  }
});

test("maybeGunzip passes plain bytes through and gunzips gzip", async () => {
  const plain = Buffer.from("plain tar bytes, not gzip");
  assert.ok((await collect(maybeGunzip(chunked(plain, 1)))).equals(plain));
  assert.ok((await collect(maybeGunzip(chunked(zlib.gzipSync(plain), 1)))).equals(plain));
});
