import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DigestMismatchError, InvalidInputError } from "../internal/errors.ts";
import { openRafs } from "../rafs/open.ts";
import { openRafsV6 } from "../rafs/v6_reader.ts";
import { canMount, mountErofs, run, skipReason } from "../../test/support/oracles.ts";
import { PROJECT_ROOT, fixture } from "../../test/support/paths.ts";
import { makeTempDir, removeTree, withTempDir } from "../../test/support/tmp.ts";
import { assertSnapshotsEqual, snapshotFromSpec, snapshotTree, type TreeSnapshot } from "../../test/support/tree_snapshot.ts";
import { allTypesTexture, file, random } from "../../test/textures/spec.ts";
import { buildTexture, type BuiltImage } from "./_testing.ts";
import { blockLayout, exportBlock, exportCacheViews } from "./export.ts";

const V6_BLOB = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

/** `mount -t erofs -o ro,loop FILE` (no device= options: the kernel's flatdev mode), always unmounted. */
async function withLoopMount<T>(image: string, fn: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = await fsp.mkdtemp(path.join(path.dirname(image), "mnt-"));
  const r = await run("mount", ["-t", "erofs", "-o", "ro,loop", image, mnt]);
  if (r.code !== 0) {
    const log = await run("dmesg", []);
    throw new Error(`mount -o loop ${image} failed: ${r.stderr.trim()}\n${log.stdout.split("\n").filter((l) => /erofs/i.test(l)).slice(-3).join("\n")}`);
  }
  try {
    return await fn(mnt);
  } finally {
    // -o loop devices are auto-detached at umount
    const u = await run("umount", [mnt]);
    if (u.code !== 0) await run("umount", ["-l", mnt]);
    await fsp.rmdir(mnt);
  }
}

test("exportBlock: fixture rafs-v6-2.2.boot keeps its slot layout (mapped_blkaddr 0x200) and the views hold the chunk bytes", async () => {
  await withTempDir(async (dir) => {
    const boot = new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot")));
    const blobDir = path.join(dir, "blobs");
    await fsp.mkdir(blobDir);
    await fsp.symlink(fixture(`blobs/${V6_BLOB}`), path.join(blobDir, V6_BLOB));
    const out = path.join(dir, "img.erofs");
    const r = await exportBlock(openRafs(boot), boot, blobDir, out);
    assert.equal(r.relocated, false);
    assert.deepEqual(r.blobs, [{ blobId: V6_BLOB, mappedBlkaddr: 0x200, blocks: 9 }]);
    assert.equal(r.size, (0x200 + 9) * 4096);
    assert.equal(r.verifiedChunks, 2);
    const img = await fsp.readFile(out);
    assert.equal(img.length, r.size);
    assert.deepEqual(img.subarray(0, boot.length), Buffer.from(boot), "bootstrap unchanged at 0");
    const views = await exportCacheViews(openRafs(boot), blobDir, path.join(dir, "cache"));
    const view = await fsp.readFile(views[0].path);
    assert.equal(view.length, 0x9000);
    assert.deepEqual(img.subarray(0x200 * 4096), view, "block image tail = the cache view");
    assert.deepEqual((await fsp.readdir(dir)).sort(), ["blobs", "cache", "img.erofs"], "no temp files left");
  });
});

test("blockLayout recomputes unusable mapped_blkaddr (0) with the 512 KiB rule", async () => {
  const boot = new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot")));
  const bad = new Uint8Array(boot);
  new DataView(bad.buffer).setUint32(1408 + 68, 0, true);
  assert.deepEqual(blockLayout(openRafsV6(boot), boot.length), { mapped: [0x200], relocated: false });
  assert.deepEqual(blockLayout(openRafsV6(bad), bad.length), { mapped: [0x80], relocated: true }); // 20480 → 512 KiB
});

