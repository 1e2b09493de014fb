import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Buffer } from "node:buffer";
import { InvalidInputError } from "../internal/errors.ts";
import { native } from "../internal/native.ts";
import { fixture } from "../../test/support/paths.ts";
import { buildTar, chunked, paxRecord, tarHeader } from "./_testing.ts";
import { parsePaxRecords, readTar, type TarEntry } from "./reader.ts";

const isRoot = process.getuid?.() === 0;
const CAP = Uint8Array.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, ...new Array(12).fill(0)]); // v2, CAP_NET_RAW

interface Collected extends Omit<TarEntry, "body"> {
  data: Buffer;
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Collected[]> {
  const out: Collected[] = [];
  for await (const e of readTar(source)) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(Buffer.from(c));
    const { body: _body, ...rest } = e;
    out.push({ ...rest, data: Buffer.concat(parts) });
  }
  return out;
}

function byPath(list: Collected[], p: string): Collected {
  const e = list.find((x) => x.path === p);
  assert.ok(e, `entry ${p} missing; have ${list.map((x) => x.path).join(", ")}`);
  return e;
}

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-tar-reader-"));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const LONG_DIR = "d".repeat(120);
const SEG255 = "é".repeat(127) + "x"; // 255 bytes, non-ASCII
const LONG_TARGET = "t/".repeat(80) + "end";

function makeSourceTree(root: string): void {
  fs.mkdirSync(path.join(root, "src", LONG_DIR), { recursive: true });
  const src = path.join(root, "src");
  fs.writeFileSync(path.join(src, "file.txt"), "hello tar\n");
  fs.chmodSync(path.join(src, "file.txt"), 0o4755);
  fs.mkdirSync(path.join(src, "sticky"));
  fs.chmodSync(path.join(src, "sticky"), 0o1777);
  fs.linkSync(path.join(src, "file.txt"), path.join(src, "hard.txt"));
  fs.symlinkSync("file.txt", path.join(src, "sym"));
  fs.symlinkSync(LONG_TARGET, path.join(src, "longsym"));
  fs.writeFileSync(path.join(src, LONG_DIR, SEG255), "deep");
  execFileSync("mkfifo", [path.join(src, "fifo")]);
  fs.utimesSync(path.join(src, "file.txt"), 1_600_000_000.25, 1_600_000_000.25);
  native.setXattr(path.join(src, "file.txt"), "user.greeting", Buffer.from("hi"));
  if (isRoot) {
    execFileSync("mknod", [path.join(src, "chr"), "c", "1", "3"]);
    execFileSync("mknod", [path.join(src, "blk"), "b", "259", "300"]);
    native.setXattr(path.join(src, "file.txt"), "security.capability", CAP);
  }
}

