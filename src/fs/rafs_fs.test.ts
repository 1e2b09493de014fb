/** RafsFs without a kernel: node ids, lookup, attributes, xattr size rules, readdir cookies, read errors. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildTexture, type BuiltImage } from "../local/_testing.ts";
import { ChunkSource } from "../local/chunk_source.ts";
import { chr, dir, file, hardlink, random, symlink, text } from "../../test/textures/spec.ts";
import { fileReaderFromChunks } from "./chunk_reader.ts";
import { encodeDev, Errno, RafsFs, type FsEntry } from "./rafs_fs.ts";
import { ATTR_OUT_SIZE, attrOut, decodeInHeader, direntSize, entryOut, initOut, reply, writeDirent } from "./fuse/protocol.ts";

const enc = new TextEncoder();
const name = (s: string): Uint8Array => enc.encode(s);

describe("RafsFs", () => {
  let work: string;
  let built: BuiltImage;
  let source: ChunkSource;
  let rfs: RafsFs;
  const logs: string[] = [];

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-rafsfs-"));
    const entries = [
      dir("d", { mode: 0o1777, xattrs: { "user.a": "12345", "user.b": "" } }),
      file("d/f", random(200_000, 7), { uid: 12, gid: 34, mtime: 1_600_000_000, mtimeNsec: 5 }),
      hardlink("d/h", "d/f"),
      symlink("s", "d/f"),
      file("empty", text("")),
    ];
    // Devices and owners need root for the directory form; use the tar form.
    built = await buildTexture({ entries: [...entries, chr("c", 4, 300)] }, work, { input: "tar", chunkSize: 0x10000 });
    source = new ChunkSource(built.image, { blobDir: built.blobDir });
    rfs = new RafsFs(built.image, fileReaderFromChunks(built.image, (c) => source.read(c)), { log: (l) => logs.push(l) });
  });
  after(async () => {
    await source.close();
    await fsp.rm(work, { recursive: true, force: true });
  });

  const look = (parent: number, n: string): FsEntry => {
    const r = rfs.lookup(parent, name(n));
    assert.notEqual(typeof r, "number", `lookup ${n}: ${r}`);
    return r as FsEntry;
  };

  it("maps the root to node id 1 and resolves names, '.' and '..'", () => {
    const root = rfs.getattr(1);
    assert.ok(typeof root !== "number" && root.ino === 1 && (root.mode & 0o170000) === 0o040000);
    const d = look(1, "d");
    assert.equal(d.attr.mode, 0o041777);
    assert.equal(look(d.nodeId, "..").nodeId, 1);
    assert.equal(look(d.nodeId, ".").nodeId, d.nodeId);
    assert.equal(rfs.lookup(1, name("nope")), -Errno.ENOENT);
    const f = look(d.nodeId, "f");
    assert.equal(rfs.lookup(f.nodeId, name("x")), -Errno.ENOTDIR);
    assert.equal(rfs.getattr(999_999_999), -Errno.ENOENT);
  });

  it("gives attributes: size, blocks, owner, mtime ns, nlink, rdev; hardlinks share a node id", () => {
    const d = look(1, "d");
    const f = look(d.nodeId, "f");
    assert.equal(f.attr.size, 200_000);
    assert.equal(f.attr.blocks, Math.ceil(200_000 / 512));
    assert.deepEqual([f.attr.uid, f.attr.gid, f.attr.mtime, f.attr.mtimeNsec, f.attr.nlink], [12, 34, 1_600_000_000, 5, 2]);
    assert.equal(look(d.nodeId, "h").nodeId, f.nodeId);
    assert.equal(f.attr.ino, f.nodeId);
    const c = look(1, "c");
    assert.equal(c.attr.rdev, encodeDev(4, 300));
    assert.equal(encodeDev(4, 300), (300 & 0xff) | (4 << 8) | ((300 & ~0xff) << 12));
  });

  it("reads file bytes by node id, short at EOF, empty past it; EISDIR for a directory", async () => {
    const f = look(look(1, "d").nodeId, "f");
    const data = (await rfs.read(f.nodeId, 65_000, 70_000)) as Uint8Array;
    assert.equal(data.length, 70_000);
    const whole = new Uint8Array(200_000);
    for (let off = 0; off < 200_000; off += 4096 * 7) whole.set((await rfs.read(f.nodeId, off, 4096 * 7)) as Uint8Array, off);
    assert.deepEqual(data, whole.subarray(65_000, 135_000));
    assert.equal(((await rfs.read(f.nodeId, 199_990, 100)) as Uint8Array).length, 10);
    assert.equal(((await rfs.read(f.nodeId, 300_000, 100)) as Uint8Array).length, 0);
    assert.equal(await rfs.read(1, 0, 4096), -Errno.EISDIR);
    assert.equal(await rfs.read(987_654, 0, 4096), -Errno.ENOENT);
    const e = look(1, "empty");
    assert.equal(((await rfs.read(e.nodeId, 0, 4096)) as Uint8Array).length, 0);
  });

  it("answers EIO and logs one line naming the file when the reader throws", async () => {
    const bad = new RafsFs(built.image, { read: async () => { throw new Error("boom"); } }, { log: (l) => logs.push(l) });
    const d = bad.lookup(1, name("d")) as FsEntry;
    const f = bad.lookup(d.nodeId, name("f")) as FsEntry;
    const before = logs.length;
    assert.equal(await bad.read(f.nodeId, 0, 4096), -Errno.EIO);
    assert.equal(logs.length, before + 1);
    assert.match(logs.at(-1)!, /"\/d\/f".*EIO.*boom/);
  });

  it("reads symlinks; EINVAL for others", () => {
    const s = look(1, "s");
    assert.equal(new TextDecoder().decode(rfs.readlink(s.nodeId) as Uint8Array), "d/f");
    assert.equal(s.attr.size, 3);
    assert.equal(rfs.readlink(1), -Errno.EINVAL);
  });

  it("follows the getxattr/listxattr size probe, ERANGE and ENODATA rules", () => {
    const d = look(1, "d").nodeId;
    assert.equal(rfs.getxattr(d, name("user.a"), 0), 5);
    assert.equal(rfs.getxattr(d, name("user.a"), 4), -Errno.ERANGE);
    assert.equal(new TextDecoder().decode(rfs.getxattr(d, name("user.a"), 5) as Uint8Array), "12345");
    assert.equal(rfs.getxattr(d, name("user.b"), 0), 0);
    assert.equal(rfs.getxattr(d, name("user.zz"), 100), -Errno.ENODATA);
    assert.equal(rfs.listxattr(d, 0), 14);
    assert.equal(rfs.listxattr(d, 13), -Errno.ERANGE);
    assert.equal(new TextDecoder().decode(rfs.listxattr(d, 100) as Uint8Array), "user.a\0user.b\0");
    assert.equal(rfs.listxattr(1, 0), 0);
  });

  it("lists directories with '.', '..' and resumable cookies", () => {
    const all = rfs.readdir(1, 0) as ReturnType<RafsFs["readdir"]> & object[];
    const names = (all as { name: Uint8Array }[]).map((e) => new TextDecoder().decode(e.name));
    assert.deepEqual(names, [".", "..", "c", "d", "empty", "s"]);
    const rest = rfs.readdir(1, (all as { next: number }[])[2].next) as { name: Uint8Array }[];
    assert.deepEqual(rest.map((e) => new TextDecoder().decode(e.name)), ["d", "empty", "s"]);
    assert.equal(rfs.entryOf((all as never[])[0]), undefined);
    assert.deepEqual((rfs.readdir(1, 6) as object[]).length, 0, "past the end");
    assert.equal(rfs.readdir(look(1, "s").nodeId, 0), -Errno.ENOTDIR);
  });
});

describe("FUSE protocol codec", () => {
  const attr = { ino: 7, size: 1000, blocks: 2, mtime: 1_700_000_000, mtimeNsec: 9, mode: 0o100644, nlink: 3, uid: 4, gid: 5, rdev: 6, blksize: 4096 };
  it("lays out fuse_attr, attr_out and entry_out as the kernel wants", () => {
    const a = new DataView(attrOut(attr, 1.5).buffer);
    assert.equal(ATTR_OUT_SIZE, 104);
    assert.equal(a.getBigUint64(0, true), 1n);
    assert.equal(a.getUint32(8, true), 500_000_000);
    assert.equal(a.getBigUint64(16, true), 7n);
    assert.equal(a.getBigUint64(16 + 32, true), 1_700_000_000n);
    assert.equal(a.getUint32(16 + 60, true), 0o100644);
    assert.equal(a.getUint32(16 + 64, true), 3);
    assert.equal(a.getUint32(16 + 80, true), 4096);
    const e = entryOut(9, attr, 60, 60);
    assert.equal(e.length, 128);
    const v = new DataView(e.buffer);
    assert.equal(v.getBigUint64(0, true), 9n);
    assert.equal(v.getBigUint64(40, true), 7n);
  });
  it("frames replies and dirents, decodes the in header, and answers INIT as 7.31 in 64 bytes", () => {
    const r = reply(0x1234n, -2, new Uint8Array(3));
    const v = new DataView(r.buffer);
    assert.deepEqual([v.getUint32(0, true), v.getInt32(4, true), v.getBigUint64(8, true)], [19, -2, 0x1234n]);
    const out = new Uint8Array(64);
    assert.equal(writeDirent(out, new DataView(out.buffer), 0, 5, 6, 8, enc.encode("abc")), 32);
    assert.equal(direntSize(8), 32);
    assert.equal(direntSize(9), 40);
    const init = initOut({ maxReadahead: 1, flags: 0x80000000, maxBackground: 2, congestionThreshold: 1, maxWrite: 3, timeGran: 1, maxPages: 256 });
    const iv = new DataView(init.buffer);
    assert.deepEqual([init.length, iv.getUint32(0, true), iv.getUint32(4, true), iv.getUint32(12, true), iv.getUint16(28, true)], [64, 7, 31, 0x80000000, 256]);
    const hdr = new Uint8Array(40);
    const hv = new DataView(hdr.buffer);
    hv.setUint32(0, 40, true);
    hv.setUint32(4, 26, true);
    hv.setBigUint64(8, 77n, true);
    hv.setBigUint64(16, 1n, true);
    assert.deepEqual(decodeInHeader(hdr), { len: 40, opcode: 26, unique: 77n, nodeid: 1n, uid: 0, gid: 0, pid: 0 });
  });
});
