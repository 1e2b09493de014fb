/**
 * `nydus-ts convert` options and BuildKit `--output` keys change the result as documented
 * (nydus-image.md §1, §3, §4): media-type families (`oci-mediatypes`, `--oci`), `merge-manifest`
 * into what a tag already holds, platform selection, compressor and chunk size as recorded in the
 * merged bootstrap, chunk dictionaries, the layer cache, prefetch patterns, and the JSON report.
 * Results are read back from a real registry or from the OCI layout the CLI wrote.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { dir, file, random, symlink, text, type LayerSpec } from "../textures/spec.ts";
import { layoutRoot, writeSourceLayout, type SourceImageSpec } from "../support/images.ts";
import { checkNydusManifest, readNydusManifest, type NydusManifestView } from "../support/nydus_image.ts";
import { cliOkWith, fetchManifest, runCliWith, skopeo, type ProcResult } from "../support/peers.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

const NYDUS_BLOB = "application/vnd.oci.image.layer.nydus.blob.v1";
const NYDUS_ARTIFACT = "application/vnd.nydus.image.manifest.v1+json";
const OCI = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
};
const DOCKER = {
  manifest: "application/vnd.docker.distribution.manifest.v2+json",
  list: "application/vnd.docker.distribution.manifest.list.v2+json",
  config: "application/vnd.docker.container.image.v1+json",
  gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

const base: LayerSpec = { name: "base", entries: [dir("etc"), file("etc/os-release", text("ID=test\n")), file("bin/tool", random(200_000, 5), { mode: 0o755 }), symlink("bin/t", "tool")] };
const top1: LayerSpec = { name: "top1", entries: [file("app/one.txt", text("one\n")), file("app/data.bin", random(150_000, 6)), file("app/log.txt", text("a log line that repeats\n".repeat(4000)))] };
const top2: LayerSpec = { name: "top2", entries: [file("app/two.txt", text("two\n"))] };
const SHARED = random(3_000_000, 42);

let work: string;
let reg: TestRegistry;
const layouts: Record<string, string> = {};

async function layout(name: string, images: SourceImageSpec[], options: { docker?: boolean } = {}): Promise<string> {
  const d = path.join(work, `src-${name}`);
  await writeSourceLayout(d, "v1", images, options);
  layouts[name] = d;
  return d;
}

function convert(args: string[]): Promise<ProcResult> {
  return cliOkWith(["convert", "--json", ...args]);
}

async function manifestOf(repo: string, ref: string) {
  const m = await fetchManifest(reg.url, repo, ref);
  assert.ok(m, `${repo}:${ref} exists`);
  return m;
}

/** Converts into an OCI layout and opens the Nydus manifest there. */
async function convertToLayout(name: string, args: string[]): Promise<{ out: ProcResult; dest: string; view: NydusManifestView }> {
  const dest = path.join(work, `out-${name}`);
  const out = await convert([...args, "--target", `oci:${dest}:nydus`]);
  const view = await readNydusManifest(dest, layoutRoot(dest, "nydus").digest, path.join(work, `view-${name}`));
  return { out, dest, view };
}

async function inspectBoot(view: NydusManifestView, extra: string[] = []): Promise<any> {
  return (await cliOkWith(["inspect", view.bootstrapFile, "--json", ...extra])).json;
}

