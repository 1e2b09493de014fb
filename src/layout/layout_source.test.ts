import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { DigestMismatchError, InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { MediaType } from "../oci/media_type.ts";
import { parseIndex, parseManifest } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { imageBlobs, makeImage, makeIndex, readAll, tagged, writeHandLayout } from "./_testing.ts";
import { layoutSource } from "./layout_source.ts";

test("hand-written layout: resolve by tag and alone, fetch manifest, config and layer verified", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "hello" }, { "b.txt": "world" }]);
    await writeHandLayout(dir, imageBlobs(img), [tagged(img.manifest.desc, "v1")]);
    for (const src of [layoutSource(dir, { tag: "v1" }), layoutSource(dir)]) {
      const desc = await src.resolve();
      assert.equal(desc.digest, img.manifest.desc.digest);
      assert.equal(desc.mediaType, MediaType.OciManifest);
      const manifest = parseManifest(await src.fetchBytes(desc));
      assert.deepEqual(await src.fetchBytes(manifest.config), img.config.bytes);
      for (const [i, layer] of manifest.layers.entries()) {
        assert.deepEqual(await readAll(await src.fetchBlob(layer)), img.layers[i]!.bytes);
      }
    }
    assert.equal(layoutSource(dir, { tag: "v1" }).name, `oci:${dir}:v1`);
    assert.equal(layoutSource(dir).name, `oci:${dir}`);
  });
});

test("tag selection: missing tag lists the tags, several entries without a tag ask for one", async () => {
  await withTempDir(async (dir) => {
    const a = makeImage([{ a: "1" }]);
    const b = makeImage([{ b: "2" }]);
    await writeHandLayout(dir, [...imageBlobs(a), ...imageBlobs(b)], [tagged(a.manifest.desc, "one"), tagged(b.manifest.desc, "two")]);
    assert.equal((await layoutSource(dir, { tag: "two" }).resolve()).digest, b.manifest.desc.digest);
    await assert.rejects(layoutSource(dir, { tag: "three" }).resolve(), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.match(err.message, /tag "three"/);
      assert.match(err.message, /"one", "two"/);
      return true;
    });
    await assert.rejects(layoutSource(dir).resolve(), (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match(err.message, /^Cannot choose an image in oci:.*2 entries.*"one", "two"/);
      return true;
    });
  });
});

test("empty index, wrong layout version and missing oci-layout are reported", async () => {
  await withTempDir(async (dir) => {
    await writeHandLayout(dir, [], []);
    await assert.rejects(layoutSource(dir).resolve(), NotFoundError);
    await fsp.writeFile(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}');
    await assert.rejects(layoutSource(dir).resolve(), /imageLayoutVersion is "2.0.0", expected "1.0.0"/);
    await fsp.rm(path.join(dir, "oci-layout"));
    await assert.rejects(layoutSource(dir).resolve(), NotFoundError);
  });
});

/** A layout whose index.json lists an amd64 and an arm64 manifest, neither tagged. */
async function writeUntaggedPlatforms(dir: string) {
  const amd = makeImage([{ x: "amd64" }]);
  const arm = makeImage([{ x: "arm64" }], { architecture: "arm64", os: "linux" });
  const entries = [
    { ...amd.manifest.desc, platform: { architecture: "amd64", os: "linux" } },
    { ...arm.manifest.desc, platform: { architecture: "arm64", os: "linux" } },
  ];
  await writeHandLayout(dir, [...imageBlobs(amd), ...imageBlobs(arm)], entries);
  return { amd, arm };
}

test("untagged platform manifests: index.json itself is the image index", async () => {
  await withTempDir(async (dir) => {
    const { amd, arm } = await writeUntaggedPlatforms(dir);
    const src = layoutSource(dir);
    const desc = await src.resolve();
    assert.equal(desc.mediaType, MediaType.OciIndex);
    const index = parseIndex(await src.fetchBytes(desc));
    assert.deepEqual(index.manifests.map((m) => m.digest), [amd.manifest.desc.digest, arm.manifest.desc.digest]);
    assert.deepEqual(await readAll(await src.fetchBlob(desc)), new Uint8Array(await fsp.readFile(path.join(dir, "index.json"))));
  });
});

test("one tag on several platform manifests resolves to a synthesized index", async () => {
  await withTempDir(async (dir) => {
    const amd = makeImage([{ x: "amd64" }]);
    const arm = makeImage([{ x: "arm64" }], { architecture: "arm64", os: "linux" });
    const entries = [
      { ...tagged(amd.manifest.desc, "m"), platform: { architecture: "amd64", os: "linux" } },
      { ...tagged(arm.manifest.desc, "m"), platform: { architecture: "arm64", os: "linux" } },
    ];
    await writeHandLayout(dir, [...imageBlobs(amd), ...imageBlobs(arm)], entries);
    const src = layoutSource(dir, { tag: "m" });
    const desc = await src.resolve();
    const index = parseIndex(await src.fetchBytes(desc));
    assert.deepEqual(index.manifests.map((m) => m.platform?.architecture), ["amd64", "arm64"]);
    assert.equal(index.manifests[0]!.annotations, undefined);
  });
});

