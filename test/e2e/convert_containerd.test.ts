/**
 * A `--merge-platform` result in front of plain containerd (no Nydus snapshotter): `ctr images
 * pull --plain-http` of the merged index works, containerd unpacks the OCI entry (not the Nydus
 * one, whose config type it does not know), `ctr images mount` shows the source image's overlay
 * tree, and `ctr run` (runc) runs a program from it. nydus-image.md §3.2.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { bytes, dir, file, symlink, text, layeredTextures, type LayerSpec } from "../textures/spec.ts";
import { writeSourceLayout } from "../support/images.ts";
import { startContainerd, type TestContainerd } from "../support/containerd.ts";
import { canMountOverlay, skipReason } from "../support/oracles.ts";
import { mergeLayers } from "../support/overlay.ts";
import { cliOkWith, inspectRaw, skopeo } from "../support/peers.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import { diffSnapshots, snapshotFromSpec, snapshotTree } from "../support/tree_snapshot.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

const skip = skipReason(canMountOverlay(), fs.existsSync("/usr/bin/containerd") ? { ok: true } : { ok: false, reason: "containerd not installed" });
const sha256 = (s: string) => `sha256:${crypto.createHash("sha256").update(s).digest("hex")}`;

/** layeredTextures plus a layer with busybox, so runc has something to run. */
const layers: LayerSpec[] = [
  ...layeredTextures(),
  { name: "busybox", entries: [dir("bin"), file("bin/busybox", bytes(fs.readFileSync("/bin/busybox")), { mode: 0o755 }), symlink("bin/sh", "busybox"), symlink("bin/cat", "busybox"), file("etc/motd", text("hello from the OCI entry\n"))] },
];

let work: string;
let reg: TestRegistry;
let ctrd: TestContainerd;

describe("merged index (--merge-platform) pulled by containerd", { skip }, () => {
  before(async () => {
    work = await makeTempDir({ prefix: "nydus-e2e-ctrd-" });
    reg = await startRegistry();
    await writeSourceLayout(path.join(work, "src"), "v1", [{ layers }]);
    await skopeo(["copy", "--dest-tls-verify=false", `oci:${path.join(work, "src")}:v1`, `docker://${reg.host}/app:v1`]);
    ctrd = await startContainerd();
  });
  after(async () => {
    await ctrd?.stop();
    await reg?.stop();
    if (work) await removeTree(work);
  });

  test("ctr pulls the index, unpacks the OCI entry, mounts its tree and runs it", async () => {
    const ref = `${reg.host}/app:merged`;
    const r = await cliOkWith(["convert", "--source", `${reg.host}/app:v1`, "--target", ref, "--plain-http", "--merge-platform", "--json"]);
    const { raw, json: index } = await inspectRaw(ref);
    assert.equal(sha256(raw), r.json.targets[0].digest);
    assert.equal(index.manifests.length, 2);
    const [ociEntry, nydusEntry] = index.manifests;
    assert.equal(ociEntry.artifactType, undefined, "OCI entry first, unmarked");
    assert.equal(nydusEntry.artifactType, "application/vnd.nydus.image.manifest.v1+json");
    assert.deepEqual(ociEntry.platform, nydusEntry.platform);
    const ociManifest = (await inspectRaw(`${reg.host}/app@${ociEntry.digest}`)).json;
    const nydusManifest = (await inspectRaw(`${reg.host}/app@${nydusEntry.digest}`)).json;
    assert.equal(nydusManifest.config.mediaType, "application/vnd.nydus.image.config.v1+json");
    assert.equal(ociManifest.layers[0].annotations?.["containerd.io/snapshot/nydus-empty-layer"], "true");

    await ctrd.ctr(["images", "pull", "--plain-http", ref]);
    // ctr images ls: the name points at the merged index.
    const ls = (await ctrd.ctr(["images", "ls"])).stdout.split("\n").find((l) => l.startsWith(ref + " "));
    assert.ok(ls, "image listed");
    assert.ok(ls.includes(r.json.targets[0].digest), ls);
    assert.ok(ls.includes("application/vnd.oci.image.index.v1+json"), ls);
    // The unpacked manifest is the one whose config got a snapshot reference: the OCI entry's.
    const content = (await ctrd.ctr(["content", "ls"])).stdout.split("\n");
    const unpackedConfigs = content.filter((l) => l.includes("containerd.io/gc.ref.snapshot.")).map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(unpackedConfigs, [ociManifest.config.digest], "only the OCI entry's config is unpacked");
    assert.notEqual(nydusManifest.config.digest, ociManifest.config.digest);

    // ctr images mount: the tree is the source image's (the overlay of its layers).
    const mnt = path.join(work, "mnt");
    await fsp.mkdir(mnt);
    await ctrd.ctr(["images", "mount", ref, mnt]);
    try {
      assert.equal(await fsp.readFile(path.join(mnt, "etc", "motd"), "utf8"), "hello from the OCI entry\n");
      assert.ok(!fs.existsSync(path.join(mnt, "image", "image.boot")), "not the Nydus bootstrap layer");
      const expected = snapshotFromSpec(mergeLayers(layers), { form: "tar" });
      // "/" left out (it is the mount's root); overlayfs reports nlink 1 for merged directories.
      const diffs = diffSnapshots(await snapshotTree(mnt), expected, { ignorePaths: ["/"], ignoreByType: { dir: ["nlink"] }, names: ["ctr mount", "overlay model"] })
        // overlayfs (without index=on) reports the lower inode's link count: hl/c and hl/x lost
        // their hard-link partners (hl/b, hl/y) to whiteouts in an upper layer, yet still show
        // nlink 3 / 2. That is the kernel's view of containerd's snapshots, not the image.
        .filter((d) => !/^\/hl\/[cx]: (nlink|linkGroup) /.test(d));
      assert.deepEqual(diffs, []);
    } finally {
      await ctrd.ctr(["images", "unmount", "--rm", mnt]);
    }

    // ctr run with runc.
    const run = await ctrd.ctr(["run", "--rm", "--net-host", ref, `t-${process.pid}`, "/bin/cat", "/etc/motd", "/etc/keep.conf"]);
    assert.equal(run.stdout, "hello from the OCI entry\nkeep v1\n");
  });
});
