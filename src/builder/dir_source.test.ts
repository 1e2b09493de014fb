import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Buffer } from "node:buffer";
import { InvalidInputError } from "../internal/errors.ts";
import { native } from "../internal/native.ts";
import type { TreeEntry, TreeInode } from "../rafs/model.ts";
import { readTar } from "../tar/reader.ts";
import { splitDev, treeFromDirectory } from "./dir_source.ts";
import { buildTreeFromTar, walk } from "./tree.ts";

const isRoot = process.getuid?.() === 0;
const CAP = Uint8Array.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, ...new Array(12).fill(0)]);

function render(root: TreeEntry, withTimes = true): string[] {
  return [...walk(root)].map(({ path: p, entry: { inode } }) => {
    let extra = "";
    if (inode.kind === "reg") extra = ` size=${inode.size}`;
    if (inode.kind === "symlink") extra = ` -> ${Buffer.from(inode.symlinkTarget!).toString("hex")}`;
    if (inode.kind === "chr" || inode.kind === "blk") extra = ` ${inode.rdevMajor}:${inode.rdevMinor}`;
    for (const [k, v] of [...inode.xattrs].sort()) extra += ` ${k}=${Buffer.from(v).toString("hex")}`;
    const t = withTimes ? ` t=${inode.mtime}.${inode.mtimeNsec}` : "";
    return `${p} ${inode.kind} ${inode.mode.toString(8)} ${inode.uid}:${inode.gid}${t}${extra}`;
  });
}

function inodeAt(root: TreeEntry, p: string): TreeInode {
  const w = [...walk(root)].find((x) => x.path === p);
  assert.ok(w, `${p} missing`);
  return w.entry.inode;
}

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-dir-source-"));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A directory with every kind the current user can create. */
function populate(root: string): void {
  fs.mkdirSync(path.join(root, "dir/sub"), { recursive: true });
  fs.writeFileSync(path.join(root, "dir/sub/data"), "0123456789");
  fs.writeFileSync(path.join(root, "suid"), "s");
  fs.chmodSync(path.join(root, "suid"), 0o4755);
  fs.mkdirSync(path.join(root, "tmp"));
  fs.chmodSync(path.join(root, "tmp"), 0o1777);
  fs.mkdirSync(path.join(root, "sgid"));
  fs.chmodSync(path.join(root, "sgid"), 0o2750);
  fs.linkSync(path.join(root, "dir/sub/data"), path.join(root, "link1"));
  fs.linkSync(path.join(root, "dir/sub/data"), path.join(root, "dir/link2"));
  fs.symlinkSync(Buffer.from([0x2e, 0x2e, 0x2f, 0xff]), path.join(root, "dir/sym"));
  execFileSync("mkfifo", [path.join(root, "fifo")]);
  native.setXattr(path.join(root, "suid"), "user.b", Buffer.from([0x00, 0xff]));
  native.setXattr(path.join(root, "suid"), "user.a", Buffer.from("A"));
  native.setXattr(path.join(root, "dir"), "user.onDir", Buffer.from("d"));
  if (isRoot) {
    execFileSync("mknod", [path.join(root, "chr"), "c", "4095", "1048575"]);
    execFileSync("mknod", [path.join(root, "blk"), "b", "259", "300"]);
    execFileSync("setfattr", ["-n", "security.capability", "-v", "0x" + Buffer.from(CAP).toString("hex"), path.join(root, "suid")]);
  }
  fs.utimesSync(path.join(root, "suid"), 1_234_567_890.5, 1_234_567_890.5);
  fs.utimesSync(root, 1_111_111_111, 1_111_111_111);
}