before(async () => {
  work = await makeTempDir({ prefix: "nydus-e2e-options-" });
  reg = await startRegistry();
  await layout("oci", [{ layers: [base, top1] }]);
  await layout("docker", [{ layers: [base, top1], docker: true }]);
  await layout("multi", [
    { layers: [base, { entries: [file("arch", text("amd64\n"))] }], platform: { os: "linux", architecture: "amd64" } },
    { layers: [base, { entries: [file("arch", text("arm64\n"))] }], platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ]);
  await layout("cache2", [{ layers: [base, top2] }]);
  await layout("dict", [{ layers: [{ entries: [file("big/shared.bin", SHARED), file("dict-only", text("d\n"))] }] }]);
  await layout("user", [{ layers: [{ entries: [file("opt/copy-of-shared.bin", SHARED), file("opt/own.bin", random(500_000, 77))] }] }]);
});
after(async () => {
  await reg?.stop();
  if (work) await removeTree(work);
});

describe("media types", () => {
  test("oci-mediatypes=true turns a Docker source into OCI types; =false turns an OCI source into Docker types", async () => {
    await convert(["--source", `oci:${layouts.docker}:v1`, "--output", `type=nydus,name=${reg.host}/mt:oci,registry.insecure=true,oci-mediatypes=true`]);
    const o = await manifestOf("mt", "oci");
    assert.equal(o.json.mediaType, OCI.manifest);
    assert.equal(o.contentType, OCI.manifest);
    assert.equal(o.json.config.mediaType, OCI.config);
    assert.equal(o.json.layers.at(-1).mediaType, OCI.gzip);
    assert.ok(o.json.layers.slice(0, -1).every((l: any) => l.mediaType === NYDUS_BLOB));

    await convert(["--source", `oci:${layouts.oci}:v1`, "--output", `type=nydus,name=${reg.host}/mt:docker,registry.insecure=true,oci-mediatypes=false`]);
    const d = await manifestOf("mt", "docker");
    assert.equal(d.json.mediaType, DOCKER.manifest);
    assert.equal(d.contentType, DOCKER.manifest);
    assert.equal(d.json.config.mediaType, DOCKER.config);
    assert.equal(d.json.layers.at(-1).mediaType, DOCKER.gzip);
    // The Nydus blob type has no Docker spelling: it stays (§1.1).
    assert.ok(d.json.layers.slice(0, -1).every((l: any) => l.mediaType === NYDUS_BLOB));
    // Same layer blobs either way: only the wrapping differs.
    assert.deepEqual(d.json.layers.slice(0, -1).map((l: any) => l.digest), o.json.layers.slice(0, -1).map((l: any) => l.digest));
  });

  test("without a key the source family is kept; --oci makes a Docker source OCI", async () => {
    await convert(["--source", `oci:${layouts.docker}:v1`, "--target", `${reg.host}/mt:kept`, "--plain-http"]);
    assert.equal((await manifestOf("mt", "kept")).json.mediaType, DOCKER.manifest);
    await convert(["--source", `oci:${layouts.docker}:v1`, "--target", `${reg.host}/mt:flag`, "--plain-http", "--oci"]);
    const m = await manifestOf("mt", "flag");
    assert.equal(m.json.mediaType, OCI.manifest);
    assert.equal(m.json.config.mediaType, OCI.config);
    assert.equal(m.json.layers.at(-1).mediaType, OCI.gzip);
  });
});

describe("merge-manifest=true", () => {
  test("keeps the plain image at the tag, appends the Nydus entry, and a second run replaces it", async () => {
    await skopeo(["copy", "--dest-tls-verify=false", `oci:${layouts.oci}:v1`, `docker://${reg.host}/mm:v1`]);
    const plain = await manifestOf("mm", "v1");
    const output = `type=nydus,name=${reg.host}/mm:v1,registry.insecure=true,merge-manifest=true`;
    const first = await convert(["--source", `oci:${layouts.oci}:v1`, "--output", output]);
    const idx = await manifestOf("mm", "v1");
    assert.equal(idx.json.mediaType, OCI.index);
    assert.equal(idx.digest, first.json.targets[0].digest);
    assert.equal(idx.json.manifests.length, 2);
    const [old, nydus] = idx.json.manifests;
    assert.deepEqual([old.digest, old.mediaType, old.size], [plain.digest, plain.json.mediaType, plain.raw.length], "the old image is the first entry, unchanged");
    assert.deepEqual(old.platform, { os: "linux", architecture: "amd64" }, "platform read from its config");
    assert.equal(old.artifactType, undefined);
    assert.equal(nydus.artifactType, NYDUS_ARTIFACT);
    assert.equal(nydus.digest, first.json.manifests[0].digest);
    assert.deepEqual(nydus.platform, { os: "linux", architecture: "amd64" });
    // The old manifest is still fetchable by digest, the Nydus one too.
    assert.ok(await fetchManifest(reg.url, "mm", old.digest));
    assert.ok(await fetchManifest(reg.url, "mm", nydus.digest));

    // Again with a different chunk compressor: a different Nydus manifest replaces the old Nydus entry.
    const second = await convert(["--source", `oci:${layouts.oci}:v1`, "--output", output, "--compressor", "lz4_block"]);
    assert.notEqual(second.json.manifests[0].digest, nydus.digest);
    const idx2 = await manifestOf("mm", "v1");
    assert.deepEqual(idx2.json.manifests.map((d: any) => [d.digest, d.artifactType ?? null]), [[plain.digest, null], [second.json.manifests[0].digest, NYDUS_ARTIFACT]]);
    // And the same conversion once more leaves the index as it is (no duplicate entry).
    const third = await convert(["--source", `oci:${layouts.oci}:v1`, "--output", output, "--compressor", "lz4_block"]);
    assert.equal(third.json.targets[0].digest, idx2.digest);
    assert.equal((await manifestOf("mm", "v1")).json.manifests.length, 2);
  });
});

describe("platforms", () => {
  before(async () => {
    await skopeo(["copy", "--all", "--dest-tls-verify=false", `oci:${layouts.multi}:v1`, `docker://${reg.host}/multi:v1`]);
  });

  test("--platform linux/arm64 keeps only arm64, as a single manifest", async () => {
    const r = await convert(["--source", `${reg.host}/multi:v1`, "--target", `${reg.host}/multi:arm64`, "--plain-http", "--platform", "linux/arm64"]);
    const m = await manifestOf("multi", "arm64");
    assert.equal(m.json.mediaType, OCI.manifest);
    assert.deepEqual(r.json.manifests.map((x: any) => x.platform), [{ os: "linux", architecture: "arm64", variant: "v8" }]);
    const cfg: any = await fetch(`${reg.url}/v2/multi/blobs/${m.json.config.digest}`).then((x) => x.json());
    assert.equal(cfg.architecture, "arm64");
  });

  test("--all-platforms keeps both in an index; the default is the host's platform only", async () => {
    const all = await convert(["--source", `${reg.host}/multi:v1`, "--target", `${reg.host}/multi:all`, "--plain-http", "--all-platforms"]);
    const idx = await manifestOf("multi", "all");
    assert.equal(idx.json.mediaType, OCI.index);
    assert.deepEqual(idx.json.manifests.map((d: any) => d.platform), [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64", variant: "v8" }]);
    assert.deepEqual(idx.json.manifests.map((d: any) => d.digest), all.json.manifests.map((x: any) => x.digest));
    for (const d of idx.json.manifests) {
      const child = (await manifestOf("multi", d.digest)).json;
      assert.ok(child.layers.slice(0, -1).every((l: any) => l.mediaType === NYDUS_BLOB));
      assert.equal(child.layers.at(-1).annotations["containerd.io/snapshot/nydus-bootstrap"], "true");
    }
    const host = await convert(["--source", `${reg.host}/multi:v1`, "--target", `${reg.host}/multi:host`, "--plain-http"]);
    assert.equal(host.json.manifests.length, 1);
    assert.equal(host.json.manifests[0].platform.architecture, process.arch === "arm64" ? "arm64" : "amd64");
    assert.equal((await manifestOf("multi", "host")).json.mediaType, OCI.manifest);
  });
});

describe("the merged bootstrap records the build options", () => {
  test("--compressor none / lz4_block / zstd (default) is the compressor of the superblock and of every blob", async () => {
    for (const c of ["none", "lz4_block", "zstd"]) {
      const { dest, view } = await convertToLayout(`comp-${c}`, ["--source", `oci:${layouts.oci}:v1`, ...(c === "zstd" ? [] : ["--compressor", c])]);
      const j = await inspectBoot(view);
      assert.equal(j.superBlock.compressor, c);
      assert.ok(j.blobs.length > 0 && j.blobs.every((b: any) => b.compressor === c), JSON.stringify(j.blobs));
      // A compressible file: its chunk is stored compressed unless the compressor is "none".
      const log = (await inspectBoot(view, ["--path", "/app/log.txt"])).nodes[0].chunks;
      assert.equal(log.length, 1);
      if (c === "none") assert.deepEqual([log[0].compressed, log[0].compressedSize], [false, log[0].uncompressedSize]);
      else assert.ok(log[0].compressed && log[0].compressedSize < log[0].uncompressedSize / 4, JSON.stringify(log[0]));
      const report = await checkNydusManifest(dest, view);
      assert.ok(report.blobs.every((b: any) => b.verified));
    }
  });

  test("--chunk-size 0x10000: 64 KiB chunks in the superblock and in the files", async () => {
    const { dest, view } = await convertToLayout("chunk64k", ["--source", `oci:${layouts.oci}:v1`, "--chunk-size", "0x10000"]);
    const j = await inspectBoot(view, ["--path", "/bin/tool"]);
    assert.equal(j.superBlock.chunkSize, 0x10000);
    const tool = j.nodes.find((n: any) => n.path === "/bin/tool");
    assert.equal(tool.chunks.length, Math.ceil(200_000 / 0x10000));
    assert.ok(tool.chunks.every((c: any) => c.uncompressedSize <= 0x10000));
    assert.ok((await checkNydusManifest(dest, view)).blobs.every((b: any) => b.verified));
    // The default is 1 MiB: the same file is one chunk.
    const { view: dflt } = await convertToLayout("chunk-default", ["--source", `oci:${layouts.oci}:v1`]);
    const d = await inspectBoot(dflt, ["--path", "/bin/tool"]);
    assert.equal(d.superBlock.chunkSize, 0x100000);
    assert.equal(d.nodes.find((n: any) => n.path === "/bin/tool").chunks.length, 1);
  });

  test("--prefetch-patterns FILE fills the prefetch table with those paths, in order, skipping missing ones", async () => {
    const list = path.join(work, "prefetch.txt");
    await fsp.writeFile(list, "/app/data.bin\n/etc\n/not/there\n");
    const { view } = await convertToLayout("prefetch", ["--source", `oci:${layouts.oci}:v1`, "--prefetch-patterns", list]);
    const j = await inspectBoot(view);
    const byIno = new Map(j.nodes.map((n: any) => [n.ino, n.path]));
    assert.deepEqual(j.prefetch.map((i: number) => byIno.get(i)), ["/app/data.bin", "/etc"]);
    const { view: none } = await convertToLayout("no-prefetch", ["--source", `oci:${layouts.oci}:v1`]);
    assert.deepEqual((await inspectBoot(none)).prefetch, []);
  });
});

describe("chunk dictionary and layer cache", () => {
  test("--chunk-dict REF: shared chunks are not stored again, the dictionary blob is an extra layer, check passes", async () => {
    await convert(["--source", `oci:${layouts.dict}:v1`, "--target", `${reg.host}/dict:nydus`, "--plain-http"]);
    const dictManifest = (await manifestOf("dict", "nydus")).json;
    const dictBlob = dictManifest.layers[0].digest;

    const without = await convert(["--source", `oci:${layouts.user}:v1`, "--target", `${reg.host}/user:plain`, "--plain-http"]);
    const withDict = await convert(["--source", `oci:${layouts.user}:v1`, "--target", `${reg.host}/user:dict`, "--plain-http", "--chunk-dict", `${reg.host}/dict:nydus`]);
    const a = without.json.manifests[0].layers[0];
    const b = withDict.json.manifests[0].layers[0];
    assert.equal(a.dedupedChunks, 0);
    assert.equal(b.dedupedChunks, Math.ceil(3_000_000 / 0x100000), "every chunk of the shared file comes from the dictionary");
    // `chunks` counts the layer's chunks, stored or not; `dedupedChunks` of them point into the dictionary.
    assert.equal(b.chunks, a.chunks);
    assert.ok(b.size < a.size - 2_500_000, `blob shrinks by about the shared file (${a.size} → ${b.size})`);
    assert.deepEqual(withDict.json.manifests[0].chunkDictBlobs, [dictBlob.slice(7)]);

    const m = (await manifestOf("user", "dict")).json;
    assert.equal(m.layers.length, 3, "own blob + dictionary blob + bootstrap");
    assert.equal(m.layers[0].digest, b.blob);
    assert.equal(m.layers[1].digest, dictBlob);
    assert.equal(m.layers[1].mediaType, NYDUS_BLOB);

    // The result is complete in its own repository: pull it and check every chunk, both blobs.
    const pulled = path.join(work, "pulled-dict");
    await skopeo(["copy", "--src-tls-verify=false", `docker://${reg.host}/user:dict`, `oci:${pulled}:nydus`]);
    const view = await readNydusManifest(pulled, layoutRoot(pulled, "nydus").digest, path.join(work, "view-dict"));
    assert.deepEqual(view.image.blobs.map((x) => `sha256:${x.blobId}`).sort(), [b.blob, dictBlob].sort());
    // The new blob stores only the chunks the dictionary lacks.
    const blobs = (await inspectBoot(view)).blobs;
    assert.equal(blobs.find((x: any) => `sha256:${x.blobId}` === b.blob).chunkCount, b.chunks - b.dedupedChunks);
    // The copy of the shared file reads its chunks from the dictionary blob.
    const shared = (await inspectBoot(view, ["--path", "/opt/copy-of-shared.bin"])).nodes[0];
    assert.ok(shared.chunks.every((c: any) => `sha256:${c.blobId}` === dictBlob), JSON.stringify(shared.chunks.map((c: any) => c.blobId)));
    const report = await checkNydusManifest(pulled, view);
    assert.equal(report.blobs.length, 2);
    assert.ok(report.blobs.every((x: any) => x.verified), JSON.stringify(report.blobs));
  });

  test("--build-cache DIR: a second image sharing the base layer reuses its converted blob", async () => {
    const cache = path.join(work, "layer-cache");
    const one = await convert(["--source", `oci:${layouts.oci}:v1`, "--target", `oci:${path.join(work, "cache-out1")}:n`, "--build-cache", cache]);
    assert.deepEqual(one.json.manifests[0].layers.map((l: any) => l.cached), [false, false]);
    assert.ok(fs.readdirSync(cache).length > 0, "the cache directory was filled");
    const two = await convert(["--source", `oci:${layouts.cache2}:v1`, "--target", `oci:${path.join(work, "cache-out2")}:n`, "--build-cache", cache]);
    const [l0, l1] = two.json.manifests[0].layers;
    assert.deepEqual([l0.cached, l1.cached], [true, false]);
    assert.equal(l0.source, one.json.manifests[0].layers[0].source);
    assert.equal(l0.blob, one.json.manifests[0].layers[0].blob, "the same Nydus blob");
    assert.notEqual(l1.source, one.json.manifests[0].layers[1].source);
  });
});

describe("reports", () => {
  test("--json fields, and --output-json FILE holds the same JSON", async () => {
    const file = path.join(work, "report.json");
    const r = await convert(["--source", `oci:${layouts.oci}:v1`, "--target", `${reg.host}/report:v1`, "--plain-http", "--output-json", file]);
    const j = r.json;
    assert.deepEqual(JSON.parse(await fsp.readFile(file, "utf8")), j);
    assert.deepEqual(Object.keys(j).sort(), ["manifests", "seconds", "source", "targets"]);
    assert.equal(typeof j.seconds, "number");
    const t = j.targets[0];
    assert.deepEqual(Object.keys(t).sort(), ["bytes", "digest", "mediaType", "name", "pushed", "size", "skipped"]);
    const m = await manifestOf("report", "v1");
    assert.deepEqual([t.name, t.digest, t.mediaType, t.size], [`${reg.host}/report:v1`, m.digest, OCI.manifest, m.raw.length]);
    assert.equal(t.pushed + t.skipped, m.json.layers.length);
    const mj = j.manifests[0];
    assert.deepEqual(Object.keys(mj).sort(), ["bootstrap", "chunkDictBlobs", "digest", "layers", "platform", "sourceDigest"]);
    assert.equal(mj.digest, m.digest);
    assert.equal(mj.sourceDigest, layoutRoot(layouts.oci, "v1").digest);
    assert.deepEqual(mj.bootstrap, { digest: m.json.layers.at(-1).digest, size: m.json.layers.at(-1).size });
    assert.deepEqual(mj.layers.map((l: any) => [l.blob, l.size]), m.json.layers.slice(0, -1).map((l: any) => [l.digest, l.size]));
    for (const l of mj.layers) {
      assert.deepEqual(Object.keys(l).sort(), ["blob", "cached", "chunks", "dedupedChunks", "seconds", "size", "source"]);
      assert.ok(l.chunks > 0);
    }
    // Without --json the same run prints a human summary, not JSON.
    const human = await runCliWith(["convert", "--source", `oci:${layouts.oci}:v1`, "--target", `${reg.host}/report:v1`, "--plain-http"]);
    assert.equal(human.code, 0);
    assert.equal(human.json, undefined);
    assert.match(human.stdout, /already there/);
  });
});