describe("readTar over GNU tar archives", () => {
  for (const format of ["pax", "gnu", "ustar"] as const) {
    test(`--format=${format}`, async (t) => {
      const root = fs.mkdtempSync(path.join(tmp, `${format}-`));
      makeSourceTree(root);
      const tarFile = path.join(root, "out.tar");
      const args = ["-C", root, `--format=${format}`, "-cf", tarFile];
      if (format === "pax") args.push("--xattrs", "--xattrs-include=*");
      if (format === "ustar") {
        // ustar cannot store the 255-byte segment path or the long link target.
        fs.rmSync(path.join(root, "src", LONG_DIR), { recursive: true });
        fs.rmSync(path.join(root, "src", "longsym"));
      }
      execFileSync("tar", [...args, "src"]);
      const list = await collect(fs.createReadStream(tarFile, { highWaterMark: 1000 }));

      const file = byPath(list, "src/file.txt");
      assert.equal(file.kind, "reg");
      assert.equal(file.mode, 0o4755);
      assert.equal(file.size, 10);
      assert.equal(file.data.toString(), "hello tar\n");
      assert.equal(file.mtime, 1_600_000_000);
      assert.equal(file.mtimeNsec, format === "pax" ? 250_000_000 : 0);
      const hard = byPath(list, "src/hard.txt");
      assert.equal(hard.kind, "hardlink");
      assert.equal(hard.linkname, "src/file.txt");
      assert.equal(hard.size, 0);
      assert.equal(byPath(list, "src/sticky/").kind, "dir");
      assert.equal(byPath(list, "src/sticky/").mode, 0o1777);
      const sym = byPath(list, "src/sym");
      assert.equal(sym.kind, "symlink");
      assert.deepEqual(Buffer.from(sym.linknameBytes), Buffer.from("file.txt"));
      assert.equal(byPath(list, "src/fifo").kind, "fifo");
      if (format !== "ustar") {
        const deep = byPath(list, `src/${LONG_DIR}/${SEG255}`);
        assert.equal(deep.pathBytes.length, 4 + 121 + 255);
        assert.equal(deep.data.toString(), "deep");
        assert.equal(byPath(list, "src/longsym").linkname, LONG_TARGET);
      }
      if (format === "pax") {
        assert.deepEqual(file.xattrs.get("user.greeting"), new Uint8Array(Buffer.from("hi")));
        if (isRoot) assert.deepEqual(file.xattrs.get("security.capability"), CAP);
      } else {
        assert.equal(file.xattrs.size, 0);
      }
      if (isRoot) {
        const chr = byPath(list, "src/chr");
        assert.deepEqual([chr.kind, chr.devmajor, chr.devminor], ["chr", 1, 3]);
        const blk = byPath(list, "src/blk");
        assert.deepEqual([blk.kind, blk.devmajor, blk.devminor], ["blk", 259, 300]);
      } else {
        t.diagnostic("skipped device nodes and security.capability: not root");
      }
    });
  }

  test("thousands of entries in one archive", async () => {
    const root = fs.mkdtempSync(path.join(tmp, "many-"));
    const src = path.join(root, "m");
    fs.mkdirSync(src);
    for (let d = 0; d < 30; d++) {
      fs.mkdirSync(path.join(src, `d${d}`));
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(src, `d${d}`, `f${f}`), `${d}/${f}`);
    }
    const tarFile = path.join(root, "m.tar");
    execFileSync("tar", ["-C", root, "--format=pax", "-cf", tarFile, "m"]);
    const list = await collect(fs.createReadStream(tarFile));
    assert.equal(list.length, 1 + 30 + 3000);
    assert.equal(byPath(list, "m/d29/f99").data.toString(), "29/99");
  });

  test("GNU sparse files are rejected (gnu 'S' and pax GNU.sparse.*)", async () => {
    const root = fs.mkdtempSync(path.join(tmp, "sparse-"));
    const f = path.join(root, "sparse");
    const fd = fs.openSync(f, "w");
    fs.writeSync(fd, "x", 10 * 1024 * 1024);
    fs.closeSync(fd);
    for (const format of ["gnu", "pax"]) {
      const tarFile = path.join(root, `${format}.tar`);
      execFileSync("tar", ["-C", root, "--sparse", `--format=${format}`, "-cf", tarFile, "sparse"]);
      await assert.rejects(collect(fs.createReadStream(tarFile)), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError, String(err));
        assert.match(err.message, /sparse/);
        return true;
      });
    }
  });
});

