import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { BlobInfo, ChunkInfo, FileChunk, FileKind, RafsImage, TreeEntry, TreeInode } from "../rafs/model.ts";
import { openRafs } from "../rafs/open.ts";
import { writeBootstrapV6 } from "../rafs/v6_writer.ts";
import type { WhiteoutSpec } from "../tar/whiteout.ts";
import { BlobTable, compactBlobs } from "./blob_table.ts";
import { treeFromRafs } from "./from_rafs.ts";
import { LayerMerge, mergePrepared, prepareLayer } from "./merge.ts";
import { mergeLayers } from "./overlay.ts";
import { ROOT_NAME, cloneTree, walk } from "./tree.ts";
import { composeUpper, toUpper, underlay } from "./upper.ts";
import { Prng } from "../../test/support/fuzz.ts";

const CHUNK = 4096;
const enc = (s: string) => new TextEncoder().encode(s);

/** A seeded generator (test/support's mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.float();
}

function mk(kind: FileKind, extra: Partial<TreeInode> = {}): TreeInode {
  return { kind, mode: kind === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map(), size: 0, ...extra };
}

/** Chunk `k` of blob slot `b` (the same bytes in every layer naming that blob). */
function chunkOf(blobIndex: number, blobKey: number, k: number): ChunkInfo {
  const digest = new Uint8Array(32);
  digest[0] = blobKey;
  digest[1] = k;
  return { digest, blobIndex, index: k, compressedOffset: k * CHUNK, compressedSize: CHUNK, uncompressedOffset: k * CHUNK, uncompressedSize: CHUNK, compressed: false };
}

function blobInfo(key: number, chunkCount: number): BlobInfo {
  return {
    blobId: key.toString(16).padStart(2, "0").repeat(32),
    chunkSize: CHUNK,
    chunkCount,
    compressor: "none",
    digester: "blake3",
    features: 0x4000_0001,
    compressedSize: 64 * CHUNK,
    uncompressedSize: 64 * CHUNK,
    tocSize: 0,
    tocDigest: new Uint8Array(32),
    ciCompressor: "none",
    ciOffset: 64 * CHUNK,
    ciCompressedSize: 16 * chunkCount,
    ciUncompressedSize: 16 * chunkCount,
  };
}

interface RandomLayer {
  tree: TreeEntry;
  /** Blob keys of the layer's table: its own, sometimes a shared "dictionary" blob (key 0xdd). */
  blobKeys: number[];
}

/**
 * A random layer: few names per directory so that layers collide often; directories, files
 * (some hardlinked), symlinks, devices, whiteouts and opaque markers of `spec`.
 */
function randomLayer(r: () => number, layer: number, spec: WhiteoutSpec): RandomLayer {
  const blobKeys = r() < 0.5 ? [layer + 1, 0xdd] : [layer + 1];
  const names = ["a", "b", "c", "d", "e", "f"];
  const files: TreeInode[] = [];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const fill = (dir: TreeInode, depth: number): void => {
    const kids = new Map<string, TreeInode>();
    const n = Math.floor(r() * 6);
    for (let i = 0; i < n; i++) {
      const x = r();
      const name = pick(names);
      if (spec === "oci" && x < 0.12) {
        kids.set(`.wh.${name}`, mk("reg"));
      } else if (spec === "oci" && x < 0.16) {
        kids.set(".wh..wh..opq", mk("reg"));
      } else if (spec === "overlayfs" && x < 0.14) {
        kids.set(name, mk("chr", { rdevMajor: 0, rdevMinor: 0 }));
      } else if (x < 0.45 && depth < 3) {
        const d = mk("dir", { mtime: 10 * layer + i, mode: pick([0o755, 0o700]) });
        if (spec === "overlayfs" && r() < 0.2) d.xattrs.set("trusted.overlay.opaque", enc("y"));
        if (r() < 0.1) d.xattrs.set("user.tag", enc(`l${layer}`));
        fill(d, depth + 1);
        kids.set(name, d);
      } else if (x < 0.55 && files.length > 0) {
        kids.set(name, pick(files)); // a hardlink within this layer
      } else if (x < 0.8) {
        const b = Math.floor(r() * blobKeys.length);
        const count = Math.floor(r() * 3);
        const chunks: FileChunk[] = [];
        for (let k = 0; k < count; k++) chunks.push({ chunk: chunkOf(b, blobKeys[b]!, Math.floor(r() * 8) + k), fileOffset: k * CHUNK });
        const f = mk("reg", { size: count * CHUNK, chunks, mtime: layer });
        files.push(f);
        kids.set(name, f);
      } else if (x < 0.9) {
        kids.set(name, mk("symlink", { symlinkTarget: enc(`/t/${layer}/${i}`) }));
      } else {
        kids.set(name, mk("fifo", { mtime: layer }));
      }
    }
    dir.children = [...kids].map(([name, inode]) => ({ name: enc(name), inode })).sort((a, b) => Buffer.compare(a.name, b.name));
  };
  const root = mk("dir", { mtime: layer, mode: 0o755 + layer });
  fill(root, 0);
  return { tree: { name: ROOT_NAME, inode: root }, blobKeys };
}

