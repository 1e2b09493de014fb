import { test } from "node:test";
import assert from "node:assert/strict";
import { DataLayout } from "../erofs/format.ts";
import { FreeSlotPool, MetaAllocator, planV6Layout } from "./v6_layout.ts";
import type { ChunkInfo, FileChunk, FileKind, TreeEntry, TreeInode } from "./model.ts";

const enc = (s: string) => new TextEncoder().encode(s);
function mk(kind: FileKind, extra: Partial<TreeInode> = {}): TreeInode {
  return { kind, mode: 0o644, uid: 0, gid: 0, mtime: 1, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map(), size: 0, ...extra };
}
const entry = (name: string | Uint8Array, inode: TreeInode): TreeEntry => ({ name: typeof name === "string" ? enc(name) : name, inode });
function fileOf(size: number, chunkSize = 0x100000): TreeInode {
  const chunks: FileChunk[] = [];
  for (let off = 0, i = 0; off < size; off += chunkSize, i++) {
    const chunk: ChunkInfo = {
      digest: new Uint8Array(32).fill(i + 1),
      blobIndex: 0,
      index: i,
      compressedOffset: off,
      compressedSize: Math.min(chunkSize, size - off),
      uncompressedOffset: off,
      uncompressedSize: Math.min(chunkSize, size - off),
      compressed: false,
    };
    chunks.push({ chunk, fileOffset: off });
  }
  return mk("reg", { size, chunks });
}

test("free-slot pool: smallest sufficient queue, FIFO, remainder re-queued", () => {
  const pool = new FreeSlotPool();
  assert.equal(pool.allocate(32), 0, "empty pool gives 0");
  pool.append(4096 + 131); // 3965 free bytes → 123 whole slots
  pool.append(8192 + 4000); // 96 bytes → 3 slots
  pool.append(12288 + 4000); // 3 slots, queued after the previous one
  pool.append(16384); // block aligned: nothing
  assert.equal(pool.queued(123), 1);
  assert.equal(pool.queued(3), 2);
  assert.equal(pool.allocate(64), 8192 + 4096 - 96, "2 slots come from the first 3-slot block");
  assert.equal(pool.queued(1), 1, "its last slot is re-queued");
  assert.equal(pool.allocate(96), 12288 + 4096 - 96, "FIFO: second 3-slot block");
  assert.equal(pool.allocate(32), 8192 + 4096 - 32, "the 1-slot remainder is the smallest fit");
  assert.equal(pool.allocate(200), 4096 + 4096 - 123 * 32);
  assert.equal(pool.allocate(4096), 0, "a whole block is never pooled");
});

// Port of upstream builder/src/core/v6.rs `test_set_v6_offset` (compact 32-byte inodes, cursor 0).
test("place_with_tail reproduces upstream's own placement test", () => {
  const a = new MetaAllocator(0);
  assert.equal(a.placeFile(32, 0), 0);
  assert.equal(a.off, 32);
  let p = a.placeTailed(32, 4064);
  assert.deepEqual([p.layout, p.off, a.off], [DataLayout.FlatInline, 4096, 8192]);
  p = a.placeTailed(32, 4096);
  assert.deepEqual([p.layout, p.off, p.direntsOff, a.off], [DataLayout.FlatPlain, 32, 8192, 8192 + 4096]);
  p = a.placeTailed(32, 8160);
  assert.deepEqual([p.layout, p.off, p.direntsOff, a.off], [DataLayout.FlatInline, 8192 + 4096, 8192 + 4096 + 4096, 8192 + 4096 + 8192]);
  p = a.placeTailed(32, 8161);
  assert.deepEqual([p.layout, p.off, p.direntsOff, a.off], [DataLayout.FlatPlain, 64, 8192 + 4096 + 8192, 8192 + 4096 + 8192 + 8192]);
  p = a.placeTailed(32, 4096 + 3968);
  assert.deepEqual([p.layout, p.off, p.direntsOff, a.off], [DataLayout.FlatInline, 96, 8192 + 4096 + 8192 + 8192, 8192 + 4096 + 8192 + 8192 + 4096]);
  p = a.placeTailed(32, 4096 + 2048);
  assert.deepEqual(
    [p.layout, p.off, p.direntsOff, a.off],
    [DataLayout.FlatInline, 8192 + 4096 + 8192 + 8192 + 4096, 8192 + 4096 + 8192 + 8192 + 4096 + 4096, 8192 + 4096 + 8192 + 8192 + 4096 + 8192],
  );
  p = a.placeTailed(32, 1985);
  assert.deepEqual([p.layout, p.off, a.off], [DataLayout.FlatInline, 8192 + 4096 + 8192 + 8192 + 4096 + 8192, 8192 + 4096 + 8192 + 8192 + 4096 + 8192 + 32 + 1985 + 31]);
  a.align(32);
  p = a.placeTailed(32, 1984);
  assert.deepEqual([p.layout, p.off, a.off], [DataLayout.FlatInline, 8192 + 4096 + 8192 + 8192 + 4096 + 2048 + 32, 8192 + 4096 + 8192 + 8192 + 4096 + 8192 + 2048]);
});

