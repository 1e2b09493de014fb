/**
 * Real peers: archives written by skopeo (oci-archive, docker-archive, multi-platform
 * oci-archive) and buildah (oci-archive, docker-archive) read from a path and from a stream;
 * layer digests checked against the source layout and the config's diff ids.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { imageBlobs, makeImage, makeIndex, readAll, writeHandLayout, tagged } from "../layout/_testing.ts";
import { layoutSource } from "../layout/layout_source.ts";
import { MediaType } from "../oci/media_type.ts";
import type { ImageSource } from "../oci/store.ts";
import { type Descriptor, type Manifest, parseConfig, parseIndex, parseManifest } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { maybeGunzip } from "../tar/gzip.ts";
import { run } from "../../test/support/oracles.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { DOCKER_LAYER_TAR } from "./docker_archive.ts";
import { archiveSource } from "./archive_source.ts";

async function ok(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/** Both ways in: the path, and a stream of the same file. */
function inputs(file: string): [string, () => string | AsyncIterable<Uint8Array>][] {
  return [
    ["path", () => file],
    ["stream", () => fs.createReadStream(file, { highWaterMark: 1000 })],
  ];
}

async function open(input: string | AsyncIterable<Uint8Array>, spoolDir: string, tag?: string): Promise<ImageSource> {
  return archiveSource(input, { spoolDir, tag });
}

/** The manifest of `src`, and the digest of every layer's bytes as streamed (and of its uncompressed bytes). */
async function readImage(src: ImageSource, desc?: Descriptor): Promise<{ manifest: Manifest; diffIds: string[]; streamed: string[]; config: Uint8Array }> {
  const manifest = parseManifest(await src.fetchBytes(desc ?? (await src.resolve())));
  const streamed: string[] = [];
  const diffIds: string[] = [];
  for (const layer of manifest.layers) {
    const bytes = await readAll(await src.fetchBlob(layer));
    streamed.push(describeBytes("", bytes).digest);
    diffIds.push(describeBytes("", await readAll(maybeGunzip((async function* () { yield bytes; })()))).digest);
  }
  return { manifest, diffIds, streamed, config: await src.fetchBytes(manifest.config) };
}

test("skopeo oci-archive and docker-archive of a layout: same manifest, same layer bytes", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "etc/hello": "hello\n" }, { "usr/bin/x": "#!/bin/sh\necho x\n" }]);
    const layout = path.join(dir, "layout");
    await writeHandLayout(layout, imageBlobs(img), [tagged(img.manifest.desc, "t")]);
    const ociTar = path.join(dir, "oci.tar");
    const dockerTar = path.join(dir, "docker.tar");
    await ok("skopeo", ["copy", "-q", `oci:${layout}:t`, `oci-archive:${ociTar}:t`]);
    await ok("skopeo", ["copy", "-q", `oci:${layout}:t`, `docker-archive:${dockerTar}:example/img:v1`]);
    const spool = path.join(dir, "spool");
    await fsp.mkdir(spool);
    for (const [how, input] of inputs(ociTar)) {
      const src = await open(input(), spool, "t");
      try {
        const desc = await src.resolve();
        assert.equal(desc.digest, img.manifest.desc.digest, how);
        const got = await readImage(src, desc);
        assert.deepEqual(got.streamed, img.layers.map((l) => l.desc.digest));
        assert.deepEqual(got.config, img.config.bytes);
      } finally {
        await src.close?.();
      }
    }
    for (const [how, input] of inputs(dockerTar)) {
      const src = await open(input(), spool, "example/img:v1");
      try {
        assert.equal(src.name, `docker-archive:${how === "path" ? dockerTar : "-"}:example/img:v1`);
        const got = await readImage(src);
        assert.equal(got.manifest.mediaType, MediaType.DockerManifest);
        assert.deepEqual(got.manifest.layers.map((l) => l.mediaType), [DOCKER_LAYER_TAR, DOCKER_LAYER_TAR]);
        // skopeo stores the layers uncompressed: their digests are the source's diff ids.
        const diffIds = parseConfig(img.config.bytes).rootfs.diff_ids;
        assert.deepEqual(got.streamed, diffIds, how);
        assert.deepEqual(got.diffIds, diffIds);
        assert.equal(got.manifest.config.digest, img.config.desc.digest);
      } finally {
        await src.close?.();
      }
    }
    assert.deepEqual(await fsp.readdir(spool), []);
  });
});