/** Everything the writer reads, in order, with hardlinks shown as the first path of their inode. */
function render(root: TreeEntry): string[] {
  const firstPath = new Map<TreeInode, string>();
  return [...walk(root)].map(({ path, entry: { inode } }) => {
    const link = firstPath.get(inode);
    if (inode.kind === "reg" && link === undefined) firstPath.set(inode, path);
    const xattrs = [...inode.xattrs].map(([k, v]) => `${k}=${Buffer.from(v).toString()}`).join(",");
    const chunks = (inode.chunks ?? []).map((c) => `${c.chunk.blobIndex}:${c.chunk.digest[0]}/${c.chunk.digest[1]}`).join(",");
    return `${path} ${inode.kind} ${inode.mode.toString(8)} t=${inode.mtime} x=${xattrs} c=${chunks} ${link !== undefined ? `link=${link}` : ""}`;
  });
}

describe("underlay(base, composeUpper(...)) equals mergeLayers", () => {
  for (const spec of ["oci", "overlayfs", "none"] as const) {
    test(`random layers, ${spec} whiteouts, every grouping of the uppers`, () => {
      for (let seed = 1; seed <= 300; seed++) {
        const r = rng(seed * 7919 + spec.length);
        const layers = Array.from({ length: 4 }, (_, i) => randomLayer(r, i, spec).tree);
        const want = render(mergeLayers(layers.map(cloneTree), { whiteoutSpec: spec, consumeInputs: true }));
        const up = (i: number) => toUpper(cloneTree(layers[i]!), spec);
        const leftFirst = composeUpper(composeUpper(up(1), up(2)), up(3));
        assert.deepEqual(render(underlay(cloneTree(layers[0]!), leftFirst)), want, `seed ${seed}, ((1 2) 3)`);
        const rightFirst = composeUpper(up(1), composeUpper(up(2), up(3)));
        assert.deepEqual(render(underlay(cloneTree(layers[0]!), rightFirst)), want, `seed ${seed}, (1 (2 3))`);
      }
    });
  }

  test("hand-picked cases: whiteout then re-add, dir over file, file over dir, opaque over opaque", () => {
    const f = (t = 1) => mk("reg", { mtime: t });
    const d = (kids: Record<string, TreeInode>, t = 1) =>
      mk("dir", { mtime: t, children: Object.entries(kids).map(([n, inode]) => ({ name: enc(n), inode })).sort((a, b) => Buffer.compare(a.name, b.name)) });
    const shared = f(5);
    const layers: TreeEntry[] = [
      d({ a: d({ x: f(), y: f() }), b: f(), c: d({ z: f() }), h1: shared, h2: shared }),
      d({ a: d({ ".wh.x": f(), n: f(2) }, 2), b: d({ q: f(2) }, 2), c: f(2), ".wh.h1": f() }, 2),
      d({ a: d({ ".wh..wh..opq": f(), m: f(3) }, 3), ".wh.b": f(), b: d({ r: f(3) }, 3), c: d({ w: f(3) }, 3) }, 3),
      d({ a: d({ ".wh.m": f() }, 4), ".wh.c": f() }, 4),
    ].map((inode) => ({ name: ROOT_NAME, inode }));
    const want = render(mergeLayers(layers.map(cloneTree), { consumeInputs: true }));
    const got = render(underlay(cloneTree(layers[0]!), composeUpper(composeUpper(toUpper(cloneTree(layers[1]!), "oci"), toUpper(cloneTree(layers[2]!), "oci")), toUpper(cloneTree(layers[3]!), "oci"))));
    assert.deepEqual(got, want);
    assert.deepEqual(want, [
      "/ dir 755 t=4 x= c= ",
      "/a dir 755 t=4 x= c= ",
      "/b dir 755 t=3 x= c= ",
      "/h2 reg 644 t=5 x= c= ",
      "/b/r reg 644 t=3 x= c= ",
    ]);
  });
});

