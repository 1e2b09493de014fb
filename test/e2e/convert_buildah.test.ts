/**
 * Images built by buildah (a Dockerfile with COPY, ENV, WORKDIR and RUN steps that create,
 * modify, hard-link and delete files — RUN rm leaves whiteouts) converted from its archives:
 * an oci-archive piped into `convert --source - --output type=nydus,name=…,registry.insecure=true`,
 * a docker-archive given as a plain FILE (format auto-detected), and `--output type=nydus,dest=DIR`.
 * The kernel-mounted merged bootstrap of each result must equal the image's final tree as
 * `umoci unpack` lays it out.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { layoutRoot, readLayoutJson } from "../support/images.ts";
import { buildahStore } from "../support/buildah.ts";
import { checkNydusManifest, readNydusManifest, snapshotNydusManifest, type NydusManifestView } from "../support/nydus_image.ts";
import { canMount, haveErofsUtils, skipReason } from "../support/oracles.ts";
import { cliOkWith, fetchToLayout, procOk, skopeo } from "../support/peers.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { diffSnapshots, snapshotTree, type DiffOptions, type TreeSnapshot } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

const peersSkip = skipReason(haveErofsUtils(), canMount(), process.getuid?.() === 0 ? { ok: true } : { ok: false, reason: "buildah/umoci unpack need root" });

const DOCKERFILE = `FROM localhost/bbbase:1
COPY app/ /app/
ENV GREETING=hello-nydus
WORKDIR /app
RUN echo made > /app/made.txt && mkdir -p /data/sub /data/gone && echo a > /data/a && echo b > /data/sub/b && echo g > /data/gone/g && ln /data/a /data/a.hard && chmod 0640 /data/a
RUN echo modified >> /app/conf && rm /data/sub/b && rm -rf /data/gone /tmp && ln -s /app/made.txt /data/link && rm /app/remove.me
COPY more/ /app/more/
`;

/**
 * Fields left out when comparing the kernel mount with umoci's unpack:
 * - "/" itself: umoci sets the rootfs directory's attributes (mtime 1970, nlink from its own
 *   bundle layout) and the Nydus root comes from the merge rule; neither is a file of the image.
 * - mtime of directories: umoci's unpack writes children after restoring a directory's time in
 *   some orders, and RUN layers carry fresh directory times that overlay order decides; regular
 *   files, symlinks and hard links are compared with their mtimes.
 */
const UMOCI_DIFF: DiffOptions = { ignorePaths: ["/"], ignoreByType: { dir: ["mtime"] }, names: ["nydus mount", "umoci unpack"] };

let work: string;
let reg: TestRegistry;
let ociArchive: string;
let dockerArchive: string;
let sourceLayout: string;
let expected: TreeSnapshot;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-e2e-buildah-" });
  reg = await startRegistry();
  const bh = await buildahStore(path.join(work, "bh"));
  await bh.makeBusyboxBase("localhost/bbbase:1");
  const ctx = path.join(work, "ctx");
  await fsp.mkdir(path.join(ctx, "app"), { recursive: true });
  await fsp.mkdir(path.join(ctx, "more"), { recursive: true });
  await fsp.writeFile(path.join(ctx, "app", "hello.txt"), "hello\n");
  await fsp.writeFile(path.join(ctx, "app", "conf"), "conf v1\n");
  await fsp.writeFile(path.join(ctx, "app", "remove.me"), "short-lived\n");
  // A file larger than one chunk, so the blob has several chunks.
  const big = Buffer.alloc(1_500_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  await fsp.writeFile(path.join(ctx, "more", "big.bin"), big);
  await fsp.writeFile(path.join(ctx, "Dockerfile"), DOCKERFILE);
  await bh.build(ctx, "localhost/built:1");
  ociArchive = path.join(work, "built-oci.tar");
  dockerArchive = path.join(work, "built-docker.tar");
  await bh.push("localhost/built:1", `oci-archive:${ociArchive}:built`);
  await bh.push("localhost/built:1", `docker-archive:${dockerArchive}:localhost/built:1`, { docker: true });

  // The source image's final tree, as umoci lays it out.
  sourceLayout = path.join(work, "src-layout");
  await skopeo(["copy", `oci-archive:${ociArchive}:built`, `oci:${sourceLayout}:built`]);
  const bundle = path.join(work, "bundle");
  await procOk("umoci", ["unpack", "--image", `${sourceLayout}:built`, bundle]);
  expected = await snapshotTree(path.join(bundle, "rootfs"));
});
after(async () => {
  await reg?.stop();
  if (work) await removeTree(work);
});

/** The source manifest (from the layout skopeo made of the oci-archive). */
function sourceManifest(): any {
  return readLayoutJson(sourceLayout, layoutRoot(sourceLayout, "built").digest);
}

