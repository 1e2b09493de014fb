/**
 * `nydus-ts convert` against a real docker-registry, checked with skopeo: a hand-written
 * three-layer source (whiteouts, opaque dirs, hard links) is pushed with skopeo, converted
 * registry → registry, read back with skopeo (inspect --raw, copy --all, copy into a layout),
 * `check`ed chunk by chunk and kernel-mounted: the mounted merged bootstrap must equal the
 * overlay model of the source layers. Then auth and TLS: Docker config credentials with
 * --ca on a TLS+htpasswd registry, a bearer-token registry, and the error messages for a
 * wrong password, an untrusted certificate and HTTPS spoken to a plain-HTTP registry.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { layeredTextures } from "../textures/spec.ts";
import { layoutRoot, writeSourceLayout } from "../support/images.ts";
import { checkNydusManifest, readNydusManifest, snapshotNydusManifest } from "../support/nydus_image.ts";
import { mergeLayers } from "../support/overlay.ts";
import { canMount, haveErofsUtils, skipReason } from "../support/oracles.ts";
import { cliOkWith, inspectRaw, runCliWith, skopeo, writeDockerConfig } from "../support/peers.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { diffSnapshots, snapshotFromSpec } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

const mountSkip = skipReason(haveErofsUtils(), canMount());
const layers = layeredTextures();
let work: string;
let srcLayout: string;
/** No credentials unless a test writes some: the CLI child must not read the real ~/.docker. */
let emptyDockerConfig: string;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-e2e-registry-" });
  srcLayout = path.join(work, "src");
  await writeSourceLayout(srcLayout, "v1", [{ layers }]);
  emptyDockerConfig = path.join(work, "docker-empty");
  fs.mkdirSync(emptyDockerConfig);
});
after(async () => {
  if (work) await removeTree(work);
});

const sha256 = (s: string) => `sha256:${crypto.createHash("sha256").update(s).digest("hex")}`;

/** The Nydus manifest shape of nydus-image.md §2.1/§2.4 for a 3-layer source. */
function assertNydusShape(m: any) {
  assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
  assert.equal(m.layers.length, layers.length + 1);
  for (const l of m.layers.slice(0, -1)) {
    assert.equal(l.mediaType, "application/vnd.oci.image.layer.nydus.blob.v1");
    assert.equal(l.annotations["containerd.io/snapshot/nydus-blob"], "true");
  }
  assert.equal(m.layers.at(-1).annotations["containerd.io/snapshot/nydus-bootstrap"], "true");
}

