import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import zlib from "node:zlib";
import { InvalidInputError, NotFoundError, UnsafePathError } from "../internal/errors.ts";
import { type TestImage, imageBlobs, makeImage, readAll, tagged } from "../layout/_testing.ts";
import { MediaType } from "../oci/media_type.ts";
import type { ImageSource } from "../oci/store.ts";
import { jsonBytes, parseManifest } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { type RawTarEntry, buildTar, chunked } from "../tar/_testing.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { DOCKER_LAYER_TAR } from "./docker_archive.ts";
import { archiveSource } from "./archive_source.ts";

function ociMembers(img: TestImage, tag: string): RawTarEntry[] {
  return [
    { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: "index.json", data: jsonBytes({ schemaVersion: 2, manifests: [tagged(img.manifest.desc, tag)] }) },
    { name: "blobs/", type: "5" },
    { name: "blobs/sha256/", type: "5" },
    ...imageBlobs(img).map((b) => ({ name: `blobs/sha256/${b.desc.digest.slice(7)}`, data: b.bytes })),
  ];
}

/** A legacy `docker save` layout: `<id>/layer.tar` (here a symlink to the real tar for layer 0), `<hex>.json`. */
function dockerMembers(img: TestImage, repoTags: string[], gzipLayer1 = false): RawTarEntry[] {
  const configName = `${img.config.desc.digest.slice(7)}.json`;
  const layer0 = img.tars[0]!;
  const layer1 = gzipLayer1 ? img.layers[1]!.bytes : img.tars[1]!;
  return [
    { name: "0000/", type: "5" },
    { name: "0000/real.tar", data: layer0 },
    { name: "l0/", type: "5" },
    { name: "l0/layer.tar", type: "2", linkname: "../0000/real.tar" },
    { name: "l1/layer.tar", data: layer1 },
    { name: configName, data: img.config.bytes },
    { name: "manifest.json", data: JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: ["l0/layer.tar", "l1/layer.tar"] }]) },
    { name: "repositories", data: "{}" },
  ];
}

async function withSource<T>(source: Promise<ImageSource>, fn: (s: ImageSource) => Promise<T>): Promise<T> {
  const s = await source;
  try {
    return await fn(s);
  } finally {
    await s.close?.();
  }
}

test("OCI archive from a path, a stream and gzip'ed: resolves by tag, blobs verified", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "hello" }, { "b.txt": "world" }]);
    const tar = buildTar(ociMembers(img, "v1"));
    const file = path.join(dir, "img.tar");
    await fsp.writeFile(file, tar);
    const spoolDir = path.join(dir, "spool");
    await fsp.mkdir(spoolDir);
    const inputs: [string, () => string | AsyncIterable<Uint8Array>][] = [
      ["path", () => file],
      ["stream", () => fs.createReadStream(file)],
      ["gzip stream", () => chunked(zlib.gzipSync(tar), 1000)],
    ];
    for (const [label, input] of inputs) {
      await withSource(archiveSource(input(), { tag: "v1", spoolDir }), async (src) => {
        assert.equal(src.name, `oci-archive:${label === "path" ? file : "-"}:v1`);
        const desc = await src.resolve();
        assert.equal(desc.digest, img.manifest.desc.digest, label);
        const manifest = parseManifest(await src.fetchBytes(desc));
        assert.deepEqual(await src.fetchBytes(manifest.config), img.config.bytes);
        for (const [i, l] of manifest.layers.entries()) assert.deepEqual(await readAll(await src.fetchBlob(l)), img.layers[i]!.bytes);
        assert.equal((await fsp.readdir(spoolDir)).length, 1, "one spool directory while open");
      });
      assert.deepEqual(await fsp.readdir(spoolDir), [], `${label}: close() removes the spool`);
    }
    await assert.rejects(archiveSource(file, { tag: "nope", spoolDir }), /tag "nope".*available tags: "v1"/);
    assert.deepEqual(await fsp.readdir(spoolDir), []);
  });
});

test("Docker archive: synthesized schema 2 manifest, deterministic; symlinked layer.tar followed; tag picked", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "hello" }, { "b.txt": "world" }]);
    const tar = buildTar(dockerMembers(img, ["example.com/x:1", "busybox:latest"], true));
    const file = path.join(dir, "docker.tar");
    await fsp.writeFile(file, tar);
    const digests: string[] = [];
    for (const input of [file, fs.createReadStream(file)]) {
      await withSource(archiveSource(input, { spoolDir: dir }), async (src) => {
        assert.match(src.name, /^docker-archive:/);
        const desc = await src.resolve();
        assert.equal(desc.mediaType, MediaType.DockerManifest);
        digests.push(desc.digest);
        const bytes = await src.fetchBytes(desc);
        const manifest = parseManifest(bytes);
        assert.equal(manifest.mediaType, MediaType.DockerManifest);
        assert.deepEqual(manifest.config, { mediaType: MediaType.DockerConfig, size: img.config.desc.size, digest: img.config.desc.digest });
        assert.deepEqual(
          manifest.layers.map((l) => [l.mediaType, l.digest]),
          [
            [DOCKER_LAYER_TAR, describeBytes("", img.tars[0]!).digest],
            [MediaType.DockerLayerGzip, img.layers[1]!.desc.digest],
          ],
        );
        assert.deepEqual(await readAll(await src.fetchBlob(manifest.layers[0]!)), img.tars[0]);
        assert.deepEqual(await readAll(await src.fetchBlob(manifest.layers[1]!)), img.layers[1]!.bytes);
        assert.deepEqual(await src.fetchBytes(manifest.config), img.config.bytes);
        await assert.rejects(src.fetchBlob({ ...manifest.layers[0]!, digest: "sha256:" + "1".repeat(64) }), NotFoundError);
      });
    }
    assert.equal(digests[0], digests[1]);
    for (const tag of ["busybox", "docker.io/library/busybox:latest", "example.com/x:1"]) {
      await withSource(archiveSource(file, { tag, spoolDir: dir }), async (src) => assert.equal((await src.resolve()).digest, digests[0]));
    }
    await assert.rejects(archiveSource(file, { tag: "busybox:2", spoolDir: dir }), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.match(err.message, /available tags: "example.com\/x:1", "busybox:latest"/);
      return true;
    });
    assert.deepEqual((await fsp.readdir(dir)).sort(), ["docker.tar"]);
  });
});

