/**
 * Issue "what must be shown" #3: layered textures (whiteouts, opaque dirs, hardlinks,
 * replacements) built as a parent chain and as separate layers merged by `merge`, both
 * mounted by the kernel equal the tree overlay semantics give; chunks shared across
 * layers (and with a chunk dictionary) are stored once.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { layeredTextures, file, random, text, type LayerSpec } from "../textures/spec.ts";
import { writeTar } from "../textures/generate.ts";
import { mergeLayers } from "../support/overlay.ts";
import { canMount, haveErofsUtils, mountErofs, skipReason } from "../support/oracles.ts";
import { diffSnapshots, snapshotFromSpec, snapshotTree } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk, runCli } from "../support/cli.ts";

const mountSkip = skipReason(haveErofsUtils(), canMount());
const layers = layeredTextures();
const expected = snapshotFromSpec(mergeLayers(layers), { form: "tar" });
let work: string;
let tars: string[];

before(async () => {
  work = await makeTempDir({ prefix: "nydus-layers-" });
  tars = [];
  for (const [i, l] of layers.entries()) {
    const t = path.join(work, `layer${i}.tar`);
    await writeTar(l, t);
    tars.push(t);
  }
});
after(async () => {
  if (work) await removeTree(work);
});

async function mountedDifferences(boot: string, blobs: string, dir: string): Promise<string[]> {
  await cliOk(["check", boot, "--blob-dir", blobs]);
  const views = path.join(dir, "views");
  await cliOk(["export", boot, "--blob-dir", blobs, "--cache-dir", views]);
  const ids: string[] = (await cliOk(["inspect", boot, "--json"])).json.blobs.map((b: { blobId: string }) => b.blobId);
  const m = await mountErofs(boot, ids.map((id) => path.join(views, `${id}.blob.data`)));
  try {
    return diffSnapshots(await snapshotTree(m.mountpoint), expected, { ignorePaths: ["/"] });
  } finally {
    await m.close();
  }
}

describe("multi-layer images", () => {
  test("parent-bootstrap chain equals overlay semantics", { skip: mountSkip }, async () => {
    const dir = path.join(work, "chain");
    const blobs = path.join(dir, "blobs");
    let parent: string | undefined;
    for (const [i, t] of tars.entries()) {
      const boot = path.join(dir, `layer${i}.boot`);
      await cliOk(["create", t, "--bootstrap", boot, "--blob-dir", blobs, ...(parent ? ["--parent-bootstrap", parent] : [])]);
      parent = boot;
    }
    assert.deepEqual(await mountedDifferences(parent!, blobs, dir), []);
  });

  test("separate layers merged with `merge` equal overlay semantics", { skip: mountSkip }, async () => {
    const dir = path.join(work, "merge");
    const blobs = path.join(dir, "blobs");
    const boots: string[] = [];
    for (const [i, t] of tars.entries()) {
      const boot = path.join(dir, `layer${i}.boot`);
      await cliOk(["create", t, "--bootstrap", boot, "--blob-dir", blobs]);
      boots.push(boot);
    }
    const merged = path.join(dir, "merged.boot");
    const out = (await cliOk(["merge", ...boots, "--bootstrap", merged, "--json"])).json;
    assert.ok(out.blobs.length >= 1 && out.blobs.length <= layers.length);
    assert.deepEqual(await mountedDifferences(merged, blobs, dir), []);
  });

  test("merge refuses layers with different chunk sizes", async () => {
    const dir = path.join(work, "mismatch");
    const a = path.join(dir, "a.boot");
    const b = path.join(dir, "b.boot");
    await cliOk(["create", tars[0]!, "--bootstrap", a, "--blob-dir", path.join(dir, "blobs")]);
    await cliOk(["create", tars[1]!, "--bootstrap", b, "--blob-dir", path.join(dir, "blobs"), "--chunk-size", "0x10000"]);
    const r = await runCli(["merge", a, b, "--bootstrap", path.join(dir, "m.boot")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /chunk size/);
    await assert.rejects(fs.stat(path.join(dir, "m.boot")));
  });
});

describe("chunks shared across layers and images are stored once", () => {
  const shared = random(3 * 65536 + 100, 77);
  const lower: LayerSpec = { name: "lower", entries: [file("base/data.bin", shared), file("base/other", text("lower only\n"))] };
  const upper: LayerSpec = { name: "upper", entries: [file("app/copy.bin", shared), file("app/new.bin", random(2 * 65536, 78))] };
  const chunkArgs = ["--chunk-size", "0x10000"];

  test("an upper layer built on its parent references the parent's chunks", async () => {
    const dir = path.join(work, "dedup");
    const blobs = path.join(dir, "blobs");
    await fs.mkdir(dir, { recursive: true });
    await writeTar(lower, path.join(dir, "lower.tar"));
    await writeTar(upper, path.join(dir, "upper.tar"));
    const lo = (await cliOk(["create", path.join(dir, "lower.tar"), "--bootstrap", path.join(dir, "lower.boot"), "--blob-dir", blobs, ...chunkArgs, "--json"])).json;
    const up = (await cliOk(["create", path.join(dir, "upper.tar"), "--bootstrap", path.join(dir, "upper.boot"), "--blob-dir", blobs, "--parent-bootstrap", path.join(dir, "lower.boot"), ...chunkArgs, "--json"])).json;
    assert.equal(lo.stats.storedChunks, 5, "4 chunks of data.bin + 1 of other");
    assert.equal(up.stats.dedupedChunks, 4, "copy.bin is entirely in the parent's blob");
    assert.equal(up.stats.storedChunks, 2, "only new.bin is stored");
    assert.equal(up.blobs.length, 2);
    const copy = (await cliOk(["inspect", path.join(dir, "upper.boot"), "--path", "/app/copy.bin", "--json"])).json.nodes[0];
    assert.ok(copy.chunks.every((c: { blobId: string }) => c.blobId === lo.blobId));
    await cliOk(["check", path.join(dir, "upper.boot"), "--blob-dir", blobs]);
  });

  test("--chunk-dict reuses another image's chunks and keeps only the blobs used", async () => {
    const dir = path.join(work, "dict");
    const blobs = path.join(dir, "blobs");
    await fs.mkdir(dir, { recursive: true });
    await writeTar(lower, path.join(dir, "lower.tar"));
    await writeTar(upper, path.join(dir, "upper.tar"));
    const dict = (await cliOk(["create", path.join(dir, "lower.tar"), "--bootstrap", path.join(dir, "dict.boot"), "--blob-dir", blobs, ...chunkArgs, "--json"])).json;
    const img = (await cliOk(["create", path.join(dir, "upper.tar"), "--bootstrap", path.join(dir, "img.boot"), "--blob-dir", blobs, "--chunk-dict", path.join(dir, "dict.boot"), ...chunkArgs, "--json"])).json;
    assert.equal(img.stats.dedupedChunks, 4);
    assert.equal(img.stats.storedChunks, 2);
    assert.deepEqual(img.blobs.map((b: { blobId: string }) => b.blobId).sort(), [dict.blobId, img.blobId].sort());
    const tree = (await cliOk(["inspect", path.join(dir, "img.boot"), "--json"])).json.nodes.map((n: { path: string }) => n.path);
    assert.ok(!tree.includes("/base/data.bin"), "a chunk dictionary lends chunks, not files");
    await cliOk(["check", path.join(dir, "img.boot"), "--blob-dir", blobs]);
  });
});
