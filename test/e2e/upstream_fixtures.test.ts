/**
 * Issue "what must be shown" #1 through the CLI: `inspect --json` of both upstream v5
 * bootstraps lists exactly the tree of their `.result` files (paths, types, symlink
 * targets), `unpack` reproduces their md5 sums, and `check` verifies them with the blob;
 * the v6 fixture passes `check` with its blob.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fixture } from "../support/paths.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk } from "../support/cli.ts";
import { parseResult } from "../../src/rafs/_v5_testing.ts";

const V5 = ["sha256-nocompress-repeatable", "blake3-lz4_block-non_repeatable"];
const V5_BLOB = "7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00";
let work: string;
let blobDir: string;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-upstream-" });
  blobDir = path.join(work, "blobs");
  await fs.mkdir(blobDir);
  await fs.symlink(fixture(`blobs/${V5_BLOB}`), path.join(blobDir, V5_BLOB));
});
after(async () => {
  if (work) await removeTree(work);
});

interface TreeNode {
  type: string;
  name: string;
  target?: string;
  contents?: TreeNode[];
}

/** Flattens `tree -J` output into "type path[ -> target]" lines, sorted. */
function flattenTree(root: TreeNode): string[] {
  const out: string[] = [];
  const visit = (n: TreeNode, p: string) => {
    for (const c of n.contents ?? []) {
      const cp = `${p}/${c.name}`;
      out.push(`${c.type === "link" ? "link" : c.type} ${cp}${c.target !== undefined ? ` -> ${c.target}` : ""}`);
      visit(c, cp);
    }
  };
  visit(root, "");
  return out.sort();
}

const TYPE: Record<string, string> = { dir: "directory", reg: "file", symlink: "link" };

for (const name of V5) {
  test(`${name}: inspect lists the .result tree, unpack reproduces its md5 sums, check passes`, async () => {
    const expected = parseResult(await fs.readFile(fixture(`${name}.result`), "utf8"));
    const boot = fixture(name);
    const nodes = (await cliOk(["inspect", boot, "--json"])).json.nodes as { path: string; type: string; target?: string }[];
    const listed = nodes
      .filter((n) => n.path !== "/")
      .map((n) => `${TYPE[n.type] ?? n.type} ${n.path}${n.target !== undefined ? ` -> ${n.target}` : ""}`)
      .sort();
    assert.deepEqual(listed, flattenTree(expected.tree[0] as TreeNode));

    const out = path.join(work, name);
    await cliOk(["unpack", boot, "--blob-dir", blobDir, "--output", out]);
    const sums: string[] = [];
    for (const n of nodes.filter((x) => x.type === "reg")) {
      const data = await fs.readFile(path.join(out, n.path));
      sums.push(`${crypto.createHash("md5").update(data).digest("hex")}  ${n.path}`);
    }
    assert.equal(sums.length, 23);
    assert.deepEqual(sums.sort(), [...expected.md5Lines].sort());
    await cliOk(["check", boot, "--blob-dir", blobDir]);
  });
}

test("rafs-v6-2.2.boot checks clean with its blob (ids, ToC, every chunk digest)", async () => {
  const r = (await cliOk(["check", fixture("rafs-v6-2.2.boot"), "--blob-dir", fixture("blobs"), "--json"])).json;
  assert.equal(r.ok, true);
  assert.deepEqual(r.blobs, [{ blobId: "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef", chunks: 2, verified: true }]);
});
