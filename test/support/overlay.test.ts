/**
 * The expected merged tree of layeredTextures(), checked by hand-written facts and against the
 * kernel's own overlayfs over the three layers (overlayfs-style whiteouts).
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { layeredTextures, dir, file, text, whiteout, opaque, hardlink } from "../textures/spec.ts";
import { materializeDir } from "../textures/generate.ts";
import { mergeLayers } from "./overlay.ts";
import { assertSnapshotsEqual, snapshotFromSpec, snapshotTree } from "./tree_snapshot.ts";
import { canMountOverlay, mountOverlay, skipReason } from "./oracles.ts";
import { withTempDir } from "./tmp.ts";

test("merged layered texture: whiteouts, opaque dirs, replacements and hardlinks", () => {
  const snap = snapshotFromSpec(mergeLayers(layeredTextures()));
  const has = (p: string) => snap.has(p);
  // whiteouts
  assert.ok(!has("/etc/remove.conf") && !has("/gone") && !has("/gone/a") && !has("/gone/nested/b"));
  assert.ok(has("/etc/keep.conf") && has("/etc/change.conf") && !has("/etc/new.conf"));
  // opaque: lower children gone, upper ones kept across later layers
  const opq = [...snap.keys()].filter((p) => p.startsWith("/opq/"));
  assert.deepEqual(opq, ["/opq/new1", "/opq/new3"]);
  assert.equal(snap.get("/opq")!.xattrs!["user.layer"], Buffer.from("3").toString("hex"));
  // dir <-> file replacement
  assert.equal(snap.get("/swap/dir2file")!.type, "file");
  assert.ok(!has("/swap/dir2file/child"));
  assert.ok(!has("/swap/file2dir") && !has("/swap/file2dir/inner"));
  assert.equal(snap.get("/swap/link2file")!.type, "dir");
  // hardlinks: a replaced in layer 2, b whited out in layer 3 → c alone; x/y → x alone; n/n2 linked
  assert.equal(snap.get("/hl/a")!.nlink, 1);
  assert.equal(snap.get("/hl/c")!.nlink, 1);
  assert.notEqual(snap.get("/hl/a")!.sha256, snap.get("/hl/c")!.sha256);
  assert.equal(snap.get("/hl/c")!.uid, 7);
  assert.equal(snap.get("/hl/x")!.nlink, 1);
  assert.equal(snap.get("/hl/n")!.nlink, 2);
  assert.equal(snap.get("/hl/n2")!.linkGroup, "/hl/n");
  // re-added after a whiteout
  assert.equal(snap.get("/readd/thing")!.mode, 0o755);
  assert.equal(snap.get("/")!.mtime, 1_620_000_000);
  // cross-layer identical content
  assert.equal(snap.get("/big/shared.bin")!.sha256, snap.get("/big/other.bin")!.sha256);
});

test("mergeLayers: opaque keeps same-layer children; whiteout then re-create in a later layer", () => {
  const merged = mergeLayers([
    { entries: [dir("d"), file("d/old", text("o")), file("f", text("1")), file("g", text("g")), hardlink("h", "g")] },
    { entries: [opaque("d"), file("d/new", text("n")), whiteout("f"), whiteout("h")] },
    { entries: [file("f", text("3"))] },
  ]);
  const snap = snapshotFromSpec(merged);
  assert.deepEqual([...snap.keys()], ["/", "/d", "/d/new", "/f", "/g"]);
  assert.equal(snap.get("/g")!.nlink, 1);
  assert.equal(snap.get("/f")!.sha256, "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce");
});

test("mergeLayers matches the kernel overlayfs over the three layers", { skip: skipReason(canMountOverlay()) }, async () => {
  const layers = layeredTextures();
  await withTempDir(async (tmp) => {
    const dirs: string[] = [];
    for (const [i, layer] of layers.entries()) {
      const d = path.join(tmp, `l${i + 1}`);
      await materializeDir(layer, d, { whiteouts: "overlayfs" });
      dirs.push(d);
    }
    const m = await mountOverlay([...dirs].reverse(), path.join(tmp, "merged"));
    try {
      const actual = await snapshotTree(m.mountpoint, { nsec: true, ignoreXattrs: [/^trusted\.overlay\./] });
      // overlayfs reports the nlink of the underlying lower inode (links that were replaced or whited
      // out in upper layers still count there), so nlink/linkGroup are checked by the test above.
      assertSnapshotsEqual(actual, snapshotFromSpec(mergeLayers(layers), { nsec: true }), {
        ignore: ["nlink", "linkGroup"],
        message: "kernel overlayfs vs mergeLayers",
      });
    } finally {
      await m.close();
    }
  });
});