describe("readTar over hand-built archives", () => {
  test("binary PAX xattr values survive byte for byte", async () => {
    const value = Uint8Array.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x0a, 0x3d, 0x80, 0x00, 0xc3]);
    const tar = buildTar([
      {
        name: "f",
        data: "x",
        pax: [
          ["SCHILY.xattr.security.capability", CAP],
          ["SCHILY.xattr.user.bin", value],
          ["LIBARCHIVE.xattr.user.b64%3Dname", Buffer.from(value).toString("base64")],
        ],
      },
    ]);
    const [e] = await collect(chunked(tar, 7));
    assert.deepEqual(e.xattrs.get("security.capability"), CAP);
    assert.deepEqual(e.xattrs.get("user.bin"), value);
    assert.deepEqual(e.xattrs.get("user.b64=name"), value);
    assert.equal(e.data.toString(), "x");
  });

  test("non-UTF-8 names keep their bytes (header name and PAX path)", async () => {
    const raw = Uint8Array.from([0x61, 0xff, 0xfe, 0x2f, 0x62, 0x80]);
    const long = Buffer.concat([Buffer.from("p/".repeat(60)), Buffer.from([0xff, 0x00 + 0x41])]);
    const tar = buildTar([
      { name: raw, data: "1" },
      { name: "ignored", pax: [["path", long], ["linkpath", Uint8Array.of(0xfa)]], type: "2" },
    ]);
    const list = await collect(chunked(tar));
    assert.deepEqual(Buffer.from(list[0].pathBytes), Buffer.from(raw));
    assert.equal(list[0].path, "a\uFFFD\uFFFD/b\uFFFD");
    assert.deepEqual(Buffer.from(list[1].pathBytes), long);
    assert.deepEqual(Buffer.from(list[1].linknameBytes), Buffer.from([0xfa]));
  });

  test("PAX uid/gid/mtime override the header; negative fractional mtime floors", async () => {
    const tar = buildTar([
      { name: "a", uid: 5, gid: 6, pax: [["uid", "3000000000"], ["gid", "70000"], ["mtime", "1700000000.123456789123"]] },
      { name: "b", pax: [["mtime", "-1.25"]] },
      { name: "c", mtime: 0o77777777777 },
    ]);
    const [a, b, c] = await collect(chunked(tar));
    assert.deepEqual([a.uid, a.gid, a.mtime, a.mtimeNsec], [3_000_000_000, 70_000, 1_700_000_000, 123_456_789]);
    assert.deepEqual([b.mtime, b.mtimeNsec], [-2, 750_000_000]);
    assert.deepEqual([c.mtime, c.mtimeNsec], [0o77777777777, 0]);
  });

  test("a global PAX header applies to later entries until overridden", async () => {
    const g = Buffer.concat([paxRecord("SCHILY.xattr.user.g", "G"), paxRecord("uid", "42")]);
    const tar = Buffer.concat([
      tarHeader({ name: "global", type: "g" }, g.length),
      Buffer.concat([g, Buffer.alloc(512 - g.length)]),
      Buffer.from(buildTar([{ name: "one" }, { name: "two", pax: [["uid", "7"], ["SCHILY.xattr.user.g", ""]] }])),
    ]);
    const [one, two] = await collect(chunked(tar));
    assert.equal(one.uid, 42);
    assert.deepEqual(one.xattrs.get("user.g"), new Uint8Array(Buffer.from("G")));
    assert.equal(two.uid, 7);
    // For xattr keywords an empty value is the value (GNU tar writes empty xattrs this way), so it
    // overrides the global one instead of deleting it.
    assert.equal(two.xattrs.get("user.g")?.length, 0);
  });

  test("device numbers, hostile names are passed through unnormalised", async () => {
    const tar = buildTar([
      { name: "../x", data: "1" },
      { name: "/abs", type: "3", devmajor: 4095, devminor: 1048575 },
      { name: "l", type: "1", linkname: "a/../../x" },
    ]);
    const list = await collect(chunked(tar));
    assert.deepEqual(
      list.map((e) => [e.path, e.kind]),
      [
        ["../x", "reg"],
        ["/abs", "chr"],
        ["l", "hardlink"],
      ],
    );
    assert.deepEqual([list[1].devmajor, list[1].devminor], [4095, 1048575]);
    assert.equal(list[2].linkname, "a/../../x");
  });

  test("corrupt checksum, truncation, bad PAX records and unknown types are InvalidInputError", async () => {
    const good = buildTar([{ name: "f", data: "x".repeat(2000) }]);
    const cases: [string, Uint8Array, RegExp][] = [
      ["checksum", buildTar([{ name: "f", badChecksum: true }]), /Cannot read tar stream/],
      ["truncated body", good.subarray(0, 1024), /Cannot read tar stream/],
      ["bad pax", buildTar([{ name: "f", pax: [] }]).slice(0), /./], // replaced below
      ["unknown type", buildTar([{ name: "v", type: "V" }]), /unsupported entry type/],
    ];
    const badPaxData = Buffer.from("99 path=x\n");
    cases[2] = [
      "bad pax",
      new Uint8Array(
        Buffer.concat([
          tarHeader({ name: "p", type: "x" }, badPaxData.length),
          Buffer.concat([badPaxData, Buffer.alloc(512 - badPaxData.length)]),
          Buffer.from(buildTar([{ name: "f" }])),
        ]),
      ),
      /PAX header/,
    ];
    for (const [what, bytes, re] of cases) {
      await assert.rejects(collect(chunked(bytes, 333)), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError, `${what}: ${String(err)}`);
        assert.match(err.message, re, what);
        return true;
      });
    }
  });

  test("errors of the source pass through unchanged", async () => {
    const boom = new Error("network down");
    async function* source(): AsyncGenerator<Uint8Array> {
      yield buildTar([{ name: "a", data: "1" }]).subarray(0, 1024);
      throw boom;
    }
    await assert.rejects(collect(source()), (err) => err === boom);
  });

  test("parsePaxRecords", () => {
    const m = parsePaxRecords(Buffer.concat([paxRecord("a", "1"), paxRecord("k", "v=w\nx"), Buffer.alloc(3)]));
    assert.deepEqual([...m.keys()], ["a", "k"]);
    assert.equal(Buffer.from(m.get("k")!).toString(), "v=w\nx");
    assert.throws(() => parsePaxRecords(Buffer.from("5 a=1\n")), InvalidInputError);
    assert.throws(() => parsePaxRecords(Buffer.from("x a=1\n")), InvalidInputError);
  });
});