describe("treeFromDirectory", () => {
  test("every type, modes, xattrs, hardlinks, sorted children; files in traversal order", async (t) => {
    const root = fs.mkdtempSync(path.join(tmp, "all-"));
    populate(root);
    const { root: tree, files } = await treeFromDirectory(root);
    const lines = render(tree, false);
    const uid = process.getuid!();
    const gid = process.getgid!();
    const ids = `${uid}:${gid}`;
    const expected = [
      `/ dir 40700 ${ids}`,
      ...(isRoot ? [`/blk blk 60644 ${ids} 259:300`, `/chr chr 20644 ${ids} 4095:1048575`] : []),
      `/dir dir 40755 ${ids} user.onDir=64`,
      `/fifo fifo 10644 ${ids}`,
      `/link1 reg 100644 ${ids} size=10`,
      `/sgid dir 42750 ${ids}`,
      `/suid reg 104755 ${ids} size=1${isRoot ? " security.capability=" + Buffer.from(CAP).toString("hex") : ""} user.a=41 user.b=00ff`,
      `/tmp dir 41777 ${ids}`,
      `/dir/link2 reg 100644 ${ids} size=10`,
      `/dir/sub dir 40755 ${ids}`,
      `/dir/sym symlink 120777 ${ids} -> 2e2e2fff`,
      `/dir/sub/data reg 100644 ${ids} size=10`,
    ];
    assert.deepEqual(lines, expected);
    if (!isRoot) t.diagnostic("skipped char/block devices and security.capability: not root");

    const data = inodeAt(tree, "/dir/sub/data");
    assert.equal(inodeAt(tree, "/link1"), data);
    assert.equal(inodeAt(tree, "/dir/link2"), data);
    assert.deepEqual(
      files.map((f) => [f.path, f.hostPath.toString()]),
      [
        ["/link1", path.join(root, "link1")],
        ["/suid", path.join(root, "suid")],
      ],
    );
    assert.equal(files[0].inode, data);
    assert.deepEqual([tree.inode.mtime, tree.inode.mtimeNsec], [1_111_111_111, 0]);
    assert.deepEqual([inodeAt(tree, "/suid").mtime, inodeAt(tree, "/suid").mtimeNsec], [1_234_567_890, 500_000_000]);
    assert.equal(Buffer.from(tree.name).toString(), "/");
  });

  test("matches the tree built from a GNU tar of the same directory", async () => {
    const root = fs.mkdtempSync(path.join(tmp, "vs-tar-"));
    populate(root);
    const tarFile = path.join(tmp, `${path.basename(root)}.tar`);
    execFileSync("tar", ["-C", root, "--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-cf", tarFile, "."]);
    const fromTar = await buildTreeFromTar(readTar(fs.createReadStream(tarFile)));
    const { root: fromDir } = await treeFromDirectory(root);
    assert.deepEqual(render(fromDir), render(fromTar));
    assert.equal(inodeAt(fromTar, "/link1"), inodeAt(fromTar, "/dir/link2"));
  });

  test("whiteouts are dropped (OCI by default; overlayfs keeps the opaque dir)", async (t) => {
    const root = fs.mkdtempSync(path.join(tmp, "wh-"));
    fs.writeFileSync(path.join(root, ".wh.gone"), "");
    fs.mkdirSync(path.join(root, ".wh.dir"));
    fs.writeFileSync(path.join(root, ".wh.dir/x"), "");
    fs.mkdirSync(path.join(root, "d"));
    fs.writeFileSync(path.join(root, "d/.wh..wh..opq"), "");
    fs.writeFileSync(path.join(root, "d/kept"), "");
    fs.mkdirSync(path.join(root, "opaque"));
    const oci = await treeFromDirectory(root);
    assert.deepEqual(
      [...walk(oci.root)].map((w) => w.path),
      ["/", "/d", "/opaque", "/d/kept"],
    );
    const kept = await treeFromDirectory(root, { dropWhiteouts: false });
    assert.equal([...walk(kept.root)].length, 8);
    if (!isRoot) {
      t.diagnostic("skipped overlayfs whiteouts (char device 0:0, trusted.* xattr): not root");
      return;
    }
    execFileSync("mknod", [path.join(root, "removed"), "c", "0", "0"]);
    native.setXattr(path.join(root, "opaque"), "trusted.overlay.opaque", Buffer.from("y"));
    const ovl = await treeFromDirectory(root, { whiteoutSpec: "overlayfs" });
    assert.deepEqual(
      [...walk(ovl.root)].map((w) => w.path),
      ["/", "/.wh.dir", "/.wh.gone", "/d", "/opaque", "/.wh.dir/x", "/d/.wh..wh..opq", "/d/kept"],
    );
    assert.deepEqual(inodeAt(ovl.root, "/opaque").xattrs.get("trusted.overlay.opaque"), new Uint8Array(Buffer.from("y")));
  });

  test("non-UTF-8 names: kept as bytes without xattrs, a clear error with xattrs", async () => {
    const root = fs.mkdtempSync(path.join(tmp, "bytes-"));
    const name = Buffer.from([0x66, 0xff, 0xfe]);
    fs.writeFileSync(Buffer.concat([Buffer.from(root + "/"), name]), "z");
    const { root: tree, files } = await treeFromDirectory(root, { xattrs: false });
    assert.deepEqual(Buffer.from(tree.inode.children![0].name), name);
    assert.deepEqual(files[0].hostPath, Buffer.concat([Buffer.from(root + "/"), name]));
    await assert.rejects(treeFromDirectory(root), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match(err.message, /not valid UTF-8/);
      return true;
    });
  });

  test("not a directory", async () => {
    const f = path.join(tmp, "plain-file");
    fs.writeFileSync(f, "");
    await assert.rejects(treeFromDirectory(f), InvalidInputError);
  });
});

test("splitDev follows glibc major()/minor() for 64-bit dev_t", () => {
  const makedev = (major: bigint, minor: bigint) =>
    ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  for (const [ma, mi] of [
    [0n, 0n],
    [8n, 1n],
    [259n, 300n],
    [4095n, 1048575n],
    [0xfffff123n, 0xfedcba98n],
    [0xffffffffn, 0xffffffffn],
  ]) {
    assert.deepEqual(splitDev(makedev(ma, mi)), [Number(ma), Number(mi)]);
  }
  assert.deepEqual(splitDev(0x0801n), [8, 1]);
});
