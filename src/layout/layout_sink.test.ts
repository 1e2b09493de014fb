import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { DigestMismatchError } from "../internal/errors.ts";
import { Annotation } from "../oci/media_type.ts";
import { parseIndex } from "../oci/types.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { type TestImage, imageBlobs, makeImage, readAll, tempFilesUnder } from "./_testing.ts";
import { layoutSink } from "./layout_sink.ts";
import { layoutSource } from "./layout_source.ts";

async function* pieces(bytes: Uint8Array, size = 7): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function pushImage(dir: string, img: TestImage, tag: string): Promise<void> {
  const sink = layoutSink(dir, { tag });
  for (const b of [...img.layers, img.config]) await sink.pushBlob(b.desc, () => pieces(b.bytes));
  await sink.pushManifest(img.manifest.desc, img.manifest.bytes, { tag });
}

test("sink creates the layout, writes blobs and tags; the source reads it back", async () => {
  await withTempDir(async (root) => {
    const dir = path.join(root, "new", "layout");
    const img = makeImage([{ "a.txt": "hello" }, { "b.txt": "world" }]);
    await pushImage(dir, img, "v1");
    assert.deepEqual(JSON.parse(await fsp.readFile(path.join(dir, "oci-layout"), "utf8")), { imageLayoutVersion: "1.0.0" });
    const index = parseIndex(await fsp.readFile(path.join(dir, "index.json")));
    assert.deepEqual(index.manifests, [{ ...img.manifest.desc, annotations: { [Annotation.OciRefName]: "v1" } }]);
    const src = layoutSource(dir, { tag: "v1" });
    const desc = await src.resolve();
    assert.equal(desc.digest, img.manifest.desc.digest);
    for (const b of imageBlobs(img)) assert.deepEqual(await readAll(await src.fetchBlob(b.desc)), b.bytes);
    assert.deepEqual(await tempFilesUnder(dir), []);
  });
});

test("re-tagging replaces the entry with the same ref name and keeps the others", async () => {
  await withTempDir(async (dir) => {
    const a = makeImage([{ a: "1" }]);
    const b = makeImage([{ b: "2" }]);
    const c = makeImage([{ c: "3" }]);
    await pushImage(dir, a, "one");
    await pushImage(dir, b, "two");
    await pushImage(dir, c, "one");
    const index = parseIndex(await fsp.readFile(path.join(dir, "index.json")));
    assert.deepEqual(
      index.manifests.map((m) => [m.annotations?.[Annotation.OciRefName], m.digest]),
      [
        ["two", b.manifest.desc.digest],
        ["one", c.manifest.desc.digest],
      ],
    );
    const existing = await layoutSink(dir, { tag: "one" }).existing!();
    assert.equal(existing?.desc.digest, c.manifest.desc.digest);
    assert.deepEqual(existing?.bytes, c.manifest.bytes);
    assert.equal(await layoutSink(dir, { tag: "nope" }).existing!(), undefined);
    assert.equal(await layoutSink(path.join(dir, "missing")).existing!(), undefined);
  });
});

test("tagging concurrently from one sink loses no entry; platform is kept", async () => {
  await withTempDir(async (dir) => {
    const imgs = [0, 1, 2, 3, 4].map((i) => makeImage([{ f: String(i) }]));
    const sink = layoutSink(dir);
    await Promise.all(imgs.map((img) => Promise.all([...img.layers, img.config].map((b) => sink.pushBlob(b.desc, () => pieces(b.bytes))))));
    const platform = { architecture: "arm64", os: "linux", variant: "v8" };
    await Promise.all(imgs.map((img, i) => sink.pushManifest({ ...img.manifest.desc, platform }, img.manifest.bytes, { tag: `t${i}` })));
    const index = parseIndex(await fsp.readFile(path.join(dir, "index.json")));
    assert.deepEqual(index.manifests.map((m) => m.annotations?.[Annotation.OciRefName]).sort(), ["t0", "t1", "t2", "t3", "t4"]);
    assert.deepEqual(index.manifests[0]!.platform, platform);
  });
});

test("an existing blob of the right size is skipped without opening the source", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ a: "1" }]);
    const sink = layoutSink(dir);
    const layer = img.layers[0]!;
    await sink.pushBlob(layer.desc, () => pieces(layer.bytes));
    assert.equal(await sink.hasBlob(layer.desc), true);
    let opened = 0;
    await sink.pushBlob(layer.desc, () => {
      opened++;
      return pieces(layer.bytes);
    });
    assert.equal(opened, 0);
    assert.equal(await sink.hasBlob({ ...layer.desc, size: layer.desc.size + 1 }), false);
  });
});

test("a blob that fails verification leaves no blob and no temp file", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ a: "1" }]);
    const sink = layoutSink(dir);
    const layer = img.layers[0]!;
    const bad = new Uint8Array(layer.bytes);
    bad[10] ^= 1;
    await assert.rejects(sink.pushBlob(layer.desc, () => pieces(bad)), DigestMismatchError);
    await assert.rejects(sink.pushBlob(layer.desc, () => pieces(layer.bytes.subarray(1))), /size/);
    await assert.rejects(
      sink.pushBlob(layer.desc, async function* () {
        yield layer.bytes.subarray(0, 3);
        throw new Error("connection reset");
      }),
      /connection reset/,
    );
    await assert.rejects(sink.pushManifest(img.manifest.desc, img.config.bytes, { tag: "x" }), DigestMismatchError);
    assert.equal(await sink.hasBlob(layer.desc), false);
    assert.deepEqual(await tempFilesUnder(dir), []);
    assert.deepEqual(await fsp.readdir(path.join(dir, "blobs", "sha256")), []);
    assert.deepEqual(parseIndex(await fsp.readFile(path.join(dir, "index.json"))).manifests, []);
  });
});