test("digest option: an index.json entry or any manifest blob", async () => {
  await withTempDir(async (dir) => {
    const amd = makeImage([{ x: "amd64" }]);
    const arm = makeImage([{ x: "arm64" }], { architecture: "arm64", os: "linux" });
    const idx = makeIndex([
      { image: amd, platform: { architecture: "amd64", os: "linux" } },
      { image: arm, platform: { architecture: "arm64", os: "linux" } },
    ]);
    await writeHandLayout(dir, [...imageBlobs(amd), ...imageBlobs(arm), idx], [tagged(idx.desc, "multi")]);
    assert.deepEqual(await layoutSource(dir, { digest: idx.desc.digest }).resolve(), tagged(idx.desc, "multi"));
    const child = await layoutSource(dir, { digest: arm.manifest.desc.digest }).resolve();
    assert.deepEqual(child, arm.manifest.desc);
    await assert.rejects(layoutSource(dir, { digest: "sha256:" + "0".repeat(64) }).resolve(), NotFoundError);
    await assert.rejects(layoutSource(dir, { digest: arm.config.desc.digest }).resolve(), /not a manifest or index/);
  });
});

test("corrupt blob: fetchBlob's stream throws DigestMismatchError, fetchBytes too", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "hello" }]);
    await writeHandLayout(dir, imageBlobs(img), [tagged(img.manifest.desc, "v1")]);
    const layerFile = path.join(dir, "blobs", "sha256", img.layers[0]!.desc.digest.slice(7));
    const bad = new Uint8Array(img.layers[0]!.bytes);
    bad[bad.length - 5] ^= 0xff;
    await fsp.writeFile(layerFile, bad);
    const src = layoutSource(dir);
    const stream = await src.fetchBlob(img.layers[0]!.desc); // the error surfaces while streaming
    await assert.rejects(readAll(stream), (err: unknown) => err instanceof DigestMismatchError && err.expected === img.layers[0]!.desc.digest);
    // Same size, wrong bytes (digest) and wrong size are both mismatches for documents.
    const cfgFile = path.join(dir, "blobs", "sha256", img.config.desc.digest.slice(7));
    await fsp.writeFile(cfgFile, Buffer.from(img.config.bytes).fill(0x20, 0, 1));
    await assert.rejects(src.fetchBytes(img.config.desc), DigestMismatchError);
    await fsp.appendFile(cfgFile, "x");
    await assert.rejects(src.fetchBytes(img.config.desc), /size/);
    // A longer layer file is refused once the descriptor's size is exceeded.
    await fsp.writeFile(layerFile, Buffer.concat([img.layers[0]!.bytes, Buffer.from("trailing")]));
    await assert.rejects(readAll(await src.fetchBlob(img.layers[0]!.desc)), DigestMismatchError);
  });
});

test("missing blob: NotFoundError naming the path, at fetch time", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "hello" }]);
    await writeHandLayout(dir, [img.config, img.manifest], [tagged(img.manifest.desc, "v1")]);
    const src = layoutSource(dir);
    const file = path.join(dir, "blobs", "sha256", img.layers[0]!.desc.digest.slice(7));
    await assert.rejects(src.fetchBlob(img.layers[0]!.desc), (err: unknown) => err instanceof NotFoundError && err.message.includes(file));
    await assert.rejects(src.fetchBytes(img.layers[0]!.desc), NotFoundError);
    await assert.rejects(src.fetchBytes({ ...img.layers[0]!.desc, digest: "sha256:../../etc/passwd" }), InvalidInputError);
  });
});

test("a synthesized root is served by digest even before resolve()", async () => {
  await withTempDir(async (dir) => {
    const { amd, arm } = await writeUntaggedPlatforms(dir);
    const bytes = new Uint8Array(await fsp.readFile(path.join(dir, "index.json")));
    const desc = { mediaType: MediaType.OciIndex, digest: describeBytes("", bytes).digest, size: bytes.length };
    assert.deepEqual(await layoutSource(dir).fetchBytes(desc), bytes);
    // A source that cannot resolve still serves ordinary blobs.
    assert.deepEqual(await layoutSource(dir, { tag: "none" }).fetchBytes(amd.config.desc), amd.config.bytes);
  });
});
