/**
 * erofs-utils / kernel oracle for the v6 writer: a tree with every file type is written, a blob-cache
 * view (plain chunk data at 4096-aligned offsets) is laid out for each blob, and then
 * `fsck.erofs --extract`, `dump.erofs -s` and (as root) a kernel EROFS mount must show exactly that tree.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { hash } from "../digest/hasher.ts";
import { native } from "../internal/native.ts";
import type { BlobInfo, ChunkInfo, FileChunk, FileKind, TreeEntry, TreeInode } from "./model.ts";
import { writeBootstrapV6 } from "./v6_writer.ts";

const CHUNK = 0x10000; // 64 KiB chunks: several chunks per file with little data
const enc = (s: string) => new TextEncoder().encode(s);

function haveTool(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}
const isRoot = process.getuid?.() === 0;
const haveErofsUtils = haveTool("fsck.erofs") && haveTool("dump.erofs");

/** Deterministic pseudo-random bytes (xorshift32). */
function bytesOf(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Blob views under construction: chunk data laid out at 4096-aligned offsets, deduplicated by digest. */
class ViewBuilder {
  readonly parts: { data: Uint8Array; offset: number }[] = [];
  readonly byDigest = new Map<string, ChunkInfo>();
  size = 0;
  constructor(readonly blobIndex: number) {}
  /** Chunks of `data`; `gapAfter` inserts a free 4 KiB block after each chunk (breaks continuity). */
  chunks(data: Uint8Array, gapAfter = false): FileChunk[] {
    const out: FileChunk[] = [];
    for (let off = 0; off < data.length; off += CHUNK) {
      const plain = data.subarray(off, Math.min(off + CHUNK, data.length));
      const digest = hash("blake3", plain);
      const key = Buffer.from(digest).toString("hex");
      let info = this.byDigest.get(key);
      if (!info) {
        info = {
          digest,
          blobIndex: this.blobIndex,
          index: this.byDigest.size,
          compressedOffset: this.size,
          compressedSize: plain.length,
          uncompressedOffset: this.size,
          uncompressedSize: plain.length,
          compressed: false,
          crc32: native.crc32c(plain),
        };
        this.byDigest.set(key, info);
        this.parts.push({ data: plain, offset: this.size });
        this.size += Math.ceil(plain.length / 4096) * 4096 + (gapAfter ? 4096 : 0);
      }
      out.push({ chunk: info, fileOffset: off });
    }
    return out;
  }
  blobInfo(id: string): BlobInfo {
    const size = Math.max(this.size, 4096);
    return {
      blobId: id,
      chunkSize: CHUNK,
      chunkCount: this.byDigest.size,
      compressor: "none",
      digester: "blake3",
      features: 0x4000_0001,
      compressedSize: size,
      uncompressedSize: size,
      tocSize: 0,
      tocDigest: new Uint8Array(32),
      ciCompressor: "none",
      ciOffset: size,
      ciCompressedSize: 16 * this.byDigest.size,
      ciUncompressedSize: 16 * this.byDigest.size,
    };
  }
  write(file: string): void {
    const fd = fs.openSync(file, "w");
    try {
      fs.ftruncateSync(fd, Math.max(this.size, 4096));
      for (const p of this.parts) fs.writeSync(fd, p.data, 0, p.data.length, p.offset);
    } finally {
      fs.closeSync(fd);
    }
  }
}

interface Expect {
  kind: FileKind;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  nsec: number;
  content?: Uint8Array;
  target?: Uint8Array;
  rdev?: [number, number];
  xattrs?: Map<string, Uint8Array>;
  nlink: number;
  /** Hardlink group id. */
  link?: string;
}

/** Builds the test tree and the expectations keyed by relative path. */
function buildTree(withDevices: boolean) {
  const views = [new ViewBuilder(0), new ViewBuilder(1)];
  const expect = new Map<string, Expect>();
  let t = 1_700_000_000;
  const attrs = (kind: FileKind, mode: number, extra: Partial<TreeInode> = {}): TreeInode => ({
    kind,
    mode,
    uid: 1000 + (t % 7),
    gid: 2000 + (t % 5),
    mtime: t++,
    mtimeNsec: (t * 7919) % 1_000_000_000,
    rdevMajor: 0,
    rdevMinor: 0,
    xattrs: new Map(),
    size: 0,
    ...extra,
  });
  const record = (p: string, ino: TreeInode, e: Partial<Expect> = {}) => {
    expect.set(p, { kind: ino.kind, mode: ino.mode, uid: ino.uid, gid: ino.gid, mtime: ino.mtime, nsec: ino.mtimeNsec, nlink: 1, ...e });
  };
  const file = (p: string, data: Uint8Array, o: { blob?: number; gap?: boolean; mode?: number; xattrs?: [string, string][] } = {}): TreeInode => {
    const ino = attrs("reg", o.mode ?? 0o644, { size: data.length, chunks: views[o.blob ?? 0]!.chunks(data, o.gap) });
    for (const [k, v] of o.xattrs ?? []) ino.xattrs.set(k, enc(v));
    record(p, ino, { content: data, xattrs: ino.xattrs });
    return ino;
  };
  const symlink = (p: string, target: Uint8Array): TreeInode => {
    const ino = attrs("symlink", 0o777, { symlinkTarget: target });
    record(p, ino, { target });
    return ino;
  };
  const special = (p: string, kind: FileKind, mode: number, major = 0, minor = 0): TreeInode => {
    const ino = attrs(kind, mode, { rdevMajor: major, rdevMinor: minor });
    record(p, ino, { rdev: [major, minor] });
    return ino;
  };
  const dir = (p: string, mode: number, children: TreeEntry[], xattrs: [string, string][] = []): TreeInode => {
    const ino = attrs("dir", mode, { children });
    for (const [k, v] of xattrs) ino.xattrs.set(k, enc(v));
    const subdirs = children.filter((c) => c.inode.kind === "dir").length;
    record(p, ino, { nlink: 2 + subdirs, xattrs: ino.xattrs });
    return ino;
  };
  const E = (name: string, inode: TreeInode): TreeEntry => ({ name: enc(name), inode });

  const shared = bytesOf(3 * CHUNK + 123, 77);
  const hl = file("hl-a", shared, { xattrs: [["user.link", "yes"]] });
  expect.get("hl-a")!.nlink = 3;
  expect.get("hl-a")!.link = "hl";
  const linkAlias = (p: string) => expect.set(p, { ...expect.get("hl-a")!, link: "hl" });
  linkAlias("sub/hl-b");
  linkAlias("sub/deeper/hl-c");

  const bigNames = Array.from({ length: 3000 }, (_, i) => `entry-${String(i).padStart(4, "0")}-${"x".repeat(i % 40)}`);
  const big = dir(
    "bigdir",
    0o755,
    bigNames.map((n, i) => E(n, i % 100 === 0 ? file(`bigdir/${n}`, bytesOf(i + 1, i + 5)) : i % 2 ? special(`bigdir/${n}`, "fifo", 0o644) : symlink(`bigdir/${n}`, enc(`t${i}`)))),
  );
  const longName = "L".repeat(250) + "-end5";
  // Dirent areas of 4060 bytes (tail > 4096 - 64: FLAT_PLAIN) and of exactly 4096 bytes (tail 0: FLAT_PLAIN).
  const plainDir = (p: string, lastLen: number) =>
    dir(p, 0o755, [
      ...Array.from({ length: 15 }, (_, i) => E(String.fromCharCode(97 + i).repeat(255), special(`${p}/${String.fromCharCode(97 + i).repeat(255)}`, "fifo", 0o600))),
      E("z".repeat(lastLen), file(`${p}/${"z".repeat(lastLen)}`, bytesOf(3, lastLen))),
    ]);
  const devices: TreeEntry[] = withDevices
    ? [E("chr-null", special("chr-null", "chr", 0o666, 1, 3)), E("blk-dev", special("blk-dev", "blk", 0o660, 8, 0x12345 & 0xfffff))]
    : [];
  const root = dir("", 0o755, [
    E("one-chunk", file("one-chunk", bytesOf(5000, 1))),
    E("exact-chunk", file("exact-chunk", bytesOf(CHUNK, 2))),
    E("multi-cont", file("multi-cont", bytesOf(2 * CHUNK + CHUNK / 10, 3), { mode: 0o4755 })),
    E("multi-gap", file("multi-gap", bytesOf(4 * CHUNK + 1, 4), { gap: true })),
    E("in-blob-1", file("in-blob-1", bytesOf(3 * CHUNK + 17, 5), { blob: 1, xattrs: [["user.blob", "one"], ["trusted.secret", "t"]] })),
    E("dup-of-one", file("dup-of-one", bytesOf(5000, 1))),
    E("empty", file("empty", new Uint8Array(0), { mode: 0o600 })),
    E("s9", symlink("s9", enc("123456789"))),
    E("s3000", symlink("s3000", enc("ab/".repeat(1000)))),
    E("s4000", symlink("s4000", enc("abcd/".repeat(800)))),
    E("fifo", special("fifo", "fifo", 0o600)),
    E("sock", special("sock", "sock", 0o755)),
    ...devices,
    E("hl-a", hl),
    E("-dash", file("-dash", bytesOf(10, 9))),
    E(longName, file(longName, bytesOf(33, 10))),
    E("héllo-ünïcode-文件", file("héllo-ünïcode-文件", bytesOf(70000, 11), { xattrs: [["user.ü", "välue"]] })),
    E("sticky", dir("sticky", 0o1777, [])),
    E("plain-4060", plainDir("plain-4060", 16)),
    E("plain-4096", plainDir("plain-4096", 52)),
    E("bigdir", big),
    E(
      "sub",
      dir("sub", 0o750, [E("hl-b", hl), E("deeper", dir("sub/deeper", 0o700, [E("hl-c", hl), E("x", file("sub/deeper/x", bytesOf(1, 12)))]))], [["user.dir", "d"]]),
    ),
  ]);
  return { root, expect, views };
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function kindOf(st: fs.Stats): FileKind {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "reg";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "chr";
  if (st.isBlockDevice()) return "blk";
  if (st.isFIFO()) return "fifo";
  return "sock";
}
const devMajor = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn);
const devMinor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

/** Checks that `dir` holds exactly the expected entries (names, types, sizes, contents, targets, devices). */
function compareTree(base: string, expect: Map<string, Expect>, o: { attrs: boolean }): void {
  // Names: every directory lists exactly its expected children.
  const childrenOf = new Map<string, string[]>();
  for (const p of expect.keys()) {
    if (p === "") continue;
    const parent = p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "";
    childrenOf.set(parent, [...(childrenOf.get(parent) ?? []), p.slice(p.lastIndexOf("/") + 1)]);
  }
  const inoOfLink = new Map<string, number>();
  for (const [p, e] of expect) {
    const full = path.join(base, p);
    const st = fs.lstatSync(full);
    assert.equal(kindOf(st), e.kind, `${p}: type`);
    if (e.kind === "dir") {
      assert.deepEqual(fs.readdirSync(full).sort(), (childrenOf.get(p) ?? []).sort(), `${p}: entries`);
    } else if (e.kind === "reg") {
      assert.equal(st.size, e.content!.length, `${p}: size`);
      assert.ok(Buffer.from(fs.readFileSync(full)).equals(Buffer.from(e.content!)), `${p}: content`);
    } else if (e.kind === "symlink") {
      assert.ok(Buffer.from(fs.readlinkSync(full, { encoding: "buffer" })).equals(Buffer.from(e.target!)), `${p}: target`);
      assert.equal(st.size, e.target!.length, `${p}: symlink size`);
    } else if (e.kind === "chr" || e.kind === "blk") {
      assert.deepEqual([devMajor(st.rdev), devMinor(st.rdev)], e.rdev, `${p}: rdev`);
    }
    if (!o.attrs) continue;
    const perm = e.kind === "symlink" ? 0o777 : e.mode & 0o7777;
    assert.equal(st.mode & 0o7777, perm, `${p}: mode`);
    assert.deepEqual([st.uid, st.gid], [e.uid, e.gid], `${p}: uid/gid`);
    if (p !== "") {
      const ns = fs.lstatSync(full, { bigint: true }).mtimeNs;
      assert.equal(ns, BigInt(e.mtime) * 1_000_000_000n + BigInt(e.nsec), `${p}: mtime`);
    } else {
      assert.equal(st.mtimeMs, 0, "root mtime is dropped");
    }
    assert.equal(st.nlink, e.nlink, `${p}: nlink`);
    if (e.link) {
      const prev = inoOfLink.get(e.link);
      if (prev === undefined) inoOfLink.set(e.link, st.ino);
      else assert.equal(st.ino, prev, `${p}: hardlink shares the inode`);
    }
    if (e.kind !== "symlink") {
      const names = Buffer.from(native.listXattrs(full)).toString("utf8").split("\0").filter((n) => n !== "" && !n.startsWith("security."));
      const want = e.xattrs ?? new Map<string, Uint8Array>();
      assert.deepEqual(names.sort(), [...want.keys()].sort(), `${p}: xattr names`);
      for (const [k, v] of want) assert.ok(Buffer.from(native.getXattr(full, k)).equals(Buffer.from(v)), `${p}: xattr ${k}`);
    }
  }
}

test("erofs-utils and the kernel read back every file type", async (t) => {
  if (!haveErofsUtils) {
    t.skip("erofs-utils (fsck.erofs, dump.erofs) not installed");
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-v6w-"));
  const loops: string[] = [];
  let mnt: string | undefined;
  try {
    const { root, expect, views } = buildTree(isRoot);
    const ids = ["0".repeat(63) + "a", "0".repeat(63) + "b"];
    const blobs = views.map((v, i) => v.blobInfo(ids[i]!));
    const boot = writeBootstrapV6(root, { blobs, chunkSize: CHUNK, compressor: "none", digester: "blake3", prefetchPaths: ["/bigdir", "/one-chunk"] });
    const bootPath = path.join(tmp, "image.boot");
    fs.writeFileSync(bootPath, boot);
    const viewPaths = views.map((v, i) => {
      const p = path.join(tmp, `blob${i}.view`);
      v.write(p);
      return p;
    });
    const devArgs = viewPaths.map((p) => `--device=${p}`);

    const dump = sh("dump.erofs", ["-s", ...devArgs, bootPath]);
    assert.match(dump, /magic number:\s+0xE0F5E1E2/i);
    assert.match(dump, /root nid:\s+128/i);
    assert.match(dump, new RegExp(`inode count:\\s+${expect.size}\\b`, "i"), "s_inos = number of entries incl. root and every hardlink");
    assert.match(dump, /chunked_file/);
    assert.match(dump, /device_table/);

    const out = path.join(tmp, "extract");
    sh("fsck.erofs", [...devArgs, `--extract=${out}`, bootPath]);
    compareTree(out, expect, { attrs: false });

    if (!isRoot) {
      t.diagnostic("kernel mount part skipped: not root");
      return;
    }
    mnt = path.join(tmp, "mnt");
    fs.mkdirSync(mnt);
    for (const p of [bootPath, ...viewPaths]) loops.push(sh("losetup", ["-f", "--show", "-r", p]).trim());
    const [meta, ...devs] = loops;
    const mount = spawnSync("mount", ["-t", "erofs", "-o", ["ro", ...devs.map((d) => `device=${d}`)].join(","), meta!, mnt], { encoding: "utf8" });
    if (mount.status !== 0) {
      mnt = undefined;
      assert.fail(`mount failed: ${mount.stderr}`);
    }
    compareTree(mnt, expect, { attrs: true });
  } finally {
    if (mnt) spawnSync("umount", [mnt]);
    for (const l of loops.reverse()) spawnSync("losetup", ["-d", l]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
