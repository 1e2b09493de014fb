import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { TreeEntry, TreeInode } from "../rafs/model.ts";
import { buildTar, chunked, type RawTarEntry } from "../tar/_testing.ts";
import { readTar } from "../tar/reader.ts";
import { applyLayer, mergeLayers, whiteoutKind } from "./overlay.ts";
import { buildTreeFromTar, walk } from "./tree.ts";

function render(root: TreeEntry): string[] {
  return [...walk(root)].map(({ path, entry: { inode } }) => {
    let extra = "";
    if (inode.kind === "reg") extra = ` size=${inode.size}`;
    if (inode.kind === "chr") extra = ` ${inode.rdevMajor}:${inode.rdevMinor}`;
    if (inode.xattrs.size > 0) extra += ` xattrs=${[...inode.xattrs.keys()].join(",")}`;
    return `${path} ${inode.kind} ${(inode.mode & 0o7777).toString(8)} t=${inode.mtime}${extra}`;
  });
}

function inodeAt(root: TreeEntry, p: string): TreeInode {
  const w = [...walk(root)].find((x) => x.path === p);
  assert.ok(w, `${p} missing`);
  return w.entry.inode;
}

function allInodes(root: TreeEntry): Set<TreeInode> {
  return new Set([...walk(root)].map((w) => w.entry.inode));
}

const tree = (entries: RawTarEntry[]) => buildTreeFromTar(readTar(chunked(buildTar(entries))));
const dir = (name: string, mtime = 1, mode = 0o755): RawTarEntry => ({ name, type: "5", mtime, mode });
const file = (name: string, data = "x", mtime = 1): RawTarEntry => ({ name, data, mtime });

describe("applyLayer (OCI whiteouts)", () => {
  test("whiteout file, whiteout dir, missing target; upper dir attributes over lower dir", async () => {
    const lower = await tree([dir("./", 1), dir("a", 1), file("a/x"), file("a/y"), dir("b"), file("b/inner"), file("c")]);
    const upper = await tree([dir("./", 7, 0o700), dir("a", 9, 0o750), file("a/.wh.x", ""), file(".wh.b", ""), file(".wh.nothing", "")]);
    const merged = applyLayer(lower, upper);
    assert.deepEqual(render(merged), [
      "/ dir 700 t=7",
      "/a dir 750 t=9",
      "/c reg 644 t=1 size=1",
      "/a/y reg 644 t=1 size=1",
    ]);
  });

  test("opaque directory hides every lower child but keeps upper siblings", async () => {
    const lower = await tree([dir("d"), file("d/old1"), dir("d/sub"), file("d/sub/z"), file("keep")]);
    const upper = await tree([dir("d", 5), file("d/new", "nn"), file("d/.wh..wh..opq", "")]);
    assert.deepEqual(render(applyLayer(lower, upper)), [
      "/ dir 755 t=0",
      "/d dir 755 t=5",
      "/keep reg 644 t=1 size=1",
      "/d/new reg 644 t=1 size=2",
    ]);
  });

  test("file replaces dir (subtree dropped), dir replaces file, new dirs drop their whiteouts", async () => {
    const lower = await tree([dir("p"), dir("p/q"), file("p/q/r"), file("f", "ffff")]);
    const upper = await tree([file("p", "now a file"), dir("f", 3), file("f/g", "g"), dir("n", 4), file("n/.wh.ghost", ""), file("n/.wh..wh..opq", ""), file("n/real")]);
    assert.deepEqual(render(applyLayer(lower, upper)), [
      "/ dir 755 t=0",
      "/f dir 755 t=3",
      "/n dir 755 t=4",
      "/p reg 644 t=1 size=10",
      "/f/g reg 644 t=1 size=1",
      "/n/real reg 644 t=1 size=1",
    ]);
  });

  test("hardlinks in the lower layer: one link whited out, one replaced", async () => {
    const lower = await tree([file("h1", "shared"), { name: "h2", type: "1", linkname: "h1" }, { name: "d/h3", type: "1", linkname: "h1" }, { name: "h4", type: "1", linkname: "h1" }]);
    const upper = await tree([file(".wh.h2", ""), file("h4", "fresh!!")]);
    const merged = applyLayer(lower, upper);
    assert.deepEqual(render(merged), [
      "/ dir 755 t=0",
      "/d dir 755 t=0",
      "/h1 reg 644 t=1 size=6",
      "/h4 reg 644 t=1 size=7",
      "/d/h3 reg 644 t=1 size=6",
    ]);
    assert.equal(inodeAt(merged, "/h1"), inodeAt(merged, "/d/h3"));
    assert.notEqual(inodeAt(merged, "/h1"), inodeAt(merged, "/h4"));
    // the source trees are untouched: the lower still has 4 links and no object is shared
    assert.equal(render(lower).length, 6);
    assert.equal(inodeAt(lower, "/h1"), inodeAt(lower, "/h4"));
    for (const i of allInodes(merged)) {
      assert.ok(!allInodes(lower).has(i) && !allInodes(upper).has(i), "merged tree shares an inode with an input");
    }
  });

  test("hardlinks inside the upper layer stay shared", async () => {
    const lower = await tree([file("a")]);
    const upper = await tree([file("u1", "uu"), dir("sub"), { name: "sub/u2", type: "1", linkname: "u1" }, { name: "a", type: "1", linkname: "u1" }]);
    const merged = applyLayer(lower, upper);
    const u1 = inodeAt(merged, "/u1");
    assert.equal(inodeAt(merged, "/sub/u2"), u1);
    assert.equal(inodeAt(merged, "/a"), u1);
    assert.notEqual(u1, inodeAt(upper, "/u1"));
  });

  test("whiteoutSpec none copies .wh. files as they are", async () => {
    const lower = await tree([file("x")]);
    const upper = await tree([file(".wh.x", "")]);
    assert.deepEqual(render(applyLayer(lower, upper, { whiteoutSpec: "none" })), [
      "/ dir 755 t=0",
      "/.wh.x reg 644 t=1 size=0",
      "/x reg 644 t=1 size=1",
    ]);
  });
});

