import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { blobDataPath, startRegistry } from "../../test/support/registry.ts";
import { DigestMismatchError, NotFoundError } from "../internal/errors.ts";
import { MediaType } from "../oci/media_type.ts";
import { describeBytes, jsonBytes } from "../oci/index.ts";
import { parseReference } from "../reference/reference.ts";
import { bytesOf, collectAll, pieces, tinyImage } from "./_testing.ts";
import type { RequestInfo } from "./options.ts";
import { registrySink } from "./sink.ts";
import { registrySource } from "./source.ts";

test("blob push monolithic and chunked, HEAD skip, pull verified", async () => {
  const reg = await startRegistry();
  const log: RequestInfo[] = [];
  const opts = { plainHttp: true, onRequest: (i: RequestInfo) => log.push(i) };
  const mono = registrySink(parseReference(`${reg.host}/a/mono:v1`), opts);
  const chunked = registrySink(parseReference(`${reg.host}/a/chunked:v1`), { ...opts, uploadMode: "chunked", chunkSize: 300_000 });
  try {
    const small = bytesOf(700_000, "mono");
    const smallDesc = describeBytes(MediaType.OciLayerGzip, small);
    let opened = 0;
    await mono.pushBlob(smallDesc, () => (opened++, pieces(small)));
    assert.equal(opened, 1);
    assert.equal(log.filter((l) => l.method === "PUT").length, 1);
    assert.equal(log.filter((l) => l.method === "PATCH").length, 0);
    assert.equal(await mono.hasBlob(smallDesc), true);

    log.length = 0;
    await mono.pushBlob(smallDesc, () => (opened++, pieces(small)));
    assert.equal(opened, 1, "existing blob is not re-opened");
    assert.deepEqual(log.map((l) => `${l.method} ${l.status}`), ["HEAD 200"]);

    log.length = 0;
    const big = bytesOf(1_000_001, "chunked");
    const bigDesc = describeBytes(MediaType.OciLayerGzip, big);
    const progress: number[] = [];
    await chunked.pushBlob(bigDesc, () => pieces(big, 100_000), { onProgress: (n) => progress.push(n) });
    assert.equal(log.filter((l) => l.method === "PATCH").length, 4); // 300k, 300k, 300k, 100001
    assert.deepEqual(progress, [300_000, 600_000, 900_000, 1_000_001]);

    const src = registrySource(parseReference(`${reg.host}/a/chunked:v1`), opts);
    try {
      assert.deepEqual(await collectAll(await src.fetchBlob(bigDesc)), Buffer.from(big));
    } finally {
      await src.close?.();
    }

    const wrong = { ...smallDesc, digest: describeBytes("x", bytesOf(10, "other")).digest };
    await assert.rejects(mono.pushBlob(wrong, () => pieces(small)), DigestMismatchError);
  } finally {
    await mono.close?.();
    await chunked.close?.();
    await reg.stop();
  }
});

test("cross-repository mount: 201 when the source has it, 202 fallback upload otherwise", async () => {
  const reg = await startRegistry();
  const log: RequestInfo[] = [];
  // The ping (GET /v2/) is left out: it happens once per transport.
  const opts = { plainHttp: true, onRequest: (i: RequestInfo) => (new URL(i.url).pathname === "/v2/" ? undefined : log.push(i)) };
  const from = registrySink(parseReference(`${reg.host}/src/repo:v1`), opts);
  const to = registrySink(parseReference(`${reg.host}/dst/repo:v1`), opts);
  try {
    const bytes = bytesOf(50_000, "mount");
    const desc = describeBytes(MediaType.OciLayerGzip, bytes);
    await from.pushBlob(desc, () => pieces(bytes));
    log.length = 0;
    let opened = 0;
    await to.pushBlob(desc, () => (opened++, pieces(bytes)), { mountFrom: "src/repo" });
    assert.equal(opened, 0);
    assert.deepEqual(log.map((l) => `${l.method} ${l.status}`), ["HEAD 404", "POST 201"]);
    assert.equal(await to.hasBlob(desc), true);

    log.length = 0;
    const other = bytesOf(40_000, "not-in-source");
    const otherDesc = describeBytes(MediaType.OciLayerGzip, other);
    await to.pushBlob(otherDesc, () => (opened++, pieces(other)), { mountFrom: "src/repo" });
    assert.equal(opened, 1);
    assert.deepEqual(log.map((l) => `${l.method} ${l.status}`), ["HEAD 404", "POST 202", "PUT 201"]);
    assert.equal(await to.hasBlob(otherDesc), true);
  } finally {
    await from.close?.();
    await to.close?.();
    await reg.stop();
  }
});