test("§3.14 worked check: root 128, lib.rs 133, sync_io.rs 136", () => {
  const root = mk("dir", { mode: 0o755, children: [entry("sync_io.rs", fileOf(13400)), entry("lib.rs", fileOf(16931))] });
  const plan = planV6Layout(root, { chunkSize: 0x100000 });
  assert.deepEqual(
    plan.nodes.map((n) => [Buffer.from(n.name).toString(), n.index, n.off / 32]),
    [
      ["/", 1, 128],
      ["lib.rs", 2, 133],
      ["sync_io.rs", 3, 136],
    ],
  );
  assert.equal(plan.root.dataSize, 67);
  assert.equal(plan.root.layout, DataLayout.FlatInline);
  assert.equal(plan.root.direntsOff, 4227, "i_u = (4227 + 0x2000) / 4096 = 3 in the fixture");
  assert.equal(plan.inodeCount, 3);
});

test("inline vs plain at the 4096 boundary (isz 64: tail 4032 inline, 4033 plain)", () => {
  // ". .." = 27 bytes; one child with an n-byte name adds 12 + n.
  const dirOfSize = (want: number): TreeInode => mk("dir", { mode: 0o755, children: [entry("x".repeat(want - 39), mk("fifo"))] });
  // Names are ≤ 255 bytes, so the exact boundary is probed with symlink targets (same placement rule).
  const link = (n: number) => mk("dir", { mode: 0o755, children: [entry("l", mk("symlink", { mode: 0o777, symlinkTarget: new Uint8Array(n).fill(0x61) }))] });
  for (const [n, layout] of [
    [4032, DataLayout.FlatInline],
    [4033, DataLayout.FlatPlain],
    [4096, DataLayout.FlatPlain],
    [4096 + 100, DataLayout.FlatInline],
  ] as const) {
    const plan = planV6Layout(link(n), { chunkSize: 0x100000 });
    const l = plan.nodes[1]!;
    assert.equal(l.layout, layout, `symlink of ${n} bytes`);
    if (layout === DataLayout.FlatInline) assert.ok(Math.floor(l.off / 4096) === Math.floor((l.off + 64 + (n % 4096) - 1) / 4096), "inode + tail in one block");
    else assert.equal(l.direntsOff % 4096, 0);
  }
  const small = planV6Layout(dirOfSize(200), { chunkSize: 0x100000 });
  assert.equal(small.root.layout, DataLayout.FlatInline);
});

test("traversal order: all children numbered before recursing; hardlinks share an offset", () => {
  const shared = fileOf(10);
  const root = mk("dir", {
    mode: 0o755,
    children: [
      entry("b", mk("dir", { mode: 0o755, children: [entry("b1", shared), entry("b0", mk("dir", { mode: 0o755, children: [entry("deep", mk("fifo"))] }))] })),
      entry("a", mk("dir", { mode: 0o755, children: [entry("a1", mk("fifo"))] })),
      entry("c", shared),
    ],
  });
  const plan = planV6Layout(root, { chunkSize: 0x100000 });
  assert.deepEqual(
    plan.nodes.map((n) => `${Buffer.from(n.name)}:${n.index}`),
    ["/:1", "a:2", "b:3", "c:4", "a1:5", "b0:6", "b1:7", "deep:8"],
  );
  const c = plan.nodes[3]!;
  const b1 = plan.nodes[6]!;
  assert.equal(c.primary, c, "first link in index order is /c");
  assert.equal(b1.primary, c);
  assert.equal(b1.off, c.off);
  assert.equal(plan.linkCounts.get(shared), 2);
  assert.equal(plan.inodeCount, 8);
});

test("input validation", () => {
  const dir = (children: TreeEntry[]) => mk("dir", { mode: 0o755, children });
  const opts = { chunkSize: 0x100000 };
  assert.throws(() => planV6Layout(dir([entry("", mk("fifo"))]), opts), /empty name/);
  assert.throws(() => planV6Layout(dir([entry("a/b", mk("fifo"))]), opts), /contains "\/"/);
  assert.throws(() => planV6Layout(dir([entry("x".repeat(256), mk("fifo"))]), opts), /256 bytes, longer than 255/);
  assert.throws(() => planV6Layout(dir([entry("..", mk("fifo"))]), opts), /reserved/);
  assert.throws(() => planV6Layout(dir([entry("a", mk("fifo")), entry("a", mk("sock"))]), opts), /duplicate entry "a"/);
  assert.throws(() => planV6Layout(dir([entry("f", mk("reg", { size: 5 }))]), opts), /0 chunks for 5 bytes/);
  assert.throws(() => planV6Layout(dir([entry("f", mk("fifo", { xattrs: new Map([["os2.x", new Uint8Array(1)]]) }))]), opts), RangeError);
  assert.throws(() => planV6Layout(dir([entry("f", mk("fifo", { xattrs: new Map([["user.x", new Uint8Array(65536)]]) }))]), opts), /longer than 65535/);
  assert.throws(() => planV6Layout(dir([entry("f", mk("fifo", { xattrs: new Map([[`user.${"n".repeat(251)}`, new Uint8Array(1)]]) }))]), opts), /longer than 255 bytes/);
  assert.throws(() => planV6Layout(dir([entry("f", mk("fifo", { mode: 0o100644 }))]), opts), /type bits/);
  const loop = dir([]);
  loop.children!.push(entry("self", loop));
  assert.throws(() => planV6Layout(loop, opts), /appears twice/);
  assert.throws(() => planV6Layout(mk("fifo"), opts), /root/);
});