/** The merge as it was before `LayerMerge`: one blob table in layer order, overlay, compaction. */
function referenceMerge(images: readonly RafsImage[], spec: WhiteoutSpec): Uint8Array {
  const table = new BlobTable();
  const trees = images.map((img) => ({ name: ROOT_NAME, inode: treeFromRafs(img, { remapBlob: table.addAll(img.blobs) }) }));
  const merged = mergeLayers(trees, { whiteoutSpec: spec, consumeInputs: true });
  const blobs = compactBlobs(merged.inode, table.blobs, "first-reference");
  const first = images[0]!.superBlock;
  return writeBootstrapV6(merged.inode, { blobs, chunkSize: first.chunkSize, compressor: images.at(-1)!.superBlock.compressor, digester: first.digester, explicitUidGid: first.explicitUidGid });
}

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

describe("LayerMerge", () => {
  test("same bootstrap bytes as the overlay merge, whatever order the layers arrive in", () => {
    const orders = permutations(4);
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const boots = Array.from({ length: 4 }, (_, i) => {
        const l = randomLayer(r, i, "oci");
        // A layer's dictionary blob entry differs a little per layer: the lowest layer's must win.
        const blobs = l.blobKeys.map((k) => blobInfo(k, k === 0xdd ? 10 + i : 8));
        return writeBootstrapV6(l.tree.inode, { blobs, chunkSize: CHUNK, compressor: "none", digester: "blake3" });
      });
      const want = referenceMerge(boots.map((b) => openRafs(b)), "oci");
      assert.deepEqual(Buffer.compare(Buffer.from(mergePrepared(boots.map((b) => prepareLayer(openRafs(b))), { whiteoutSpec: "oci" }).bootstrap), Buffer.from(want)), 0, `seed ${seed}`);
      for (const order of orders.filter((_, i) => i % 5 === seed % 5)) {
        const m = new LayerMerge({ whiteoutSpec: "oci" });
        for (const i of order) m.add(i, prepareLayer(openRafs(boots[i]!)));
        const got = m.finish(4).bootstrap;
        assert.ok(Buffer.from(got).equals(Buffer.from(want)), `seed ${seed}, arrival order ${order.join(",")}`);
      }
    }
  });

  test("refuses a merge with a missing layer or a layer given twice", () => {
    const boot = writeBootstrapV6(mk("dir", { children: [] }), { blobs: [], chunkSize: CHUNK, compressor: "none", digester: "blake3" });
    const m = new LayerMerge();
    m.add(0, prepareLayer(openRafs(boot)));
    m.add(2, prepareLayer(openRafs(boot)));
    assert.throws(() => m.add(2, prepareLayer(openRafs(boot))), /given twice/);
    assert.throws(() => m.finish(3), /layer 1 was never given/);
  });
});