describe("applyLayer (overlayfs whiteouts)", () => {
  const opaque = (name: string, mtime: number): RawTarEntry => ({
    ...dir(name, mtime),
    pax: [
      ["SCHILY.xattr.trusted.overlay.opaque", "y"],
      ["SCHILY.xattr.user.keep", "1"],
    ],
  });

  test("char device 0:0 removes, trusted.overlay.opaque=y empties the lower dir and is stripped", async () => {
    const lower = await tree([file("gone"), dir("od"), file("od/old"), file("stay"), dir("plain"), file("plain/p")]);
    const upper = await tree([
      { name: "gone", type: "3", devmajor: 0, devminor: 0 },
      { name: "dev", type: "3", devmajor: 1, devminor: 3 },
      opaque("od", 6),
      file("od/new"),
      opaque("fresh", 8),
      { ...dir("plain", 2), pax: [["SCHILY.xattr.trusted.overlay.opaque", "n"]] },
    ]);
    assert.deepEqual(render(applyLayer(lower, upper, { whiteoutSpec: "overlayfs" })), [
      "/ dir 755 t=0",
      "/dev chr 644 t=0 1:3",
      "/fresh dir 755 t=8 xattrs=user.keep",
      "/od dir 755 t=6 xattrs=user.keep",
      "/plain dir 755 t=2 xattrs=trusted.overlay.opaque",
      "/stay reg 644 t=1 size=1",
      "/od/new reg 644 t=1 size=1",
      "/plain/p reg 644 t=1 size=1",
    ]);
  });

  test("under the OCI spec a 0:0 char device is an ordinary device", async () => {
    const lower = await tree([file("gone")]);
    const upper = await tree([{ name: "gone", type: "3", devmajor: 0, devminor: 0 }]);
    assert.deepEqual(render(applyLayer(lower, upper)), ["/ dir 755 t=0", "/gone chr 644 t=0 0:0"]);
    assert.equal(whiteoutKind(upper.inode.children![0], "overlayfs"), "overlayfs-removal");
    assert.equal(whiteoutKind(upper.inode.children![0], "oci"), undefined);
  });
});

describe("mergeLayers", () => {
  test("the first layer is taken as is; later layers apply in order", async () => {
    const l0 = await tree([file(".wh.base-whiteout", ""), file("a", "0"), file("b", "0")]);
    const l1 = await tree([file(".wh.a", ""), file("b", "11")]);
    const l2 = await tree([file("a", "222"), file(".wh.b", "")]);
    assert.deepEqual(render(mergeLayers([l0, l1, l2])), [
      "/ dir 755 t=0",
      "/.wh.base-whiteout reg 644 t=1 size=0",
      "/a reg 644 t=1 size=3",
    ]);
    assert.throws(() => mergeLayers([]), RangeError);
    assert.equal(Buffer.from(mergeLayers([l0]).name).toString(), "/");
  });
});