describe("streaming", () => {
  test("bodies can be skipped; unread data is drained", async () => {
    const tar = buildTar([
      { name: "big", data: Buffer.alloc(300_000, 7) },
      { name: "small", data: "ok" },
    ]);
    const seen: string[] = [];
    for await (const e of readTar(chunked(tar, 5000))) {
      if (e.path === "big") {
        for await (const c of e.body) {
          assert.ok(c.length > 0);
          break; // read one piece only
        }
      } else {
        const parts: Uint8Array[] = [];
        for await (const c of e.body) parts.push(c);
        seen.push(Buffer.concat(parts).toString());
      }
    }
    assert.deepEqual(seen, ["ok"]);
  });

  test("backpressure: the source is pulled only as fast as the body is read", async () => {
    const size = 64 * 1024 * 1024;
    const header = tarHeader({ name: "huge" }, size);
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      pulled += 512;
      yield header;
      const block = new Uint8Array(64 * 1024);
      for (let sent = 0; sent < size; sent += block.length) {
        pulled += block.length;
        yield block;
      }
      pulled += 1024;
      yield new Uint8Array(1024);
    }
    let consumed = 0;
    let maxAhead = 0;
    for await (const e of readTar(source())) {
      for await (const c of e.body) {
        consumed += c.length;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        await new Promise((r) => setImmediate(r));
      }
    }
    assert.equal(consumed, size);
    assert.ok(maxAhead < 1024 * 1024, `source ran ${maxAhead} bytes ahead of the consumer`);
  });

  test("stopping early closes the source", async () => {
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield* chunked(buildTar([{ name: "a", data: "1" }, { name: "b", data: Buffer.alloc(100_000) }]), 512);
      } finally {
        closed = true;
      }
    }
    for await (const e of readTar(source())) {
      assert.equal(e.path, "a");
      break;
    }
    for (let i = 0; i < 20 && !closed; i++) await new Promise((r) => setImmediate(r));
    assert.ok(closed);
  });

  test("abort signal", async () => {
    const ac = new AbortController();
    const tar = buildTar([{ name: "a", data: "1" }, { name: "b", data: "2" }]);
    const it = readTar(chunked(tar), { signal: ac.signal });
    const first = await it.next();
    assert.equal(first.done, false);
    ac.abort(new Error("stop"));
    await assert.rejects(it.next(), /stop/);
  });

  test("upstream fixture all-entry-type.tar", async () => {
    const list = await collect(fs.createReadStream(fixture("all-entry-type.tar")));
    assert.deepEqual(
      list.map((e) => [e.path, e.kind]),
      [
        ["tar/", "dir"],
        ["tar/dir1/", "dir"],
        ["tar/dir1/dir3/", "dir"],
        ["tar/dir1/dir3/hardlink1.txt", "reg"],
        ["tar/dir1/dir3/xfile.txt", "hardlink"],
        ["tar/dir1/hardlink2.txt", "hardlink"],
        ["tar/dir2/", "dir"],
        ["tar/dir2/hardlink3.txt", "hardlink"],
        ["tar/dir2/symlink1.txt", "symlink"],
      ],
    );
    assert.equal(list[3].size, 15);
    assert.equal(list[8].linkname, "../dir1/dir3/file1.txt");
  });
});