test("skopeo copy --all of a multi-platform index into an oci-archive", async () => {
  await withTempDir(async (dir) => {
    const amd64 = { architecture: "amd64", os: "linux" };
    const arm64 = { architecture: "arm64", os: "linux" };
    const a = makeImage([{ arch: "amd64" }], amd64);
    const b = makeImage([{ arch: "arm64" }], arm64);
    const idx = makeIndex([
      { image: a, platform: amd64 },
      { image: b, platform: arm64 },
    ]);
    const layout = path.join(dir, "layout");
    await writeHandLayout(layout, [...imageBlobs(a), ...imageBlobs(b), idx], [tagged(idx.desc, "multi")]);
    const file = path.join(dir, "multi.tar");
    await ok("skopeo", ["copy", "-q", "--all", `oci:${layout}:multi`, `oci-archive:${file}:multi`]);
    const src = await archiveSource(fs.createReadStream(file), { spoolDir: dir });
    try {
      const desc = await src.resolve();
      assert.equal(desc.mediaType, MediaType.OciIndex);
      assert.equal(desc.digest, idx.desc.digest);
      const children = parseIndex(await src.fetchBytes(desc)).manifests;
      assert.deepEqual(children.map((c) => c.platform?.architecture), ["amd64", "arm64"]);
      for (const [i, child] of children.entries()) {
        const got = await readImage(src, child);
        assert.deepEqual(got.streamed, [a, b][i]!.layers.map((l) => l.desc.digest));
      }
    } finally {
      await src.close?.();
    }
  });
});

test("buildah oci-archive and docker-archive of a tiny image agree with buildah's OCI layout", async () => {
  await withTempDir(async (dir) => {
    const store = ["--root", path.join(dir, "storage"), "--runroot", path.join(dir, "run"), "--storage-driver", "vfs"];
    const ctx = path.join(dir, "ctx");
    await fsp.mkdir(path.join(ctx, "sub"), { recursive: true });
    await fsp.writeFile(path.join(ctx, "hello.txt"), "hello from buildah\n");
    await fsp.writeFile(path.join(ctx, "sub", "big.bin"), Buffer.alloc(300_000, 7));
    const from = await run("buildah", [...store, "from", "scratch"]);
    assert.equal(from.code, 0, from.stderr);
    const c = from.stdout.trim();
    await ok("buildah", [...store, "copy", c, `${ctx}/`, "/data/"]);
    await ok("buildah", [...store, "config", "--env", "FOO=bar", c]);
    await ok("buildah", [...store, "commit", "-q", c, "localhost/tiny:1"]);
    await ok("buildah", [...store, "rm", c]);
    const ociTar = path.join(dir, "oci.tar");
    const dockerTar = path.join(dir, "docker.tar");
    const layout = path.join(dir, "layout");
    await ok("buildah", [...store, "push", "-q", "localhost/tiny:1", `oci-archive:${ociTar}:tiny`]);
    await ok("buildah", [...store, "push", "-q", "localhost/tiny:1", `docker-archive:${dockerTar}:tiny:1`]);
    await ok("buildah", [...store, "push", "-q", "localhost/tiny:1", `oci:${layout}:tiny`]);
    const reference = await readImage(layoutSource(layout, { tag: "tiny" }));
    const diffIds = parseConfig(reference.config).rootfs.diff_ids;
    assert.equal(diffIds.length, 1);
    assert.deepEqual(reference.diffIds, diffIds);
    const spool = path.join(dir, "spool");
    await fsp.mkdir(spool);
    for (const [how, input] of inputs(ociTar)) {
      const src = await open(input(), spool);
      try {
        const got = await readImage(src);
        assert.deepEqual(got.diffIds, diffIds, how);
        assert.deepEqual(got.streamed, reference.streamed, how);
        assert.equal(got.manifest.config.digest, reference.manifest.config.digest);
      } finally {
        await src.close?.();
      }
    }
    for (const [how, input] of inputs(dockerTar)) {
      for (const tag of [undefined, "tiny:1", "localhost/tiny:1", "docker.io/library/tiny:1"]) {
        const src = await open(input(), spool, tag);
        try {
          const got = await readImage(src);
          assert.deepEqual(got.streamed, diffIds, `${how} ${tag}`);
          assert.equal(got.manifest.config.digest, reference.manifest.config.digest);
        } finally {
          await src.close?.();
        }
      }
    }
    assert.deepEqual(await fsp.readdir(spool), []);
  });
});