describe("plain-HTTP registry: skopeo → convert → skopeo", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry();
    await skopeo(["copy", "--dest-tls-verify=false", `oci:${srcLayout}:v1`, `docker://${reg.host}/app:v1`]);
  });
  after(async () => {
    await reg?.stop();
  });

  test("the converted image reads back with skopeo, checks clean and mounts as the overlay of the source layers", { skip: mountSkip }, async () => {
    const r = await cliOkWith(["convert", "--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:nydus`, "--plain-http", "--json"], { env: { DOCKER_CONFIG: emptyDockerConfig } });
    const target = r.json.targets[0];
    assert.equal(target.name, `${reg.host}/app:nydus`);

    // skopeo sees exactly the manifest we report (digest of the raw bytes).
    const { raw, json: m } = await inspectRaw(`${reg.host}/app:nydus`);
    assert.equal(sha256(raw), target.digest);
    assertNydusShape(m);
    // The source manifest is recorded, and the source tag is untouched.
    const src = await inspectRaw(`${reg.host}/app:v1`);
    assert.equal(m.annotations["containerd.io/snapshot/nydus-source-digest"], sha256(src.raw));
    assert.equal(m.annotations["containerd.io/snapshot/nydus-source-reference"], `${reg.host}/app:v1`);
    assert.equal(r.json.manifests[0].sourceDigest, sha256(src.raw));

    // skopeo copy --all (registry → registry, digests preserved) and into an OCI layout.
    await skopeo(["copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${reg.host}/app:nydus`, `docker://${reg.host}/copy:nydus`]);
    assert.equal(sha256((await inspectRaw(`${reg.host}/copy:nydus`)).raw), target.digest);
    const pulled = path.join(work, "pulled");
    await skopeo(["copy", "--all", "--src-tls-verify=false", `docker://${reg.host}/app:nydus`, `oci:${pulled}:nydus`]);
    const root = layoutRoot(pulled, "nydus");
    assert.equal(root.digest, target.digest, "skopeo keeps the manifest bytes");

    const view = await readNydusManifest(pulled, root.digest, path.join(work, "view"));
    assert.deepEqual(view.config.rootfs.diff_ids, [...m.layers.slice(0, -1).map((l: any) => l.digest), view.diffId]);
    const layerIds = new Set(m.layers.slice(0, -1).map((l: any) => l.digest.slice(7)));
    for (const b of view.image.blobs) assert.ok(layerIds.has(b.blobId), `blob ${b.blobId} is a layer of the manifest`);
    const report = await checkNydusManifest(pulled, view);
    assert.equal(report.blobs.length, view.image.blobs.length);
    assert.ok(report.blobs.every((b: any) => b.verified && b.chunks > 0), JSON.stringify(report.blobs));

    const expected = snapshotFromSpec(mergeLayers(layers), { form: "tar" });
    // "/" is left out: the root's attributes come from the merge rule of the top layer on both sides,
    // but its nlink/mtime on a kernel mount are not part of the overlay model.
    assert.deepEqual(diffSnapshots(await snapshotNydusManifest(pulled, view, path.join(work, "view")), expected, { ignorePaths: ["/"], names: ["mounted", "overlay model"] }), []);
  });

  test("HTTPS spoken to a plain-HTTP registry (no --plain-http) fails with a message about plain HTTP", async (t) => {
    const r = await runCliWith(["convert", "--source", `${reg.host}/app:v1`, "--target", `${reg.host}/app:never`], { env: { DOCKER_CONFIG: emptyDockerConfig } });
    t.diagnostic(r.stderr.trim());
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /plain HTTP|--plain-http/i);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    const tags = await skopeo(["list-tags", "--tls-verify=false", `docker://${reg.host}/app`]);
    assert.ok(!JSON.parse(tags.stdout).Tags.includes("never"), tags.stdout);
  });
});

describe("TLS + htpasswd registry: Docker config credentials and --ca", () => {
  let reg: TestRegistry;
  let dockerConfig: string;
  before(async () => {
    reg = await startRegistry({ auth: "htpasswd", tls: true });
    await skopeo(["copy", "--dest-creds", `${reg.username}:${reg.password}`, "--dest-cert-dir", reg.certDir!, `oci:${srcLayout}:v1`, `docker://${reg.host}/secure/app:v1`]);
    dockerConfig = await writeDockerConfig(path.join(work, "docker-ok"), { [reg.host]: { username: reg.username!, password: reg.password! } });
  });
  after(async () => {
    await reg?.stop();
  });

  test("credentials from $DOCKER_CONFIG/config.json and --ca CAFILE: the image is converted and readable", async () => {
    const r = await cliOkWith(["convert", "--source", `${reg.host}/secure/app:v1`, "--target", `${reg.host}/secure/app:nydus`, "--ca", reg.caFile!, "--json"], { env: { DOCKER_CONFIG: dockerConfig } });
    const creds = ["--creds", `${reg.username}:${reg.password}`, "--cert-dir", reg.certDir!];
    const { raw, json: m } = await inspectRaw(`${reg.host}/secure/app:nydus`, creds);
    assert.equal(sha256(raw), r.json.targets[0].digest);
    assertNydusShape(m);
    const pulled = path.join(work, "pulled-tls");
    await skopeo(["copy", "--src-creds", `${reg.username}:${reg.password}`, "--src-cert-dir", reg.certDir!, `docker://${reg.host}/secure/app:nydus`, `oci:${pulled}:nydus`]);
    const view = await readNydusManifest(pulled, layoutRoot(pulled, "nydus").digest, path.join(work, "view-tls"));
    const report = await checkNydusManifest(pulled, view);
    assert.ok(report.blobs.every((b: any) => b.verified), JSON.stringify(report.blobs));
  });

  test("a wrong password exits non-zero with an unauthorized message naming the registry", async (t) => {
    const bad = await writeDockerConfig(path.join(work, "docker-bad"), { [reg.host]: { username: reg.username!, password: "wrong-password" } });
    const r = await runCliWith(["convert", "--source", `${reg.host}/secure/app:v1`, "--target", `${reg.host}/secure/app:badpw`, "--ca", reg.caFile!], { env: { DOCKER_CONFIG: bad } });
    t.diagnostic(r.stderr.trim());
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /401|unauthori[sz]ed/i);
    assert.match(r.stderr, new RegExp(reg.host.replace(/\./g, "\\.")), "names the registry");
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });

  test("without --ca the self-signed certificate is refused with a certificate message", async (t) => {
    const r = await runCliWith(["convert", "--source", `${reg.host}/secure/app:v1`, "--target", `${reg.host}/secure/app:noca`], { env: { DOCKER_CONFIG: dockerConfig } });
    t.diagnostic(r.stderr.trim());
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate/i);
    assert.match(r.stderr, /--ca/, "says how to trust it");
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });
});

describe("bearer-token registry", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ auth: "token" });
    await skopeo(["copy", "--dest-tls-verify=false", "--dest-creds", `${reg.username}:${reg.password}`, `oci:${srcLayout}:v1`, `docker://${reg.host}/tok/app:v1`]);
  });
  after(async () => {
    await reg?.stop();
  });

  test("--creds gets tokens for pull and push scopes; skopeo reads the result", async () => {
    const r = await cliOkWith(["convert", "--source", `${reg.host}/tok/app:v1`, "--target", `${reg.host}/tok/nydus:v1`, "--plain-http", "--creds", `${reg.username}:${reg.password}`, "--json"], { env: { DOCKER_CONFIG: emptyDockerConfig } });
    const { raw, json: m } = await inspectRaw(`${reg.host}/tok/nydus:v1`, ["--tls-verify=false", "--creds", `${reg.username}:${reg.password}`]);
    assert.equal(sha256(raw), r.json.targets[0].digest);
    assertNydusShape(m);
    // A different repository than the source: every blob had to be mounted or uploaded there.
    assert.deepEqual([r.json.targets[0].pushed, r.json.targets[0].skipped], [m.layers.length, 0]);
    const bad = await runCliWith(["convert", "--source", `${reg.host}/tok/app:v1`, "--target", `${reg.host}/tok/nydus:bad`, "--plain-http", "--creds", `${reg.username}:nope`], { env: { DOCKER_CONFIG: emptyDockerConfig } });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /401|unauthori[sz]ed|credentials rejected/i);
  });
});