test("an xattr with an empty value survives (an empty PAX value only deletes ordinary keywords)", async (t) => {
  const { execFileSync } = await import("node:child_process");
  const fsMod = await import("node:fs");
  const osMod = await import("node:os");
  const pathMod = await import("node:path");
  const dir = fsMod.mkdtempSync(pathMod.join(osMod.tmpdir(), "nydus-tar-emptyx-"));
  try {
    const f = pathMod.join(dir, "src", "f");
    fsMod.mkdirSync(pathMod.dirname(f));
    fsMod.writeFileSync(f, "x");
    try {
      execFileSync("setfattr", ["-n", "user.empty", f]);
      execFileSync("setfattr", ["-n", "user.full", "-v", "v", f]);
    } catch (err) {
      t.skip(`setfattr unavailable or xattrs unsupported here: ${(err as Error).message}`);
      return;
    }
    const tarFile = pathMod.join(dir, "x.tar");
    execFileSync("tar", ["--xattrs", "--xattrs-include=*", "--format=pax", "-C", pathMod.join(dir, "src"), "-cf", tarFile, "f"]);
    const entries = [];
    for await (const e of readTar(fsMod.createReadStream(tarFile))) entries.push(e);
    const x = entries.find((e) => e.path === "f")!.xattrs;
    assert.deepEqual([...x.keys()].sort(), ["user.empty", "user.full"]);
    assert.equal(x.get("user.empty")!.length, 0);
  } finally {
    fsMod.rmSync(dir, { recursive: true, force: true });
  }
});

