/**
 * Proves the oracle and snapshot helpers independently of our own builder: an image made by
 * mkfs.erofs from the all-types texture, mounted by the kernel, snapshots exactly like the spec.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { allTypesTexture, file, random, text } from "../textures/spec.ts";
import { materializeDir } from "../textures/generate.ts";
import { assertSnapshotsEqual, snapshotFromSpec, snapshotTree } from "./tree_snapshot.ts";
import {
  canMount,
  dumpErofsImage,
  fsckErofs,
  haveErofsUtils,
  mkfsErofs,
  mountErofs,
  skipReason,
  withErofsMount,
} from "./oracles.ts";
import { loopsBackedUnder, mountsUnder, withTempDir } from "./tmp.ts";

const MiB = 1 << 20;
const skipTools = skipReason(haveErofsUtils());
const skipMount = skipReason(haveErofsUtils(), canMount());
// mkfs.erofs 1.5 refuses 255-byte names, so the oracle texture uses 254-byte ones.
const texture = () => allTypesTexture(MiB, { longNameBytes: 254 });

async function buildImage(tmp: string): Promise<{ meta: string; blob: string; src: string }> {
  const src = path.join(tmp, "src");
  const meta = path.join(tmp, "meta.img");
  const blob = path.join(tmp, "blob.img");
  await materializeDir(texture(), src);
  await mkfsErofs(meta, src, { chunkSize: MiB, blobdev: blob });
  return { meta, blob, src };
}

test("canMount and haveErofsUtils report a reason when unavailable", () => {
  for (const a of [canMount(), haveErofsUtils()]) {
    if (!a.ok) assert.ok(a.reason.length > 0);
    else assert.equal(a.reason, undefined);
  }
  if (!canMount().ok) process.stdout.write(`# canMount: ${canMount().reason}\n`);
});

test("kernel mount of a mkfs.erofs image of the all-types texture equals the spec snapshot", { skip: skipMount }, async () => {
  await withTempDir(async (tmp) => {
    const { meta, blob, src } = await buildImage(tmp);
    const dump = await dumpErofsImage(meta, [blob], ["-s"]);
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /chunked_file/);
    assert.match(dump.stdout, /device_table/);
    await withErofsMount(meta, [blob], async (mnt) => {
      const mounted = await snapshotTree(mnt, { nsec: true });
      assertSnapshotsEqual(mounted, snapshotFromSpec(texture(), { nsec: true }), { message: "kernel EROFS mount vs spec" });
      assertSnapshotsEqual(mounted, await snapshotTree(src, { nsec: true }), { message: "kernel EROFS mount vs source dir" });
      assert.equal(mounted.get("/modes/setuid")!.mode, 0o4755);
      assert.equal(mounted.get("/xattrs/capability")!.xattrs!["security.capability"].length, 40);
    });
    assert.deepEqual(loopsBackedUnder(tmp), [], "loop devices detached after close");
  });
});

test("fsck.erofs accepts the image and --extract reproduces the tree (minus 1.5's known losses)", { skip: skipTools }, async () => {
  await withTempDir(async (tmp) => {
    const { meta, blob } = await buildImage(tmp);
    const check = await fsckErofs(meta, [blob]);
    assert.equal(check.code, 0, check.stderr);
    const ext = path.join(tmp, "ext");
    const r = await fsckErofs(meta, [blob], { extractTo: ext });
    assert.equal(r.code, 0, r.stderr);
    // erofs-utils 1.5 --extract: drops setuid/setgid (keeps sticky), writes hard links as separate
    // files and writes no xattrs. Everything else (content, owners, mtime ns, devices, fifo, socket,
    // symlinks) must match.
    assertSnapshotsEqual(await snapshotTree(ext, { nsec: true, xattrs: false }), snapshotFromSpec(texture(), { nsec: true, xattrs: false }), {
      modeMask: 0o1777,
      ignore: ["nlink", "linkGroup"],
      message: "fsck.erofs --extract vs spec",
    });
    const noDevice = await fsckErofs(meta, []);
    assert.notEqual(noDevice.code, 0, "fsck without --device must fail (extra devices mismatch)");
  });
});

test("mountErofs cleans up loops when the mount fails", { skip: skipMount }, async () => {
  await withTempDir(async (tmp) => {
    const bogus = path.join(tmp, "bogus.img");
    fs.writeFileSync(bogus, new Uint8Array(16384).fill(0xab));
    const mp = path.join(tmp, "mnt");
    await assert.rejects(mountErofs(bogus, [], mp), /Cannot mount EROFS/);
    assert.deepEqual(loopsBackedUnder(tmp), []);
    assert.deepEqual(mountsUnder(tmp), []);
  });
});

test("parallel mounts do not collide; withTempDir removes leftover mounts and loops", { skip: skipMount }, async () => {
  let leaked = "";
  await withTempDir(async (tmp) => {
    const images = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const src = path.join(tmp, `src${i}`);
        await materializeDir({ entries: [file("id.txt", text(`image ${i}\n`)), file("data.bin", random(5000, i))] }, src);
        const meta = path.join(tmp, `meta${i}.img`);
        const blob = path.join(tmp, `blob${i}.img`);
        await mkfsErofs(meta, src, { chunkSize: MiB, blobdev: blob });
        return { meta, blob };
      }),
    );
    const mounts = await Promise.all(images.map((im) => mountErofs(im.meta, [im.blob])));
    try {
      const ids = mounts.map((m) => fs.readFileSync(path.join(m.mountpoint, "id.txt"), "utf8"));
      assert.deepEqual(ids, ["image 0\n", "image 1\n", "image 2\n"]);
      assert.equal(new Set(mounts.flatMap((m) => m.loops)).size, 6);
    } finally {
      await Promise.all(mounts.map((m) => m.close()));
    }
    // leave one mounted inside tmp on purpose: withTempDir must clean it up
    const leftover = await mountErofs(images[0].meta, [images[0].blob], path.join(tmp, "leftover"));
    leaked = leftover.mountpoint;
    assert.equal(mountsUnder(tmp).length, 1);
  });
  assert.ok(leaked !== "");
  assert.deepEqual(mountsUnder(leaked), []);
  assert.deepEqual(loopsBackedUnder(path.dirname(leaked)), []);
  assert.equal(fs.existsSync(path.dirname(leaked)), false);
});
