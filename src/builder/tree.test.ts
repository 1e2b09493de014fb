import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Buffer } from "node:buffer";
import { InvalidInputError, NotFoundError, UnsafePathError } from "../internal/errors.ts";
import type { TreeEntry, TreeInode } from "../rafs/model.ts";
import { buildTar, chunked, type RawTarEntry } from "../tar/_testing.ts";
import { readTar } from "../tar/reader.ts";
import { fixture } from "../../test/support/paths.ts";
import {
  ROOT_NAME,
  buildTreeFromTar,
  cloneTree,
  countNodes,
  isOpaque,
  isWhiteout,
  newDirInode,
  sortTree,
  walk,
  type TarTreeOptions,
} from "./tree.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** "path kind mode(octal) uid:gid mtime [extra]" per entry in walk order. */
function render(root: TreeEntry): string[] {
  return [...walk(root)].map(({ path, entry: { inode } }) => {
    let extra = "";
    if (inode.kind === "reg") extra = ` size=${inode.size}`;
    if (inode.kind === "symlink") extra = ` -> ${Buffer.from(inode.symlinkTarget!).toString()}`;
    if (inode.kind === "chr" || inode.kind === "blk") extra = ` ${inode.rdevMajor}:${inode.rdevMinor}`;
    return `${path} ${inode.kind} ${inode.mode.toString(8)} ${inode.uid}:${inode.gid} ${inode.mtime}${extra}`;
  });
}

function refs(root: TreeEntry): Map<TreeInode, string[]> {
  const m = new Map<TreeInode, string[]>();
  for (const { path, entry } of walk(root)) m.set(entry.inode, [...(m.get(entry.inode) ?? []), path]);
  return m;
}

async function treeOf(entries: RawTarEntry[], options?: TarTreeOptions): Promise<TreeEntry> {
  return buildTreeFromTar(readTar(chunked(buildTar(entries), 777)), options);
}

