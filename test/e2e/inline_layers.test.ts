/**
 * The Nydus image layer format (`--blob-inline-meta --features blob-toc`, nydus-image.md
 * §2.2): each layer built alone into a blob that carries its own bootstrap and is named by
 * the SHA-256 of all its bytes; the layer bootstraps merged with the real blob ids give
 * the tree overlay semantics give, checked by `check` and a kernel mount.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { buildLayer, type BuildResult } from "../../src/builder/build.ts";
import { mergeBootstraps } from "../../src/builder/merge.ts";
import { readInlineBootstrap } from "../../src/blob/reader.ts";
import { INLINE_BLOB_ID_PLACEHOLDER } from "../../src/blob/writer.ts";
import { decodeTarHeader, decodeTocList } from "../../src/blob/format.ts";
import { fileReaderAt } from "../../src/io/reader_at.ts";
import { openRafs, walkRafs } from "../../src/rafs/open.ts";
import { layeredTextures, dir, symlink, type LayerSpec } from "../textures/spec.ts";
import { tarStream } from "../textures/generate.ts";
import { mergeLayers } from "../support/overlay.ts";
import { canMount, haveErofsUtils, mountErofs, skipReason } from "../support/oracles.ts";
import { diffSnapshots, snapshotFromSpec, snapshotTree } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk } from "../support/cli.ts";

const mountSkip = skipReason(haveErofsUtils(), canMount());
let work: string;
before(async () => {
  work = await makeTempDir({ prefix: "nydus-inline-" });
});
after(async () => {
  if (work) await removeTree(work);
});

const sha256File = (p: string) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");

async function buildInline(layer: LayerSpec, blobDir: string): Promise<BuildResult> {
  return buildLayer({ type: "tar", stream: tarStream(layer) }, { blobDir, inlineBootstrap: true, whiteoutSpec: "none", chunkSize: 0x10000 });
}

function tocNames(file: string): string[] {
  const bytes = fs.readFileSync(file);
  const tar = decodeTarHeader(bytes.subarray(bytes.length - 512), bytes.length - 512);
  assert.equal(tar.name, "rafs.blob.toc");
  const at = bytes.length - 512 - tar.size;
  return decodeTocList(bytes.subarray(at, at + tar.size), at).map((e) => e.name);
}

test("inline-meta layers: named by their SHA-256, carry their bootstrap, merge to the overlay tree", { skip: mountSkip }, async () => {
  const layers = layeredTextures();
  const blobs = path.join(work, "blobs");
  const results: BuildResult[] = [];
  for (const l of layers) results.push(await buildInline(l, blobs));
  for (const r of results) {
    const file = path.join(blobs, r.layerBlob!.digest);
    assert.equal(sha256File(file), r.layerBlob!.digest, "blob file named by the SHA-256 of all its bytes");
    assert.equal(fs.statSync(file).size, r.layerBlob!.size);
    assert.deepEqual(tocNames(file), ["image.blob", "blob.meta", "blob.meta.header", "blob.digest", "image.boot"]);
    const reader = await fileReaderAt(file);
    try {
      assert.deepEqual(Buffer.from(await readInlineBootstrap(reader, r.layerBlob!.digest)), Buffer.from(r.bootstrap));
    } finally {
      await reader.close();
    }
    // The embedded bootstrap names its own blob with the placeholder; the merge entry with the real id.
    assert.deepEqual(openRafs(r.bootstrap).blobs.map((b) => b.blobId), [INLINE_BLOB_ID_PLACEHOLDER]);
    assert.equal(r.blob!.blobId, r.layerBlob!.digest);
    assert.equal(r.blob!.compressedSize, r.layerBlob!.size);
  }
  // Layers keep their whiteout files (whiteout spec "none"); the merge applies them.
  const layer2Paths = [...walkRafs(openRafs(results[1]!.bootstrap))].map((e) => e.path);
  assert.ok(layer2Paths.includes("/etc/.wh.remove.conf"), layer2Paths.join(" "));

  assert.throws(() => mergeBootstraps(results.map((r) => openRafs(r.bootstrap))), /no blob id was given/);
  const merged = mergeBootstraps(
    results.map((r) => openRafs(r.bootstrap)),
    { layerBlobs: results.map((r) => r.blob) },
  );
  const boot = path.join(work, "merged.boot");
  await fsp.writeFile(boot, merged.bootstrap);
  assert.deepEqual(new Set(merged.blobs.map((b) => b.blobId)), new Set(results.map((r) => r.layerBlob!.digest)));
  await cliOk(["check", boot, "--blob-dir", blobs]);

  const views = path.join(work, "views");
  await cliOk(["export", boot, "--blob-dir", blobs, "--cache-dir", views]);
  const m = await mountErofs(boot, merged.blobs.map((b) => path.join(views, `${b.blobId}.blob.data`)));
  try {
    const expected = snapshotFromSpec(mergeLayers(layers), { form: "tar" });
    assert.deepEqual(diffSnapshots(await snapshotTree(m.mountpoint), expected, { ignorePaths: ["/"] }), []);
  } finally {
    await m.close();
  }
});

test("a layer without file data still yields a blob layer: empty image.blob, bootstrap and ToC", async () => {
  const blobs = path.join(work, "empty-blobs");
  const r = await buildInline({ name: "meta-only", entries: [dir("d"), symlink("d/l", "/nowhere")] }, blobs);
  assert.equal(r.blob, undefined);
  const file = path.join(blobs, r.layerBlob!.digest);
  assert.equal(sha256File(file), r.layerBlob!.digest);
  assert.deepEqual(tocNames(file), ["image.blob", "image.boot"]);
  assert.deepEqual(openRafs(r.bootstrap).blobs, []);
  const reader = await fileReaderAt(file);
  try {
    assert.deepEqual(Buffer.from(await readInlineBootstrap(reader, "x")), Buffer.from(r.bootstrap));
  } finally {
    await reader.close();
  }
  // Same input, same bytes: a re-run can skip blobs a registry already has.
  const again = await buildInline({ name: "meta-only", entries: [dir("d"), symlink("d/l", "/nowhere")] }, path.join(work, "again"));
  assert.equal(again.layerBlob!.digest, r.layerBlob!.digest);
});

test("a damaged inline bootstrap is refused by its ToC digest", async () => {
  const blobs = path.join(work, "damaged");
  const r = await buildInline(layeredTextures()[0]!, blobs);
  const file = path.join(blobs, r.layerBlob!.digest);
  const bytes = fs.readFileSync(file);
  const names = tocNames(file);
  assert.ok(names.includes("image.boot"));
  // Flip a byte inside the bootstrap section (just before its tar header, which precedes the ToC).
  const tocTar = decodeTarHeader(bytes.subarray(bytes.length - 512), bytes.length - 512);
  const bootEnd = bytes.length - 512 - tocTar.size - 512;
  bytes[bootEnd - 10]! ^= 0xff;
  fs.writeFileSync(file, bytes);
  const reader = await fileReaderAt(file);
  try {
    await assert.rejects(readInlineBootstrap(reader, "damaged"), (e: Error) => /inline bootstrap|decompress/.test(e.message));
  } finally {
    await reader.close();
  }
});
