/**
 * Issue "what must be shown" #2: for a texture covering every file type, built by our
 * CLI with each compressor × digester, fsck.erofs --extract succeeds and kernel mounts of
 * our output (blob-cache devices, and the --block image) equal the source tree.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { allTypesTexture } from "../textures/spec.ts";
import { materializeDir, writeTar } from "../textures/generate.ts";
import { canMount, fsckErofs, haveErofsUtils, mountErofs, skipReason } from "../support/oracles.ts";
import { diffSnapshots, snapshotTree, type TreeSnapshot } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk } from "../support/cli.ts";

const CHUNK = 0x10000;
const texture = allTypesTexture(CHUNK);
const erofsSkip = skipReason(haveErofsUtils());
const mountSkip = skipReason(haveErofsUtils(), canMount());

let work: string;
let srcDir: string;
let tarFile: string;
let source: TreeSnapshot;
let sourceTar: TreeSnapshot;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-e2e-" });
  srcDir = path.join(work, "src");
  tarFile = path.join(work, "layer.tar");
  await materializeDir(texture, srcDir);
  await writeTar(texture, tarFile);
  source = await snapshotTree(srcDir, { nsec: true });
  // A tar cannot carry sockets: the expected tree of the tar input is the source without them.
  sourceTar = new Map([...source].filter(([, e]) => e.type !== "socket"));
});
after(async () => {
  if (work) await removeTree(work);
});

/** Views of every blob, in device-table order. */
async function cacheViews(boot: string, blobs: string, dir: string): Promise<string[]> {
  const out = (await cliOk(["export", boot, "--blob-dir", blobs, "--cache-dir", dir, "--json"])).json;
  const inspect = (await cliOk(["inspect", boot, "--json"])).json;
  assert.ok(out, "export --json prints a result");
  return inspect.blobs.map((b: { blobId: string }) => path.join(dir, `${b.blobId}.blob.data`));
}

/** Differences between the source and a kernel/extracted tree, root attributes excepted (root mtime is 0 by design). */
function differences(actual: TreeSnapshot, opts: { tar: boolean; fsck?: boolean }): string[] {
  return diffSnapshots(actual, opts.tar ? sourceTar : source, {
    ignorePaths: ["/"],
    // fsck.erofs 1.5 --extract drops setuid/setgid, hardlinks and xattrs (notes §4): compare those on the kernel mount.
    ...(opts.fsck ? { ignore: ["mode", "nlink", "xattrs", "linkGroup", "mtimeNsec"] as const } : {}),
  });
}

const combos = [
  ["none", "blake3"],
  ["none", "sha256"],
  ["lz4_block", "blake3"],
  ["lz4_block", "sha256"],
  ["zstd", "blake3"],
  ["zstd", "sha256"],
] as const;

describe("our output against erofs-utils and the kernel", () => {
  for (const [compressor, digester] of combos) {
    test(`tar input, ${compressor}/${digester}: check, fsck --extract, kernel mount`, { skip: erofsSkip }, async () => {
      const dir = path.join(work, `${compressor}-${digester}`);
      const boot = path.join(dir, "image.boot");
      const blobs = path.join(dir, "blobs");
      const created = (await cliOk(["create", tarFile, "--bootstrap", boot, "--blob-dir", blobs, "--compressor", compressor, "--digester", digester, "--chunk-size", `0x${CHUNK.toString(16)}`, "--json"])).json;
      assert.ok(created.stats.dedupedChunks > 0, "the texture's duplicate content is stored once");
      await cliOk(["check", boot, "--blob-dir", blobs]);

      const views = await cacheViews(boot, blobs, path.join(dir, "views"));
      const extract = path.join(dir, "extract");
      const fsck = await fsckErofs(boot, views, { extractTo: extract });
      assert.equal(fsck.code, 0, fsck.stderr);
      const extracted = await snapshotTree(extract, { xattrs: false, nsec: false });
      assert.deepEqual(differences(extracted, { tar: true, fsck: true }), []);

      if (mountSkip) return;
      const m = await mountErofs(boot, views);
      try {
        assert.deepEqual(differences(await snapshotTree(m.mountpoint, { nsec: true }), { tar: true }), []);
      } finally {
        await m.close();
      }
    });
  }

  test("dir input (sockets included), zstd/blake3: kernel mount and the --block image equal the source", { skip: mountSkip }, async () => {
    const dir = path.join(work, "dir-input");
    const boot = path.join(dir, "image.boot");
    const blobs = path.join(dir, "blobs");
    await cliOk(["create", srcDir, "--type", "dir", "--bootstrap", boot, "--blob-dir", blobs, "--chunk-size", `0x${CHUNK.toString(16)}`]);
    await cliOk(["check", boot, "--blob-dir", blobs]);
    const views = await cacheViews(boot, blobs, path.join(dir, "views"));
    let m = await mountErofs(boot, views);
    try {
      assert.deepEqual(differences(await snapshotTree(m.mountpoint, { nsec: true }), { tar: false }), []);
    } finally {
      await m.close();
    }
    const block = path.join(dir, "image.erofs");
    await cliOk(["export", boot, "--blob-dir", blobs, "--block", block]);
    m = await mountErofs(block, []);
    try {
      assert.deepEqual(differences(await snapshotTree(m.mountpoint, { nsec: true }), { tar: false }), []);
    } finally {
      await m.close();
    }
    await fs.rm(dir, { recursive: true, force: true });
  });
});