describe("buildTreeFromTar", () => {
  test("upstream all-entry-type.tar: 4 links share one inode, the symlink has its own", async () => {
    const data: string[] = [];
    const root = await buildTreeFromTar(readTar(fs.createReadStream(fixture("all-entry-type.tar"))), {
      onFileData: async (inode, body, size, path) => {
        const parts: Uint8Array[] = [];
        for await (const c of body) parts.push(c);
        data.push(`${path}:${size}:${Buffer.concat(parts).length}`);
        assert.equal(inode.kind, "reg");
      },
    });
    assert.deepEqual(
      [...walk(root)].map((w) => w.path),
      [
        "/",
        "/tar",
        "/tar/dir1",
        "/tar/dir2",
        "/tar/dir1/dir3",
        "/tar/dir1/hardlink2.txt",
        "/tar/dir1/dir3/hardlink1.txt",
        "/tar/dir1/dir3/xfile.txt",
        "/tar/dir2/hardlink3.txt",
        "/tar/dir2/symlink1.txt",
      ],
    );
    assert.deepEqual(data, ["tar/dir1/dir3/hardlink1.txt:15:15"]);
    const shared = [...refs(root).values()].find((paths) => paths.length > 1);
    assert.deepEqual(shared?.sort(), [
      "/tar/dir1/dir3/hardlink1.txt",
      "/tar/dir1/dir3/xfile.txt",
      "/tar/dir1/hardlink2.txt",
      "/tar/dir2/hardlink3.txt",
    ]);
    assert.equal(refs(root).size, 7); // 10 entries, 4 of them one inode
    assert.equal(countNodes(root), 10);
    const sym = [...walk(root)].find((w) => w.path === "/tar/dir2/symlink1.txt")!.entry.inode;
    assert.equal(Buffer.from(sym.symlinkTarget!).toString(), "../dir1/dir3/file1.txt");
    assert.equal(root.inode.mode, 0o40755);
    assert.equal(Buffer.from(root.name).toString(), "/");
  });

  test("implicit parents, later entries replace earlier ones, dir over dir keeps children", async () => {
    const root = await treeOf([
      { name: "a/b/c", data: "one", mtime: 10 },
      { name: "a/", type: "5", mode: 0o700, uid: 1, gid: 2, mtime: 20 },
      { name: "a/b/c", data: "second", mtime: 30 }, // file over file
      { name: "x/y", data: "y" },
      { name: "x", data: "file now" }, // file over dir: subtree dropped
      { name: "f", data: "f" },
      { name: "f/", type: "5", mode: 0o711 }, // dir over file
      { name: "f/g", type: "2", linkname: "../a" },
    ]);
    assert.deepEqual(render(root), [
      "/ dir 40755 0:0 0",
      "/a dir 40700 1:2 20",
      "/f dir 40711 0:0 0",
      "/x reg 100644 0:0 0 size=8",
      "/a/b dir 40755 0:0 0",
      "/a/b/c reg 100644 0:0 30 size=6", // a's whole subtree before f's children (§3.14(b))
      "/f/g symlink 120644 0:0 0 -> ../a",
    ]);
  });

  test("a replaced parent directory is not reused for the following entries", async () => {
    // The builder caches the previous entry's parent directory; replacing it must drop the cache.
    const root = await treeOf([
      { name: "d/", type: "5" },
      { name: "d/one", data: "1" },
      { name: "d", data: "file" }, // file over dir
      { name: "d/", type: "5", mode: 0o700 }, // dir over file: a fresh, empty directory
      { name: "d/two", data: "22" },
    ]);
    assert.deepEqual(render(root), ["/ dir 40755 0:0 0", "/d dir 40700 0:0 0", "/d/two reg 100644 0:0 0 size=2"]);
    await assert.rejects(
      treeOf([
        { name: "e/one", data: "1" },
        { name: "e", data: "file" },
        { name: "e/two", data: "2" },
      ]),
      InvalidInputError,
    );
  });

  test("root attributes from a ./ entry; absolute names land below the root", async () => {
    const root = await treeOf([
      { name: "/abs/file", data: "1" },
      { name: "./", type: "5", mode: 0o750, uid: 3, gid: 4, mtime: 99 },
      { name: "./rel", type: "6", mode: 0o600 },
    ]);
    assert.deepEqual(render(root), [
      "/ dir 40750 3:4 99",
      "/abs dir 40755 0:0 0",
      "/rel fifo 10600 0:0 0",
      "/abs/file reg 100644 0:0 0 size=1",
    ]);
  });

  test("every kind, modes with setuid/setgid/sticky, xattrs, devices", async () => {
    const cap = Uint8Array.from([1, 0, 0, 2, 0, 0x20, 0, 0, ...new Array(12).fill(0)]);
    const root = await treeOf([
      { name: "suid", mode: 0o4755, data: "s", pax: [["SCHILY.xattr.security.capability", cap]] },
      { name: "sgid", type: "5", mode: 0o2775 },
      { name: "tmp", type: "5", mode: 0o1777 },
      { name: "null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "sda", type: "4", devmajor: 8, devminor: 0, mode: 0o660 },
    ]);
    assert.deepEqual(render(root), [
      "/ dir 40755 0:0 0",
      "/null chr 20666 0:0 0 1:3",
      "/sda blk 60660 0:0 0 8:0",
      "/sgid dir 42775 0:0 0",
      "/suid reg 104755 0:0 0 size=1",
      "/tmp dir 41777 0:0 0",
    ]);
    const suid = root.inode.children!.find((c) => Buffer.from(c.name).toString() === "suid")!;
    assert.deepEqual(suid.inode.xattrs.get("security.capability"), cap);
  });

  test("long and non-ASCII names, thousands of entries", async () => {
    const seg255 = "ü".repeat(127) + "z";
    const entries: RawTarEntry[] = [{ name: `${"d".repeat(150)}/${seg255}`, data: "deep" }];
    for (let i = 0; i < 5000; i++) entries.push({ name: `many/${String(i).padStart(4, "0")}`, data: String(i) });
    let calls = 0;
    const root = await treeOf(entries, { onFileData: () => void calls++ });
    assert.equal(calls, 5001);
    assert.equal(countNodes(root), 1 + 2 + 1 + 5000);
    const deep = [...walk(root)].find((w) => w.entry.inode.kind === "reg" && w.entry.name.length === 255);
    assert.equal(deep?.path, `/${"d".repeat(150)}/${seg255}`);
    const many = root.inode.children!.find((c) => Buffer.from(c.name).toString() === "many")!;
    assert.equal(Buffer.from(many.inode.children![4999].name).toString(), "4999");
  });

  test("whiteouts are ordinary entries in a single-layer tree", async () => {
    const root = await treeOf([
      { name: "d/.wh.gone", data: "" },
      { name: "d/.wh..wh..opq", data: "" },
    ]);
    assert.deepEqual(render(root), [
      "/ dir 40755 0:0 0",
      "/d dir 40755 0:0 0",
      "/d/.wh..wh..opq reg 100644 0:0 0 size=0",
      "/d/.wh.gone reg 100644 0:0 0 size=0",
    ]);
    assert.equal(isWhiteout(".wh.gone"), true);
    assert.equal(isWhiteout(enc(".wh..wh..opq")), true);
    assert.equal(isOpaque(".wh..wh..opq"), true);
    assert.equal(isOpaque(".wh.gone"), false);
    assert.equal(isWhiteout("gone.wh."), false);
    assert.equal(isWhiteout(Uint8Array.of(0x2e, 0x77, 0x68, 0x2e, 0xff)), false); // not UTF-8, as upstream
  });

  test("hostile input", async () => {
    const cases: [string, RawTarEntry[], new (...args: never[]) => Error, RegExp][] = [
      ["dotdot", [{ name: "../x", data: "1" }], UnsafePathError, /escapes the root/],
      ["nested dotdot", [{ name: "a/../../x", data: "1" }], UnsafePathError, /escapes the root/],
      ["NUL in pax path", [{ name: "x", pax: [["path", "a\0b"]] }], UnsafePathError, /NUL/],
      ["missing hardlink target", [{ name: "l", type: "1", linkname: "nope" }], NotFoundError, /nope/],
      [
        "hardlink to a later entry",
        [
          { name: "l", type: "1", linkname: "f" },
          { name: "f", data: "1" },
        ],
        NotFoundError,
        /"f"/,
      ],
      ["hardlink escaping", [{ name: "l", type: "1", linkname: "../etc/passwd" }], UnsafePathError, /escapes/],
      ["hardlink to dir", [{ name: "d/", type: "5" }, { name: "l", type: "1", linkname: "d" }], InvalidInputError, /directory|dir/],
      [
        "hardlink to symlink",
        [
          { name: "s", type: "2", linkname: "x" },
          { name: "l", type: "1", linkname: "s" },
        ],
        InvalidInputError,
        /symlink/,
      ],
      ["entry below a file", [{ name: "f", data: "1" }, { name: "f/x", data: "2" }], InvalidInputError, /not a directory/],
      ["file as root", [{ name: "./", type: "0" }], InvalidInputError, /root must be a directory/],
    ];
    for (const [what, entries, cls, re] of cases) {
      await assert.rejects(treeOf(entries), (err: unknown) => {
        assert.ok(err instanceof cls, `${what}: ${String(err)}`);
        assert.match((err as Error).message, re, what);
        return true;
      });
    }
  });

  test("a hardlink keeps the old inode when its target path is replaced later", async () => {
    const root = await treeOf([
      { name: "a", data: "old" },
      { name: "b", type: "1", linkname: "./a" },
      { name: "c", type: "1", linkname: "/a" },
      { name: "a", data: "new!" },
    ]);
    const [a, b, c] = root.inode.children!;
    assert.equal(a.inode.size, 4);
    assert.equal(b.inode, c.inode);
    assert.notEqual(a.inode, b.inode);
    assert.equal(b.inode.size, 3);
  });
});

describe("tree utilities", () => {
  const mk = (name: string, inode: TreeInode): TreeEntry => ({ name: enc(name), inode });
  const file = (): TreeInode => ({ ...newDirInode(), kind: "reg", mode: 0o100644, children: undefined, size: 1 });

  test("sortTree orders by name bytes, walk follows spec §3.14(b)", () => {
    const d1 = newDirInode();
    const d2 = newDirInode();
    const d3 = newDirInode();
    d1.children = [mk("z", file()), mk("d3", d3), mk("a", file())];
    d3.children = [mk("deep", file())];
    d2.children = [mk("x", file())];
    const root: TreeEntry = {
      name: ROOT_NAME,
      inode: { ...newDirInode(), children: [mk("é", file()), mk("d2", d2), mk("Z", file()), mk("d1", d1), mk("b", file())] },
    };
    sortTree(root);
    assert.deepEqual(
      [...walk(root)].map((w) => w.path),
      ["/", "/Z", "/b", "/d1", "/d2", "/é", "/d1/a", "/d1/d3", "/d1/z", "/d1/d3/deep", "/d2/x"],
    );
    assert.equal(countNodes(root), 11);
  });

  test("cloneTree keeps hardlinks shared and is independent of the source", () => {
    const shared = file();
    const dir = newDirInode();
    dir.children = [mk("h2", shared)];
    const root: TreeEntry = { name: ROOT_NAME, inode: { ...newDirInode(), children: [mk("h1", shared), mk("d", dir)] } };
    shared.xattrs.set("user.a", enc("1"));
    const copy = cloneTree(root);
    const h1 = copy.inode.children![0].inode;
    const h2 = copy.inode.children![1].inode.children![0].inode;
    assert.equal(h1, h2);
    assert.notEqual(h1, shared);
    h1.xattrs.set("user.b", enc("2"));
    copy.inode.children![1].inode.children!.pop();
    assert.equal(shared.xattrs.size, 1);
    assert.equal(dir.children.length, 1);
    assert.deepEqual(render(copy).slice(0, 2), render(root).slice(0, 2));
  });
});