test("manifest and index push/pull keep bytes and content types; existing(); 404s", async () => {
  const reg = await startRegistry();
  const ref = parseReference(`${reg.host}/img/app:v1`);
  const sink = registrySink(ref, { plainHttp: true });
  const src = registrySource(ref, { plainHttp: true });
  try {
    assert.equal(await sink.existing!(), undefined);
    const img = tinyImage("manifest");
    await sink.pushBlob(img.layer.desc, () => pieces(img.layer.bytes));
    await sink.pushBlob(img.config.desc, () => pieces(img.config.bytes));
    await sink.pushManifest(img.manifest.desc, img.manifest.bytes, { tag: "v1" });
    const got = await src.resolve();
    assert.deepEqual(got, img.manifest.desc);
    assert.deepEqual(Buffer.from(await src.fetchBytes(got)), Buffer.from(img.manifest.bytes));
    assert.deepEqual(Buffer.from(await src.fetchBytes(img.config.desc)), Buffer.from(img.config.bytes));

    const index = jsonBytes({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ ...img.manifest.desc, platform: { os: "linux", architecture: "amd64" } }] });
    const indexDesc = describeBytes(MediaType.OciIndex, index);
    await sink.pushManifest(indexDesc, index, { tag: "v1" });
    const existing = await sink.existing!();
    assert.deepEqual(existing?.desc, indexDesc);
    assert.deepEqual(Buffer.from(await sink.fetchBytes!(img.manifest.desc)), Buffer.from(img.manifest.bytes));

    const byDigest = registrySource(parseReference(`${reg.host}/img/app@${indexDesc.digest}`), { plainHttp: true });
    assert.deepEqual(await byDigest.resolve(), indexDesc);
    await byDigest.close?.();

    // A docker-typed manifest keeps its content type.
    const dockerManifest = jsonBytes({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config: { ...img.config.desc, mediaType: MediaType.DockerConfig }, layers: [{ ...img.layer.desc, mediaType: MediaType.DockerLayerGzip }] });
    const dockerDesc = describeBytes(MediaType.DockerManifest, dockerManifest);
    await sink.pushManifest(dockerDesc, dockerManifest, { tag: "docker" });
    const dockerSrc = registrySource(parseReference(`${reg.host}/img/app:docker`), { plainHttp: true });
    assert.equal((await dockerSrc.resolve()).mediaType, MediaType.DockerManifest);
    await dockerSrc.close?.();

    const missing = registrySource(parseReference(`${reg.host}/img/app:nope`), { plainHttp: true });
    await assert.rejects(missing.resolve(), (e: unknown) => e instanceof NotFoundError && /Cannot find manifest ".*img\/app:nope": not found .*MANIFEST_UNKNOWN/.test(e.message));
    await missing.close?.();
    const absent = describeBytes(MediaType.OciLayerGzip, bytesOf(10, "absent"));
    await assert.rejects(async () => collectAll(await src.fetchBlob(absent)), (e: unknown) => e instanceof NotFoundError && e.message.includes(absent.digest));
  } finally {
    await sink.close?.();
    await src.close?.();
    await reg.stop();
  }
});

test("tampered blob in the registry storage is detected while streaming", async () => {
  const reg = await startRegistry();
  const ref = parseReference(`${reg.host}/t/x:v1`);
  const sink = registrySink(ref, { plainHttp: true });
  const src = registrySource(ref, { plainHttp: true });
  try {
    const bytes = bytesOf(300_000, "tamper");
    const desc = describeBytes(MediaType.OciLayerGzip, bytes);
    await sink.pushBlob(desc, () => pieces(bytes));
    const file = blobDataPath(reg.dataDir, desc.digest);
    const stored = await fs.readFile(file);
    stored[123_456] ^= 0xff;
    await fs.writeFile(file, stored);
    let seen = 0;
    await assert.rejects(async () => {
      for await (const p of await src.fetchBlob(desc)) seen += p.length;
    }, (e: unknown) => e instanceof DigestMismatchError && e.expected === desc.digest);
    assert.equal(seen, bytes.length, "all bytes streamed before the error");
  } finally {
    await sink.close?.();
    await src.close?.();
    await reg.stop();
  }
});
