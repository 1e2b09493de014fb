/**
 * convertImage + pushImage between OCI layouts (our layout source and sink): the Nydus
 * manifest, config and bootstrap layer follow nydus-image.md §2–§3, `check` verifies every
 * chunk, and the kernel mount of the merged bootstrap equals the overlay of the source layers.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { convertImage, pushImage, LayerCache } from "./index.ts";
import { layoutSink, layoutSource } from "../layout/index.ts";
import { DigestMismatchError, InvalidInputError, UnsafePathError } from "../internal/errors.ts";
import { layeredTextures, file, dir, random, text, type LayerSpec } from "../../test/textures/spec.ts";
import { layoutRoot, readLayoutJson, writeSourceLayout } from "../../test/support/images.ts";
import { checkNydusManifest, readNydusManifest, snapshotNydusManifest } from "../../test/support/nydus_image.ts";
import { mergeLayers } from "../../test/support/overlay.ts";
import { canMount, haveErofsUtils, skipReason } from "../../test/support/oracles.ts";
import { diffSnapshots, snapshotFromSpec } from "../../test/support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../../test/support/tmp.ts";

const mountSkip = skipReason(haveErofsUtils(), canMount());
let work: string;
before(async () => {
  work = await makeTempDir({ prefix: "nydus-convert-" });
});
after(async () => {
  if (work) await removeTree(work);
});

async function convertLayout(src: string, dst: string, options: Partial<Parameters<typeof convertImage>[1]> = {}, tag = "v1") {
  const workDir = path.join(work, `w-${path.basename(dst)}`);
  const result = await convertImage(layoutSource(src, { tag }), { workDir, platforms: "all", ...options });
  await pushImage(result, layoutSink(dst, { tag: "nydus" }), { tag: "nydus" });
  return result;
}

describe("convert between OCI layouts", () => {
  test("a three-layer image: manifest, config, bootstrap layer, check, and the mounted tree", { skip: mountSkip }, async () => {
    const layers = layeredTextures();
    const src = path.join(work, "src3");
    const dst = path.join(work, "dst3");
    const srcRoot = await writeSourceLayout(src, "v1", [{ layers }]);
    const result = await convertLayout(src, dst, { sourceReference: "example.com/app:v1" });

    const root = layoutRoot(dst, "nydus");
    assert.equal(root.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(root.digest, result.root.digest);
    const view = await readNydusManifest(dst, root.digest, path.join(work, "v3"));
    const m = view.manifest;
    assert.equal(m.layers.length, 4);
    for (const l of m.layers.slice(0, 3)) {
      assert.equal(l.mediaType, "application/vnd.oci.image.layer.nydus.blob.v1");
      assert.deepEqual(l.annotations, { "containerd.io/snapshot/nydus-blob": "true" });
      assert.equal(fs.statSync(path.join(dst, "blobs", "sha256", l.digest.slice(7))).size, l.size);
    }
    const boot = m.layers[3];
    assert.equal(boot.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert.deepEqual(boot.annotations, { "containerd.io/snapshot/nydus-bootstrap": "true", "containerd.io/snapshot/nydus-fs-version": "6" });
    assert.deepEqual(m.annotations, {
      "containerd.io/snapshot/nydus-source-digest": srcRoot.digest,
      "containerd.io/snapshot/nydus-fs-version": "6",
      "containerd.io/snapshot/nydus-source-reference": "example.com/app:v1",
    });
    // diff ids: each blob layer is its own diff id; the bootstrap's is the uncompressed tar's.
    assert.deepEqual(view.config.rootfs.diff_ids, [...m.layers.slice(0, 3).map((l: any) => l.digest), view.diffId]);
    assert.deepEqual(view.config.history.at(-1), { created_by: "Nydus Converter", comment: "Nydus Bootstrap Layer" });
    assert.deepEqual(view.config.config.Cmd, ["/bin/sh"]);
    assert.equal(view.config.os, "linux");
    // Every blob id in the merged bootstrap is a layer of this manifest.
    const layerIds = new Set(m.layers.slice(0, 3).map((l: any) => l.digest.slice(7)));
    assert.ok(view.image.blobs.length > 0);
    for (const b of view.image.blobs) assert.ok(layerIds.has(b.blobId), b.blobId);

    const report = await checkNydusManifest(dst, view);
    assert.equal(report.blobs.length, view.image.blobs.length);
    assert.ok(report.blobs.every((b: any) => b.verified && b.chunks > 0));

    const expected = snapshotFromSpec(mergeLayers(layers), { form: "tar" });
    assert.deepEqual(diffSnapshots(await snapshotNydusManifest(dst, view, path.join(work, "v3")), expected, { ignorePaths: ["/"] }), []);
  });

  test("the same input converts to the same digests (re-runs can skip what is stored)", async () => {
    const src = path.join(work, "det-src");
    await writeSourceLayout(src, "v1", [{ layers: [{ entries: [file("a", random(70_000, 1)), dir("d")] }] }]);
    const events: { id: string; done: number; total: number }[] = [];
    const a = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "det-w1"), onProgress: (e) => events.push(e) });
    // Progress is a running count per layer: never past the total, never going back, ending at it.
    assert.ok(events.length >= 2);
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.done >= events[i - 1]!.done && events[i]!.done <= events[i]!.total);
    assert.equal(events.at(-1)!.done, events.at(-1)!.total);
    const b = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "det-w2") });
    assert.equal(a.root.digest, b.root.digest);
    // Layers built on worker threads or on this thread (small layers by default, all without workers) give the same bytes.
    const c = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "det-w3"), workers: false });
    assert.equal(c.root.digest, a.root.digest);
    const d = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "det-w4"), smallLayerSize: 0 });
    assert.equal(d.root.digest, a.root.digest);
  });

  test("the merge gives the same bytes wherever it runs: on this thread, or on the first finished layer's worker from its in-memory tree", async () => {
    // The textures hold hardlinks, xattrs, symlinks, devices, whiteouts and opaque directories in
    // three layers. workers: false reads every layer bootstrap back on this thread; smallLayerSize 0
    // puts every layer on a worker, and the first one to finish merges, taking its own layer from
    // the tree it built. Every arrival order is exercised across the layer sizes' timings.
    const src = path.join(work, "host-src");
    await writeSourceLayout(src, "v1", [{ layers: layeredTextures() }]);
    const read = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "host-w1"), workers: false });
    for (const concurrency of [1, 2, 3]) {
      const hosted = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, `host-w2-${concurrency}`), smallLayerSize: 0, concurrency });
      assert.equal(hosted.root.digest, read.root.digest, `concurrency ${concurrency}`);
    }
  });

  test("layers take the worker slots largest first; small layers build on this thread at once", async () => {
    const src = path.join(work, "order-src");
    const sizes = [60_000, 400_000, 150_000];
    await writeSourceLayout(src, "v1", [{ layers: sizes.map((n, i) => ({ entries: [file(`l${i}.bin`, random(n, 50 + i))] })) }]);
    const manifest = readLayoutJson(src, layoutRoot(src, "v1").digest);
    const ids: string[] = manifest.layers.map((l: { digest: string }) => l.digest.slice(7, 19));
    const started = (events: { id: string }[]) => [...new Set(events.map((e) => e.id))];
    // One slot and every layer on a worker: started by size, not by position.
    const pooled: { id: string }[] = [];
    await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "order-w1"), concurrency: 1, smallLayerSize: 0, onProgress: (e) => pooled.push(e) });
    assert.deepEqual(started(pooled), [ids[1], ids[2], ids[0]]);
    // The default: these layers are all small, so they build here, in order, none waiting on a slot.
    const here: { id: string }[] = [];
    await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "order-w2"), concurrency: 1, onProgress: (e) => here.push(e) });
    assert.deepEqual(started(here), ids);
  });

  test("Docker media types are kept, or become OCI with `oci`", async () => {
    const src = path.join(work, "docker-src");
    await writeSourceLayout(src, "v1", [{ layers: [{ entries: [file("etc/os", text("docker\n"))] }], docker: true }]);
    const kept = await convertLayout(src, path.join(work, "docker-dst"));
    assert.equal(kept.root.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    const m = readLayoutJson(path.join(work, "docker-dst"), kept.root.digest);
    assert.equal(m.config.mediaType, "application/vnd.docker.container.image.v1+json");
    assert.equal(m.layers[0].mediaType, "application/vnd.oci.image.layer.nydus.blob.v1");
    assert.equal(m.layers.at(-1).mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");

    const oci = await convertLayout(src, path.join(work, "docker-oci-dst"), { oci: true });
    const mo = readLayoutJson(path.join(work, "docker-oci-dst"), oci.root.digest);
    assert.equal(mo.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(mo.config.mediaType, "application/vnd.oci.image.config.v1+json");
    assert.equal(mo.layers.at(-1).mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
  });

  test("zstd and uncompressed source layers convert to the same Nydus blobs as gzip ones", async () => {
    const layers: LayerSpec[] = [{ entries: [file("bin/tool", random(200_000, 5)), file("etc/conf", text("x=1\n"))] }];
    const blobs: string[] = [];
    for (const compression of ["gzip", "zstd", "none"] as const) {
      const src = path.join(work, `comp-${compression}`);
      await writeSourceLayout(src, "v1", [{ layers, compression }]);
      const r = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, `comp-w-${compression}`) });
      blobs.push(r.manifests[0]!.layers[0]!.blob);
    }
    assert.equal(new Set(blobs).size, 1, blobs.join(" "));
  });

  describe("platforms and indexes", () => {
    const images = [
      { layers: [{ entries: [file("arch", text("amd64\n"))] }], platform: { os: "linux", architecture: "amd64" } },
      { layers: [{ entries: [file("arch", text("arm64\n"))] }], platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ];
    let src: string;
    before(async () => {
      src = path.join(work, "multi-src");
      await writeSourceLayout(src, "v1", images);
    });

    test("one platform of an index becomes a single manifest", async () => {
      const r = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "mp-1"), platforms: [{ os: "linux", architecture: "arm64" }] });
      assert.equal(r.root.mediaType, "application/vnd.oci.image.manifest.v1+json");
      assert.deepEqual(r.manifests.map((m) => m.platform), [{ os: "linux", architecture: "arm64", variant: "v8" }]);
    });

    test("all platforms keep an index with each platform", async () => {
      const dst = path.join(work, "mp-all-dst");
      const r = await convertLayout(src, dst);
      assert.equal(r.root.mediaType, "application/vnd.oci.image.index.v1+json");
      const index = readLayoutJson(dst, r.root.digest);
      assert.deepEqual(index.manifests.map((m: any) => m.platform), images.map((i) => i.platform));
      for (const e of index.manifests) {
        const m = readLayoutJson(dst, e.digest);
        assert.equal(m.layers.at(-1).annotations["containerd.io/snapshot/nydus-bootstrap"], "true");
      }
    });

    test("a platform the index lacks is a clear error", async () => {
      await assert.rejects(
        convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "mp-none"), platforms: [{ os: "linux", architecture: "s390x" }] }),
        (e: Error) => e instanceof InvalidInputError && /linux\/s390x/.test(e.message) && /linux\/arm64\/v8/.test(e.message),
      );
    });

    test("mergePlatform: OCI entries first with an empty layer in front, then Nydus entries marked by artifactType", async () => {
      const dst = path.join(work, "mp-merge-dst");
      const r = await convertLayout(src, dst, { mergePlatform: true });
      const index = readLayoutJson(dst, r.root.digest);
      assert.equal(index.mediaType, undefined);
      assert.equal(r.root.mediaType, "application/vnd.oci.image.index.v1+json");
      assert.equal(index.manifests.length, 4);
      const srcIndex = readLayoutJson(src, layoutRoot(src, "v1").digest);
      for (const [i, e] of index.manifests.slice(0, 2).entries()) {
        assert.equal(e.artifactType, undefined);
        assert.deepEqual(e.platform, images[i]!.platform);
        assert.equal(e.annotations["containerd.io/snapshot/nydus-source-digest"], srcIndex.manifests[i].digest);
        const m = readLayoutJson(dst, e.digest);
        const orig = readLayoutJson(src, srcIndex.manifests[i].digest);
        assert.deepEqual(m.layers.slice(1), orig.layers, "original layers follow the empty one");
        assert.equal(m.layers[0].annotations["containerd.io/snapshot/nydus-empty-layer"], "true");
        const cfg = readLayoutJson(dst, m.config.digest);
        assert.equal(cfg.rootfs.diff_ids[0], "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
        for (const l of m.layers) assert.ok(fs.existsSync(path.join(dst, "blobs", "sha256", l.digest.slice(7))), "source layers copied");
      }
      for (const [i, e] of index.manifests.slice(2).entries()) {
        assert.equal(e.artifactType, "application/vnd.nydus.image.manifest.v1+json");
        assert.deepEqual(e.platform, images[i]!.platform);
        const m = readLayoutJson(dst, e.digest);
        assert.equal(m.config.mediaType, "application/vnd.nydus.image.config.v1+json");
      }
    });
  });

  test("the layer cache reuses the blob of a shared base layer", async () => {
    const base: LayerSpec = { entries: [file("usr/lib/libbase.so", random(150_000, 9))] };
    const cache = new LayerCache(path.join(work, "cache"));
    const a = path.join(work, "cache-a");
    const b = path.join(work, "cache-b");
    await writeSourceLayout(a, "v1", [{ layers: [base, { entries: [file("app", text("A\n"))] }] }]);
    await writeSourceLayout(b, "v1", [{ layers: [base, { entries: [file("app", text("B\n"))] }] }]);
    const ra = await convertImage(layoutSource(a, { tag: "v1" }), { workDir: path.join(work, "cache-wa"), cache });
    const rb = await convertImage(layoutSource(b, { tag: "v1" }), { workDir: path.join(work, "cache-wb"), cache });
    assert.deepEqual(ra.manifests[0]!.layers.map((l) => l.cached), [false, false]);
    assert.deepEqual(rb.manifests[0]!.layers.map((l) => l.cached), [true, false]);
    assert.equal(rb.manifests[0]!.layers[0]!.blob, ra.manifests[0]!.layers[0]!.blob);
    // A cache hit gives the same image as a fresh build.
    const fresh = await convertImage(layoutSource(b, { tag: "v1" }), { workDir: path.join(work, "cache-wf") });
    assert.equal(rb.root.digest, fresh.root.digest);
  });

  test("a layer whose bytes do not match its digest is refused and leaves no blob behind", async () => {
    const src = path.join(work, "bad-src");
    const root = await writeSourceLayout(src, "v1", [{ layers: [{ entries: [file("f", random(100_000, 3))] }] }]);
    const m = readLayoutJson(src, root.digest);
    const p = path.join(src, "blobs", "sha256", m.layers[0].digest.slice(7));
    const bytes = fs.readFileSync(p);
    bytes[bytes.length - 20]! ^= 1;
    fs.writeFileSync(p, bytes);
    const workDir = path.join(work, "bad-w");
    await assert.rejects(convertImage(layoutSource(src, { tag: "v1" }), { workDir }), (e: Error) => e instanceof DigestMismatchError || /gzip|digest/i.test(e.message));
    assert.deepEqual(await fsp.readdir(path.join(workDir, "blobs")), []);
  });

  test("a hostile layer (../ names) is refused with a typed error: no blob, no target", async () => {
    const src = path.join(work, "hostile-src");
    const dst = path.join(work, "hostile-dst");
    await writeSourceLayout(src, "v1", [
      { layers: [{ entries: [file("ok", text("fine\n"))] }, { entries: [dir("safe")], tarOnly: [{ name: "../escape.txt", type: "file", content: text("escaped!\n") }] }] },
    ]);
    const workDir = path.join(work, "hostile-w");
    await assert.rejects(
      (async () => pushImage(await convertImage(layoutSource(src, { tag: "v1" }), { workDir }), layoutSink(dst, { tag: "nydus" }), { tag: "nydus" }))(),
      (e: Error) => e instanceof UnsafePathError && e.message.includes("../escape.txt"),
    );
    assert.equal(fs.existsSync(dst), false, "nothing was written to the target");
    assert.deepEqual((await fsp.readdir(path.join(workDir, "blobs"))).filter((f) => f.startsWith(".tmp")), [], "no temporary blob left");
  });

  test("an image that is already Nydus is refused", async () => {
    const src = path.join(work, "nydus-again-src");
    const dst = path.join(work, "nydus-again-dst");
    await writeSourceLayout(src, "v1", [{ layers: [{ entries: [file("f", text("x\n"))] }] }]);
    await convertLayout(src, dst);
    await assert.rejects(convertImage(layoutSource(dst, { tag: "nydus" }), { workDir: path.join(work, "again-w") }), /already a Nydus image/);
  });
});