test("both markers: the OCI layout wins, unless only manifest.json knows the tag", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ a: "1" }, { b: "2" }]);
    const members = [...ociMembers(img, "latest"), ...dockerMembers(img, ["busybox:latest"]).filter((m) => !String(m.name).startsWith("blobs"))];
    const file = path.join(dir, "both.tar");
    await fsp.writeFile(file, buildTar(members));
    await withSource(archiveSource(file, { spoolDir: dir }), async (src) => {
      assert.match(src.name, /^oci-archive:/);
      assert.equal((await src.resolve()).digest, img.manifest.desc.digest);
    });
    await withSource(archiveSource(file, { spoolDir: dir, tag: "busybox:latest" }), async (src) => {
      assert.match(src.name, /^docker-archive:/);
      assert.equal((await src.resolve()).mediaType, MediaType.DockerManifest);
    });
    await withSource(archiveSource(file, { spoolDir: dir, format: "docker-archive" }), async (src) => assert.match(src.name, /^docker-archive:/));
  });
});

test("hostile member names are refused with UnsafePathError and nothing lands outside the spool", async () => {
  await withTempDir(async (dir) => {
    const spoolDir = path.join(dir, "spool", "deeper");
    await fsp.mkdir(spoolDir, { recursive: true });
    for (const name of ["../x", "a/../../x", "/abs/x", "blobs/../../../x"]) {
      const tar = buildTar([{ name: "oci-layout", data: "{}" }, { name, data: "evil" }]);
      await assert.rejects(archiveSource(chunked(tar), { spoolDir }), (err: unknown) => err instanceof UnsafePathError && err.path === name);
      assert.deepEqual(await fsp.readdir(spoolDir), [], name);
    }
    assert.deepEqual(await fsp.readdir(path.join(dir, "spool")), ["deeper"]);
    assert.equal(fs.existsSync(path.join(dir, "x")), false);
    // A link needed to reach a layer may not leave the archive either.
    const img = makeImage([{ a: "1" }, { b: "2" }]);
    const members = dockerMembers(img, []).map((m) => (m.name === "l0/layer.tar" ? { ...m, linkname: "../../etc/passwd" } : m));
    await assert.rejects(archiveSource(chunked(buildTar(members)), { spoolDir }), UnsafePathError);
    const dangling = dockerMembers(img, []).map((m) => (m.name === "l0/layer.tar" ? { ...m, linkname: "../missing.tar" } : m));
    await assert.rejects(archiveSource(chunked(buildTar(dangling)), { spoolDir }), /member "missing.tar".*reached through links from "l0\/layer.tar"/);
    assert.deepEqual(await fsp.readdir(spoolDir), []);
  });
});

test("truncated, corrupt or unrecognised archives give clear errors and leave no spool", async () => {
  await withTempDir(async (dir) => {
    const img = makeImage([{ "a.txt": "x".repeat(5000) }]);
    const tar = buildTar(ociMembers(img, "v1"));
    const cases: [string, Uint8Array, RegExp][] = [
      ["truncated tar", tar.subarray(0, 1800), /^Cannot read archive "-": could not read tar stream: unexpected end of archive/],
      ["truncated gzip", new Uint8Array(zlib.gzipSync(tar)).subarray(0, 300), /^Cannot read archive "-": could not decompress archive "-": not valid gzip \(unexpected end of file\)/],
      ["corrupt gzip", new Uint8Array(zlib.gzipSync(tar)).map((b, i) => (i === 40 ? b ^ 0xff : b)), /^Cannot read archive "-": could not decompress archive "-": not valid gzip/],
      ["not a tar", new TextEncoder().encode("x".repeat(2000)), /invalid header checksum/],
      ["no markers", buildTar([{ name: "hello", data: "x" }]), /neither an OCI archive .* nor a Docker archive/],
      ["bad manifest.json", buildTar([{ name: "manifest.json", data: "{}" }]), /Cannot parse manifest.json of docker-archive:-: not a non-empty JSON array/],
    ];
    for (const [label, bytes, re] of cases) {
      await assert.rejects(archiveSource(chunked(bytes), { spoolDir: dir }), (err: unknown) => {
        assert.ok(err instanceof InvalidInputError, `${label}: ${String(err)}`);
        assert.match(err.message, re, label);
        return true;
      });
      assert.deepEqual(await fsp.readdir(dir), [], label);
    }
    await assert.rejects(archiveSource(path.join(dir, "missing.tar"), { spoolDir: dir }), /no such file/);
  });
});
