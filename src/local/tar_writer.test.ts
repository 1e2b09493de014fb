import assert from "node:assert/strict";
import { test } from "node:test";
import { readTar } from "../tar/reader.ts";
import { paxRecord, tarHeader, tarPadding, tarTrailer, type TarMember } from "./tar_writer.ts";

const dec = new TextDecoder();

test("paxRecord lengths count themselves across digit boundaries", () => {
  for (let n = 0; n < 300; n++) {
    const r = paxRecord("k", "v".repeat(n));
    const len = Number(dec.decode(r).split(" ")[0]);
    assert.equal(len, r.length, `value length ${n}`);
    assert.equal(r[r.length - 1], 0x0a);
  }
});

test("headers round-trip through our tar reader: long and non-UTF-8 names, big ids, ns mtime, binary xattrs, devices", async () => {
  const longName = new TextEncoder().encode("d/" + "n".repeat(250));
  const latin = new Uint8Array([0x61, 0xff, 0xfe, 0x62]);
  const members: { m: TarMember; data?: Uint8Array }[] = [
    { m: { name: longName, type: "0", mode: 0o4755, uid: 3_000_000, gid: 4_000_000, size: 3, mtime: 1_650_000_058, mtimeNsec: 123456789, xattrs: new Map([["user.bin", new Uint8Array([0, 1, 0xff, 0x0a, 0])], ["user.empty", new Uint8Array(0)]]) }, data: new Uint8Array([1, 2, 3]) },
    { m: { name: latin, type: "2", mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 5, mtimeNsec: 0, linkname: new TextEncoder().encode("t/".repeat(100)) } },
    { m: { name: new TextEncoder().encode("c"), type: "3", mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 5, mtimeNsec: 0, devMajor: 511, devMinor: 70000 } },
    { m: { name: new TextEncoder().encode("h"), type: "1", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 5, mtimeNsec: 0, linkname: longName } },
  ];
  const parts: Uint8Array[] = [];
  for (const { m, data } of members) {
    parts.push(tarHeader(m));
    if (data) parts.push(data, new Uint8Array(tarPadding(data.length)));
  }
  parts.push(tarTrailer());
  const got = [];
  for await (const e of readTar((async function* () { yield* parts; })())) {
    let body = Buffer.alloc(0);
    if (e.body) for await (const c of e.body as AsyncIterable<Uint8Array>) body = Buffer.concat([body, c]);
    got.push({ e, body });
  }
  assert.equal(got.length, 4);
  const [f, s, c, h] = got;
  assert.deepEqual(f.e.pathBytes, longName);
  assert.equal(f.e.mode, 0o4755);
  assert.equal(f.e.uid, 3_000_000);
  assert.equal(f.e.gid, 4_000_000);
  assert.equal(f.e.mtime, 1_650_000_058);
  assert.equal(f.e.mtimeNsec, 123456789);
  assert.deepEqual([...f.body], [1, 2, 3]);
  assert.deepEqual(f.e.xattrs.get("user.bin"), new Uint8Array([0, 1, 0xff, 0x0a, 0]));
  assert.deepEqual(s.e.pathBytes, latin);
  assert.equal(s.e.kind, "symlink");
  assert.equal(s.e.linkname, "t/".repeat(100));
  assert.equal(c.e.kind, "chr");
  assert.deepEqual([c.e.devmajor, c.e.devminor], [511, 70000]);
  assert.equal(h.e.kind, "hardlink");
  assert.deepEqual(h.e.linknameBytes, longName);
});
