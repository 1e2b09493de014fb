/** diffSnapshots must notice every kind of change it claims to compare, and honour its ignore options. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { chr, dir, file, hardlink, symlink, text, type LayerSpec } from "../textures/spec.ts";
import { materializeDir } from "../textures/generate.ts";
import { native } from "../../src/internal/native.ts";
import { diffSnapshots, snapshotFromSpec, snapshotTree } from "./tree_snapshot.ts";
import { withTempDir } from "./tmp.ts";

const skip = process.getuid?.() !== 0 ? "not root: devices and ownership need root" : false;

const layer: LayerSpec = {
  root: { mtime: 1_000_000 },
  entries: [
    dir("d", { mode: 0o755 }),
    file("d/f", text("hello\n"), { uid: 5, gid: 6, mtime: 1_500_000_000, mtimeNsec: 5, xattrs: { "user.a": "1" } }),
    hardlink("d/f2", "d/f"),
    symlink("d/s", "f"),
    chr("d/c", 4, 5),
    file("g", text("g")),
  ],
};

type Mutation = [name: string, change: (root: string) => void, expected: RegExp];

const mutations: Mutation[] = [
  ["content", (r) => fs.writeFileSync(path.join(r, "g"), "G"), /^\/g: sha256 /],
  ["size", (r) => fs.appendFileSync(path.join(r, "g"), "more"), /^\/g: size left=5 right=1$/],
  ["setuid", (r) => fs.chmodSync(path.join(r, "g"), 0o4644), /^\/g: mode left=0o4644 right=0o644$/],
  ["owner", (r) => fs.lchownSync(path.join(r, "g"), 9, 0), /^\/g: uid left=9 right=0$/],
  ["mtime", (r) => fs.utimesSync(path.join(r, "g"), 5, 5), /^\/g: mtime left=5 right=1700000000$/],
  ["xattr", (r) => native.setXattr(path.join(r, "d/f"), "user.a", new Uint8Array([0x32])), /^\/d\/f: xattr user\.a left=0x32 right=0x31$/],
  ["symlink", (r) => (fs.unlinkSync(path.join(r, "d/s")), fs.symlinkSync("other", path.join(r, "d/s"))), /^\/d\/s: size left=5 right=1$/],
  ["extra", (r) => fs.writeFileSync(path.join(r, "new"), ""), /^\/new: only in left \(file\)$/],
  ["missing", (r) => fs.unlinkSync(path.join(r, "g")), /^\/g: only in right \(file\)$/],
  ["type", (r) => (fs.unlinkSync(path.join(r, "g")), fs.mkdirSync(path.join(r, "g"))), /^\/g: type left=dir right=file$/],
  ["broken link", (r) => (fs.unlinkSync(path.join(r, "d/f2")), fs.writeFileSync(path.join(r, "d/f2"), "hello\n")), /nlink left=1 right=2/],
];

for (const [name, change, expected] of mutations) {
  test(`diffSnapshots notices: ${name}`, { skip }, async () => {
    await withTempDir(async (tmp) => {
      await materializeDir(layer, tmp + "/t");
      const spec = snapshotFromSpec(layer);
      assert.deepEqual(diffSnapshots(await snapshotTree(tmp + "/t"), spec), []);
      change(tmp + "/t");
      const d = diffSnapshots(await snapshotTree(tmp + "/t"), spec);
      assert.ok(d.some((l) => expected.test(l)), `expected ${expected} in:\n${d.join("\n")}`);
    });
  });
}

test("snapshot records rdev, nsec, hardlink groups; ignore options suppress differences", { skip }, async () => {
  await withTempDir(async (tmp) => {
    await materializeDir(layer, tmp + "/t");
    const snap = await snapshotTree(tmp + "/t", { nsec: true });
    const c = snap.get("/d/c")!;
    assert.deepEqual([c.type, c.rdevMajor, c.rdevMinor], ["chr", 4, 5]);
    assert.equal(snap.get("/d/f")!.mtimeNsec, 5);
    assert.equal(snap.get("/d/f2")!.linkGroup, "/d/f");
    assert.equal(snap.get("/d")!.nlink, 2);
    assert.equal(snap.get("/")!.nlink, 3);
    fs.chmodSync(tmp + "/t/g", 0o4644);
    fs.utimesSync(tmp + "/t/d", 7, 7);
    native.setXattr(tmp + "/t/g", "user.zz", new Uint8Array([1]));
    const spec = snapshotFromSpec(layer, { nsec: true });
    assert.equal(diffSnapshots(snap, spec).length, 0);
    const after = await snapshotTree(tmp + "/t", { nsec: true });
    assert.equal(diffSnapshots(after, spec).length, 3, diffSnapshots(after, spec).join("\n")); // mode of /g, mtime of /d, xattr of /g
    assert.deepEqual(diffSnapshots(after, spec, { modeMask: 0o777, ignore: ["mtime", "mtimeNsec"], ignoreXattrs: ["user.zz"] }), []);
    assert.deepEqual(diffSnapshots(after, spec, { ignorePaths: ["/g", "/d"], ignore: ["mtimeNsec"] }), []);
    assert.deepEqual(diffSnapshots(after, spec, { ignorePaths: [/^\/g$/], ignoreByType: { dir: ["mtime", "mtimeNsec"] } }), []);
    assert.equal(diffSnapshots(after, spec, { ignorePaths: ["/d/**", "/g"] }).length, 0);
  });
});