async function pullAndView(ref: string, name: string): Promise<{ layout: string; view: NydusManifestView }> {
  const layout = path.join(work, `pulled-${name}`);
  await skopeo(["copy", "--src-tls-verify=false", `docker://${ref}`, `oci:${layout}:nydus`]);
  const view = await readNydusManifest(layout, layoutRoot(layout, "nydus").digest, path.join(work, `view-${name}`));
  return { layout, view };
}

async function assertTreeAndCheck(layout: string, view: NydusManifestView, name: string) {
  const report = await checkNydusManifest(layout, view);
  assert.equal(report.blobs.length, view.image.blobs.length);
  assert.ok(report.blobs.every((b: any) => b.verified), JSON.stringify(report.blobs));
  const mounted = await snapshotNydusManifest(layout, view, path.join(work, `view-${name}`));
  assert.deepEqual(diffSnapshots(mounted, expected, UMOCI_DIFF), []);
}

describe("buildah images → Nydus", { skip: peersSkip }, () => {
  const nydusBlobs = new Map<string, string[]>();

  test("the source really has RUN whiteouts, a hard link and a deleted directory", async () => {
    const m = sourceManifest();
    assert.ok(m.layers.length >= 5, `one layer per COPY/RUN step on top of the base (got ${m.layers.length})`);
    const names: string[] = [];
    for (const l of m.layers) {
      const r = await procOk("tar", ["-tzf", path.join(sourceLayout, "blobs", "sha256", l.digest.slice(7))]);
      names.push(...r.stdout.split("\n"));
    }
    for (const wh of ["data/sub/.wh.b", "data/.wh.gone", ".wh.tmp", "app/.wh.remove.me"]) assert.ok(names.some((n) => n.replace(/^\.\//, "") === wh), `whiteout ${wh} in a layer`);
    assert.equal(expected.get("/data/a")?.linkGroup, "/data/a");
    assert.equal(expected.get("/data/a.hard")?.linkGroup, "/data/a");
    assert.ok(!expected.has("/data/gone") && !expected.has("/tmp") && !expected.has("/data/sub/b"));
  });

  test("oci-archive on stdin → --output type=nydus,name=…,registry.insecure=true: same tree as umoci's unpack", async () => {
    const ref = `${reg.host}/built:v1`;
    const r = await cliOkWith(["convert", "--source", "-", "--output", `type=nydus,name=${ref},registry.insecure=true`, "--json"], { stdinFile: ociArchive });
    assert.equal(r.json.targets[0].name, ref);
    const { layout, view } = await pullAndView(ref, "stdin");
    const m = view.manifest;
    const src = sourceManifest();
    assert.equal(m.layers.length, src.layers.length + 1);
    assert.equal(view.config.config.Env.includes("GREETING=hello-nydus"), true);
    assert.equal(view.config.config.WorkingDir, "/app");
    assert.deepEqual(r.json.manifests[0].layers.map((l: any) => l.source), src.layers.map((l: any) => l.digest));
    nydusBlobs.set("oci", m.layers.slice(0, -1).map((l: any) => l.digest));
    await assertTreeAndCheck(layout, view, "stdin");
  });

  test("docker-archive as a plain FILE (auto-detected) → registry: Docker types kept, same Nydus blobs, same tree", async () => {
    const ref = `${reg.host}/built:docker`;
    await cliOkWith(["convert", "--source", dockerArchive, "--target", ref, "--plain-http"]);
    // skopeo 1.9 refuses a Docker schema 2 manifest with the Nydus blob layer type, so fetch it plainly.
    const layout = path.join(work, "pulled-docker");
    const { digest } = await fetchToLayout(reg.url, "built", "docker", layout, "nydus");
    const view = await readNydusManifest(layout, digest, path.join(work, "view-docker"));
    assert.equal(view.manifest.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    assert.equal(view.manifest.layers.at(-1).mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    // Uncompressed Docker layers and gzip OCI layers of the same tars give the same Nydus blobs.
    const blobs = view.manifest.layers.slice(0, -1).map((l: any) => l.digest);
    if (nydusBlobs.has("oci")) assert.deepEqual(blobs, nydusBlobs.get("oci"));
    await assertTreeAndCheck(layout, view, "docker");
  });

  test("--output type=nydus,dest=DIR writes an OCI layout with the same tree", async () => {
    const dest = path.join(work, "dest-layout");
    const r = await cliOkWith(["convert", "--source", `oci-archive:${ociArchive}`, "--output", `type=nydus,dest=${dest}`, "--json"]);
    assert.ok(fs.existsSync(path.join(dest, "oci-layout")));
    const index = JSON.parse(await fsp.readFile(path.join(dest, "index.json"), "utf8"));
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0].digest, r.json.targets[0].digest);
    const view = await readNydusManifest(dest, index.manifests[0].digest, path.join(work, "view-dest"));
    await assertTreeAndCheck(dest, view, "dest");
  });
});