describe("own parser: formats and edge cases", () => {
  /** Rewrites a header's checksum field with `sum` (6 octal digits, NUL, space). */
  function setChecksum(h: Buffer, sum: number): Buffer {
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
    return h;
  }
  function padTo512(data: Buffer): Buffer {
    return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
  }
  async function rejectsWith(bytes: Uint8Array, re: RegExp, chunk = 100): Promise<void> {
    await assert.rejects(collect(chunked(bytes, chunk)), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError, String(err));
      assert.match(err.message, re);
      return true;
    });
  }

  test("a checksum summed over signed bytes is accepted (as GNU tar does)", async () => {
    const h = tarHeader({ name: Uint8Array.of(0x61, 0xff, 0xe9) }, 2);
    let signed = 256;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) signed += (h[i] << 24) >> 24;
    setChecksum(h, signed);
    const [e] = await collect(chunked(Buffer.concat([h, padTo512(Buffer.from("ok")), Buffer.alloc(1024)])));
    assert.deepEqual(Buffer.from(e.pathBytes), Buffer.from([0x61, 0xff, 0xe9]));
    assert.equal(e.data.toString(), "ok");
    setChecksum(h, signed + 1);
    await rejectsWith(Buffer.concat([h, Buffer.alloc(1536)]), /Cannot read tar stream: invalid header checksum at byte 0/);
  });

  test("GNU base-256 size, uid and negative mtime", async () => {
    const data = Buffer.alloc(1000, 3);
    const h = tarHeader({ name: "b256" }, 0);
    h.fill(0, 124, 136);
    h[124] = 0x80;
    h.writeUInt16BE(1000, 134);
    h.fill(0, 108, 116);
    h[108] = 0x80;
    h.writeUInt32BE(3_000_000_000, 112);
    h.fill(0xff, 136, 148);
    h[147] = 0xf6; // -10
    let sum = 256;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += h[i];
    setChecksum(h, sum);
    const list = await collect(chunked(Buffer.concat([h, padTo512(data), Buffer.from(buildTar([{ name: "next", data: "n" }]))]), 300));
    assert.deepEqual(
      list.map((e) => [e.path, e.size, e.data.length]),
      [
        ["b256", 1000, 1000],
        ["next", 1, 1],
      ],
    );
    assert.equal(list[0].uid, 3_000_000_000);
    assert.equal(list[0].mtime, -10);
    assert.ok(list[0].data.every((b) => b === 3));
  });

  test("end of input: with no end blocks, one end block, or an empty archive", async () => {
    const full = buildTar([{ name: "a", data: "x".repeat(600) }, { name: "b" }]);
    for (const cut of [1024, 512, 0]) {
      const list = await collect(chunked(full.subarray(0, full.length - cut), 256));
      assert.deepEqual(
        list.map((e) => e.path),
        ["a", "b"],
        `cut ${cut}`,
      );
    }
    assert.deepEqual(await collect(chunked(new Uint8Array(0))), []);
    assert.deepEqual(await collect(chunked(new Uint8Array(1024))), []);
  });

  test("a lone zero block is skipped; bytes after the end blocks are read and ignored", async () => {
    const one = buildTar([{ name: "one", data: "1" }]);
    const two = buildTar([{ name: "two", data: "2" }]);
    const withLone = Buffer.concat([one.subarray(0, one.length - 1024), Buffer.alloc(512), two]);
    assert.deepEqual(
      (await collect(chunked(withLone))).map((e) => e.data.toString()),
      ["1", "2"],
    );
    let sourceFinished = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      yield one;
      yield Buffer.from("garbage after the end of the archive");
      sourceFinished = true;
    }
    assert.deepEqual(
      (await collect(source())).map((e) => e.path),
      ["one"],
    );
    assert.ok(sourceFinished, "the source is read to its end");
  });

  test("truncation inside a header, a body, padding or a PAX header names the byte offset", async () => {
    const good = buildTar([{ name: "a", data: "x".repeat(700) }, { name: "b", data: "y" }]);
    await rejectsWith(good.subarray(0, 300), /Cannot read tar stream: unexpected end of archive at byte 300 inside the header at byte 0/);
    await rejectsWith(good.subarray(0, 512 + 600), /Cannot read tar stream: unexpected end of archive at byte 1112 in the body of entry "a" at byte 0/);
    await rejectsWith(good.subarray(0, 512 + 800), /in the body of entry "a" at byte 0/); // inside the padding
    await rejectsWith(good.subarray(0, 1536 + 100), /inside the header at byte 1536/);
    const pax = buildTar([{ name: "p", pax: [["path", "long/".repeat(200)]] }]);
    await rejectsWith(pax.subarray(0, 700), /inside the PAX header at byte 0/);
  });

  test("oversized PAX headers and GNU long names are rejected before being read", async () => {
    for (const type of ["x", "g", "L", "K"]) {
      let pulled = 0;
      const header = tarHeader({ name: "././@LongLink", type }, 2 * 1024 * 1024);
      async function* source(): AsyncGenerator<Uint8Array> {
        pulled++;
        yield header;
        for (;;) {
          pulled++;
          yield new Uint8Array(65536);
        }
      }
      await assert.rejects(collect(source()), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError, String(err));
        assert.match(err.message, /^Cannot read tar entry at byte 0: .* of 2097152 bytes is larger than the 1048576-byte limit/);
        return true;
      });
      assert.equal(pulled, 1, type);
    }
  });

  test("GNU long name and long link (L/K), old v7 trailing-slash directories, NUL typeflag", async () => {
    const longName = Buffer.from("n/".repeat(100) + "file");
    const longLink = Buffer.from("l/".repeat(100) + "target");
    const v7dir = tarHeader({ name: "olddir/", type: "\0" }, 0);
    v7dir.fill(0, 257, 265); // no magic: v7
    v7dir.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of v7dir) sum += b;
    setChecksum(v7dir, sum);
    const tar = Buffer.concat([
      tarHeader({ name: "././@LongLink", type: "L" }, longName.length + 1),
      padTo512(Buffer.concat([longName, Buffer.alloc(1)])),
      tarHeader({ name: "././@LongLink", type: "K" }, longLink.length),
      padTo512(longLink),
      tarHeader({ name: longName.subarray(0, 100), type: "2", linkname: longLink.subarray(0, 100) }, 0),
      v7dir,
      Buffer.from(buildTar([{ name: "plain", type: "\0", data: "p" }])),
    ]);
    const list = await collect(chunked(tar, 512));
    assert.deepEqual(
      list.map((e) => [e.path, e.kind, e.linkname]),
      [
        [longName.toString(), "symlink", longLink.toString()],
        ["olddir/", "dir", ""],
        ["plain", "reg", ""],
      ],
    );
    assert.equal(list[2].data.toString(), "p");
  });

  test("unknown typeflags and invalid numeric fields name the entry and its offset", async () => {
    const tar = buildTar([{ name: "ok", data: "1" }, { name: "vol", type: "M" }]);
    await rejectsWith(tar, /^Cannot read tar entry "vol" at byte 1024: unsupported entry type "M"/);
    const h = tarHeader({ name: "badmode" }, 0);
    h.write("9999999\0", 100, 8, "latin1");
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    setChecksum(h, sum);
    await rejectsWith(Buffer.concat([h, Buffer.alloc(1024)]), /^Cannot read tar entry "badmode" at byte 0: invalid mode field/);
  });

  test("no read-ahead: bodies are views into the input pieces, pulled only on demand", async () => {
    const pieces = [
      tarHeader({ name: "a" }, 1000),
      Buffer.alloc(600, 1),
      Buffer.concat([Buffer.alloc(400, 2), Buffer.alloc(24)]),
      tarHeader({ name: "b" }, 0),
      Buffer.alloc(1024),
    ];
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (const p of pieces) {
        pulled++;
        yield p;
      }
    }
    const it = readTar(source());
    const a = (await it.next()).value as TarEntry;
    assert.equal(a.path, "a");
    assert.equal(pulled, 1, "only the header piece was pulled");
    const got: Uint8Array[] = [];
    for await (const c of a.body) {
      got.push(c);
      assert.equal(pulled, got.length + 1);
    }
    assert.equal(got.length, 2);
    assert.equal(got[0].buffer, pieces[1].buffer, "zero-copy: a view into the input piece");
    assert.equal(got[1].buffer, pieces[2].buffer);
    assert.deepEqual([got[0].length, got[1].length], [600, 400]);
    const b = (await it.next()).value as TarEntry;
    assert.equal(b.path, "b");
    assert.equal(pulled, 4);
    assert.equal((await it.next()).done, true);
  });

  test("a body cannot be read twice, nor after the reader moved on", async () => {
    const it = readTar(chunked(buildTar([{ name: "a", data: "abc" }, { name: "b", data: "d" }]), 512));
    const a = (await it.next()).value as TarEntry;
    for await (const c of a.body) assert.equal(Buffer.from(c).toString(), "abc");
    await assert.rejects(async () => {
      for await (const _ of a.body) assert.fail("read twice");
    }, TypeError);
    const b = (await it.next()).value as TarEntry;
    assert.equal(b.path, "b");
    const late: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const c of b.body) late.push(c);
      await it.next(); // moves on; b's body is then finished
      for await (const c of b.body) late.push(c);
    }, TypeError);
    assert.equal(late.length, 1);
    await it.return();
  });
});
