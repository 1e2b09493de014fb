/**
 * Real peers: layouts written by umoci and skopeo are read; layouts written by our sink are
 * accepted by skopeo (single image and `copy --all` of a multi-platform index).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fsp from "node:fs/promises";
import path from "node:path";
import { MediaType } from "../oci/media_type.ts";
import type { ImageSource } from "../oci/store.ts";
import { type Descriptor, parseIndex, parseManifest } from "../oci/types.ts";
import { run } from "../../test/support/oracles.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { makeImage, makeIndex, readAll } from "./_testing.ts";
import { layoutSink } from "./layout_sink.ts";
import { layoutSource } from "./layout_source.ts";

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Fetches every blob below `desc` through `src` (verified), returning digest → bytes length. */
async function walk(src: ImageSource, desc: Descriptor, seen = new Map<string, number>()): Promise<Map<string, number>> {
  const bytes = await src.fetchBytes(desc);
  seen.set(desc.digest, bytes.length);
  if (desc.mediaType === MediaType.OciIndex || desc.mediaType === MediaType.DockerManifestList) {
    for (const child of parseIndex(bytes).manifests) await walk(src, child, seen);
    return seen;
  }
  const manifest = parseManifest(bytes);
  seen.set(manifest.config.digest, (await src.fetchBytes(manifest.config)).length);
  for (const layer of manifest.layers) seen.set(layer.digest, (await readAll(await src.fetchBlob(layer))).length);
  return seen;
}

test("umoci init/new/repack layout is read and every blob verifies", async () => {
  await withTempDir(async (dir) => {
    const layout = path.join(dir, "layout");
    const bundle = path.join(dir, "bundle");
    await ok("umoci", ["init", "--layout", layout]);
    await ok("umoci", ["new", "--image", `${layout}:base`]);
    await ok("umoci", ["unpack", "--image", `${layout}:base`, bundle]);
    await fsp.writeFile(path.join(bundle, "rootfs", "hello.txt"), "hello from umoci\n");
    await ok("umoci", ["repack", "--image", `${layout}:base`, bundle]);
    const src = layoutSource(layout, { tag: "base" });
    const desc = await src.resolve();
    assert.equal(desc.mediaType, MediaType.OciManifest);
    const manifest = parseManifest(await src.fetchBytes(desc));
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0]!.mediaType, MediaType.OciLayerGzip);
    const seen = await walk(src, desc);
    assert.equal(seen.size, 3);
    assert.equal(seen.get(manifest.layers[0]!.digest), manifest.layers[0]!.size);
  });
});

test("skopeo copies a layout our sink wrote, digests unchanged; umoci unpacks it", async () => {
  await withTempDir(async (dir) => {
    const ours = path.join(dir, "ours");
    const img = makeImage([{ "etc/greeting": "hi\n" }, { "bin/tool": "#!/bin/sh\n" }]);
    const sink = layoutSink(ours, { tag: "t" });
    for (const b of [...img.layers, img.config]) {
      await sink.pushBlob(b.desc, async function* () {
        yield b.bytes;
      });
    }
    await sink.pushManifest(img.manifest.desc, img.manifest.bytes, { tag: "t" });
    const copy = path.join(dir, "copy");
    await ok("skopeo", ["copy", "-q", `oci:${ours}:t`, `oci:${copy}:t`]);
    const src = layoutSource(copy, { tag: "t" });
    const desc = await src.resolve();
    assert.equal(desc.digest, img.manifest.desc.digest);
    const seen = await walk(src, desc);
    assert.deepEqual([...seen.keys()].sort(), [img.manifest, img.config, ...img.layers].map((b) => b.desc.digest).sort());
    const bundle = path.join(dir, "bundle");
    await ok("umoci", ["unpack", "--image", `${ours}:t`, bundle]);
    assert.equal(await fsp.readFile(path.join(bundle, "rootfs", "etc", "greeting"), "utf8"), "hi\n");
  });
});

test("skopeo copy --all of a multi-platform index our sink wrote; both layouts resolve to the index", async () => {
  await withTempDir(async (dir) => {
    const ours = path.join(dir, "ours");
    const amd64 = { architecture: "amd64", os: "linux" };
    const arm64 = { architecture: "arm64", os: "linux", variant: "v8" };
    const a = makeImage([{ arch: "amd64" }], amd64);
    const b = makeImage([{ arch: "arm64" }], arm64);
    const idx = makeIndex([
      { image: a, platform: amd64 },
      { image: b, platform: arm64 },
    ]);
    const sink = layoutSink(ours, { tag: "multi" });
    for (const img of [a, b]) {
      for (const blob of [...img.layers, img.config]) {
        await sink.pushBlob(blob.desc, async function* () {
          yield blob.bytes;
        });
      }
      await sink.pushManifest(img.manifest.desc, img.manifest.bytes);
    }
    await sink.pushManifest(idx.desc, idx.bytes, { tag: "multi" });
    assert.equal(parseIndex(await fsp.readFile(path.join(ours, "index.json"))).manifests.length, 1);
    const copy = path.join(dir, "copy");
    await ok("skopeo", ["copy", "-q", "--all", `oci:${ours}:multi`, `oci:${copy}:multi`]);
    const copied = parseIndex(await fsp.readFile(path.join(copy, "index.json")));
    assert.equal(copied.manifests.length, 1); // skopeo writes one entry pointing at the index
    for (const src of [layoutSource(copy), layoutSource(copy, { tag: "multi" })]) {
      const desc = await src.resolve();
      assert.equal(desc.mediaType, MediaType.OciIndex);
      assert.equal(desc.digest, idx.desc.digest);
      const seen = await walk(src, desc);
      assert.equal(seen.size, 7);
    }
    // skopeo picks a platform out of it (copy without --all) from our layout.
    const one = path.join(dir, "one");
    await ok("skopeo", ["copy", "-q", "--override-arch", "arm64", "--override-variant", "v8", `oci:${ours}:multi`, `oci:${one}:x`]);
    assert.equal((await layoutSource(one, { tag: "x" }).resolve()).digest, b.manifest.desc.digest);
  });
});
