import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { tarHeader } from "./_testing.ts";
import { headerChecksum, headerLinkname, headerName, parseNumeric } from "./header.ts";

function field(bytes: number[] | string, len: number): Uint8Array {
  const b = new Uint8Array(len);
  b.set(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes);
  return b;
}

test("parseNumeric: octal with leading spaces/NULs and space or NUL terminators", () => {
  assert.equal(parseNumeric(field("0000644\0", 8), 0, 8), 0o644);
  assert.equal(parseNumeric(field("   644 \0", 8), 0, 8), 0o644);
  assert.equal(parseNumeric(field("\0\0\0\0\0\0\0\0", 8), 0, 8), 0);
  assert.equal(parseNumeric(field("        ", 8), 0, 8), 0);
  assert.equal(parseNumeric(field("77777777777\0", 12), 0, 12), 0o77777777777);
  assert.equal(parseNumeric(field("12345678", 8), 0, 8), Number.NaN); // 8 is not octal
  assert.equal(parseNumeric(field("12x\0", 4), 0, 4), Number.NaN);
});

test("parseNumeric: GNU base-256, positive and negative", () => {
  const big = 100 * 1024 ** 3; // 100 GiB does not fit 11 octal digits
  const pos = new Uint8Array(12);
  pos[0] = 0x80;
  let v = big;
  for (let i = 11; i > 0; i--) {
    pos[i] = v % 256;
    v = Math.floor(v / 256);
  }
  assert.equal(parseNumeric(pos, 0, 12), big);
  assert.equal(parseNumeric(field([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 12), 0, 12), -1);
  assert.equal(parseNumeric(field([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], 12), 0, 12), -256);
  assert.equal(parseNumeric(field([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 12), 0, 12), Number.NaN);
  assert.equal(parseNumeric(field([0x81, 0, 0, 1], 4), 0, 4), Number.NaN); // only 0x80 / 0xff lead bytes
});

test("headerChecksum: unsigned and signed sums, aligned or not", () => {
  const h = tarHeader({ name: Uint8Array.of(0xc3, 0xa9, 0xff) }, 3);
  let unsigned = 256;
  let signed = 256;
  for (let i = 0; i < 512; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += h[i];
    signed += (h[i] << 24) >> 24;
  }
  const aligned = new Uint8Array(h);
  const c = headerChecksum(aligned);
  assert.deepEqual([c.stored, c.unsigned, c.signed], [unsigned, unsigned, signed]);
  assert.equal(signed, unsigned - 3 * 256);
  const odd = new Uint8Array(513);
  odd.set(h, 1);
  const u = headerChecksum(odd.subarray(1));
  assert.deepEqual([u.stored, u.unsigned, u.signed], [unsigned, unsigned, signed]);
  assert.equal(headerChecksum(new Uint8Array(512)).unsigned, 256);
});

test("headerName joins a ustar prefix; GNU headers have none; headerLinkname", () => {
  const h = tarHeader({ name: "file", linkname: "tgt" }, 0);
  assert.equal(Buffer.from(headerName(h)).toString(), "file");
  Buffer.from("some/dir").copy(h, 345);
  assert.equal(Buffer.from(headerName(h)).toString(), "some/dir/file");
  Buffer.from("ustar  \0").copy(h, 257); // GNU magic: bytes 345.. are not a prefix
  assert.equal(Buffer.from(headerName(h)).toString(), "file");
  assert.equal(Buffer.from(headerLinkname(h)!).toString(), "tgt");
  assert.equal(headerLinkname(tarHeader({ name: "x" }, 0)), null);
  // The name is a copy, not a view into the block.
  const name = headerName(h);
  h[0] = 0x41;
  assert.equal(Buffer.from(name).toString(), "file");
});
