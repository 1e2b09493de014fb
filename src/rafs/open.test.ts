import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { detectRafsVersion, openRafs, walkRafs, RAFS_V5_MAGIC } from "./open.ts";
import { FormatError } from "../internal/errors.ts";
import { fixture } from "../../test/support/paths.ts";

interface TreeNode {
  type: string;
  name: string;
  target?: string;
  contents?: TreeNode[];
}

const V6 = new Uint8Array(fs.readFileSync(fixture("rafs-v6-2.2.boot")));

test("detectRafsVersion reads the v5 magic at offset 0", () => {
  assert.equal(detectRafsVersion(V6), 6);
  assert.equal(detectRafsVersion(new Uint8Array([0x53, 0x46, 0x41, 0x52])), 5);
  assert.equal(RAFS_V5_MAGIC, 0x52414653);
  assert.equal(detectRafsVersion(new Uint8Array(3)), 6);
  assert.equal(detectRafsVersion(new Uint8Array(0)), 6);
});

test("openRafs opens the v6 fixture as v6", () => {
  const img = openRafs(V6);
  assert.equal(img.superBlock.version, 6);
  assert.deepEqual([...walkRafs(img)].map((e) => [e.path, e.inode.ino, e.parentIno]), [["/", 128, 128], ["/lib.rs", 133, 128], ["/sync_io.rs", 136, 128]]);
  assert.throws(() => openRafs(new Uint8Array(100)), FormatError);
});

test("openRafs opens sha256-nocompress-repeatable as v5 and walkRafs matches the expected tree", () => {
  const bytes = new Uint8Array(fs.readFileSync(fixture("sha256-nocompress-repeatable")));
  const img = openRafs(bytes);
  assert.equal(img.superBlock.version, 5);
  const entries = [...walkRafs(img)];
  // The `.result` file starts with `tree -a -J -v` output: compare every path, its type and symlink target.
  const result = fs.readFileSync(fixture("sha256-nocompress-repeatable.result"), "utf8").split("\n");
  const jsonEnd = result.findIndex((l) => /^[0-9a-f]{32}\s/.test(l));
  const tree = JSON.parse(result.slice(0, jsonEnd).join("\n")) as TreeNode[];
  const expected: string[] = [];
  const flatten = (n: TreeNode, prefix: string) => {
    const p = prefix === "" && n.name === "" ? "/" : `${prefix === "/" ? "" : prefix}/${n.name}`;
    expected.push(`${n.type} ${p}${n.target !== undefined ? ` -> ${n.target}` : ""}`);
    for (const c of n.contents ?? []) flatten(c, p);
  };
  flatten(tree[0], "");
  const kindName = { dir: "directory", reg: "file", symlink: "link" } as Record<string, string>;
  const walked = entries.map((e) => `${kindName[e.inode.kind]} ${e.path}${e.inode.kind === "symlink" ? ` -> ${Buffer.from(img.readlink(e.inode)).toString()}` : ""}`);
  assert.equal(walked.length, 54);
  assert.deepEqual([...walked].sort(), [...expected].sort());
  assert.equal(new Set(entries.map((e) => e.path)).size, entries.length, "paths are unique");
  for (const e of entries) {
    if (e.path === "/") continue;
    assert.equal(img.lookup(e.path)!.ino, e.inode.ino, e.path);
  }
  // Deterministic order.
  assert.deepEqual([...walkRafs(img)].map((e) => e.path), entries.map((e) => e.path));
});