test("export refuses v5 images and a corrupt blob", async () => {
  await withTempDir(async (dir) => {
    const v5 = new Uint8Array(await fsp.readFile(fixture("sha256-nocompress-repeatable")));
    await assert.rejects(exportBlock(openRafs(v5), v5, fixture("blobs"), path.join(dir, "x")), InvalidInputError);
    await assert.rejects(exportCacheViews(openRafs(v5), fixture("blobs"), path.join(dir, "c")), /RAFS v5/);

    const b = await buildTexture({ name: "c", entries: [file("f", random(200_000, 3))] }, dir, { input: "tar", compressor: "none" });
    const chunk = b.image.chunks(b.image.lookup("/f")!)[1].chunk;
    const fh = await fsp.open(path.join(b.blobDir, b.blobId), "r+");
    await fh.write(new Uint8Array([0x55, 0xaa]), 0, 2, chunk.compressedOffset + 10);
    await fh.close();
    await assert.rejects(exportBlock(b.image, b.bootstrap, b.blobDir, path.join(dir, "blk")), DigestMismatchError);
    await assert.rejects(exportCacheViews(b.image, b.blobDir, path.join(dir, "views")), DigestMismatchError);
    assert.equal(fs.existsSync(path.join(dir, "blk")), false);
    assert.deepEqual(await fsp.readdir(path.join(dir, "views")), [], "no view, no temp file");
  });
});

describe("exported images mounted by the kernel", { skip: skipReason(canMount()) }, () => {
  const layer = allTypesTexture(0x10000);
  let dir = "";
  let built: BuiltImage;
  before(async () => {
    dir = await makeTempDir({ prefix: "nydus-ts-export-" });
    built = await buildTexture(layer, dir, { input: "dir" });
  });
  after(async () => {
    if (dir) await removeTree(dir);
  });

  /** Our builder stores the root with mtime 0 (like the upstream fixtures): compare the root with the image. */
  const expected = (): TreeSnapshot => {
    const s = snapshotFromSpec(layer, { nsec: true });
    const root = built.image.inode(built.image.superBlock.rootIno);
    s.set("/", { ...s.get("/")!, mtime: root.mtime, mtimeNsec: root.mtimeNsec });
    return s;
  };

  test("export --block (CLI): mount -t erofs -o ro,loop FILE is snapshot-equal to the source", async () => {
    const out = path.join(dir, "image.erofs");
    const cli = await run(process.execPath, [path.join(PROJECT_ROOT, "bin/nydus-ts.js"), "export", built.bootstrapPath, "-D", built.blobDir, "--block", out, "--json"]);
    assert.equal(cli.code, 0, cli.stderr);
    const res = JSON.parse(cli.stdout) as { block: { relocated: boolean; verifiedChunks: number; blobs: { mappedBlkaddr: number }[] } };
    assert.equal(res.block.relocated, false, "our writer's mapped_blkaddr layout is used as is");
    assert.ok(res.block.verifiedChunks > 10);
    await withLoopMount(out, async (mnt) => {
      // sockets included: EROFS carries them
      assertSnapshotsEqual(await snapshotTree(mnt, { nsec: true }), expected(), { ignoreByType: { dir: ["size"] } });
    });
  });

  test("export --block with relocated device slots still mounts", async () => {
    const bad = new Uint8Array(built.bootstrap);
    new DataView(bad.buffer).setUint32(1408 + 68, 0, true);
    const out = path.join(dir, "relocated.erofs");
    const r = await exportBlock(openRafs(bad), bad, built.blobDir, out);
    assert.equal(r.relocated, true);
    await withLoopMount(out, async (mnt) => {
      assertSnapshotsEqual(await snapshotTree(mnt, { nsec: true }), expected());
    });
  });

  test("export --cache-dir views: mount -o ro,device=LOOP is snapshot-equal to the source", async () => {
    const views = await exportCacheViews(built.image, built.blobDir, path.join(dir, "cache"));
    assert.equal(views.length, 1);
    assert.equal(path.basename(views[0].path), `${built.blobId}.blob.data`);
    assert.equal((await fsp.stat(views[0].path)).size, built.image.blobs[0].uncompressedSize);
    const m = await mountErofs(built.bootstrapPath, [views[0].path]);
    try {
      assertSnapshotsEqual(await snapshotTree(m.mountpoint, { nsec: true }), expected());
    } finally {
      await m.close();
    }
  });

  test("unpack (CLI) of the same image into a directory matches the mount", async () => {
    const out = path.join(dir, "unpacked");
    const cli = await run(process.execPath, [path.join(PROJECT_ROOT, "bin/nydus-ts.js"), "unpack", built.bootstrapPath, "-D", built.blobDir, "-o", out, "--json"]);
    assert.equal(cli.code, 0, cli.stderr);
    const res = JSON.parse(cli.stdout) as { warnings: { path: string }[]; stats: { files: number } };
    assert.deepEqual(res.warnings.map((w) => w.path), ["/dev/socket"]);
    const exp = expected();
    exp.delete("/dev/socket");
    assertSnapshotsEqual(await snapshotTree(out, { nsec: true }), exp);
  });
});
