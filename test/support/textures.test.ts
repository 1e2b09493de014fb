/**
 * Proves the two texture generators agree: the directory form and the hand-written tar (extracted
 * by GNU tar) both snapshot to exactly `snapshotFromSpec(spec)`.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { allTypesTexture, contentBytes, hostileTexture, layeredTextures, random, repeat, type LayerSpec } from "../textures/spec.ts";
import { materializeDir, tarBytes, writeTar, type TarOptions, type WhiteoutStyle } from "../textures/generate.ts";
import { assertSnapshotsEqual, diffSnapshots, snapshotFromSpec, snapshotTree } from "./tree_snapshot.ts";
import { gnuTarCreate, gnuTarExtract, haveGnuTar, run, skipReason } from "./oracles.ts";
import { withTempDir } from "./tmp.ts";

const notRoot = process.getuid?.() !== 0 ? "not root: devices, ownership and trusted.* xattrs need root" : false;
const skip = notRoot || skipReason(haveGnuTar());

async function checkBothForms(layer: LayerSpec, whiteouts: WhiteoutStyle, tarOpts: TarOptions = {}): Promise<void> {
  await withTempDir(async (tmp) => {
    const dir = path.join(tmp, "dir");
    const tarFile = path.join(tmp, "layer.tar");
    const ext = path.join(tmp, "ext");
    await materializeDir(layer, dir, { whiteouts });
    await writeTar(layer, tarFile, { whiteouts, ...tarOpts });
    await gnuTarExtract(tarFile, ext);
    const fromDir = await snapshotTree(dir, { nsec: true });
    const fromTar = await snapshotTree(ext, { nsec: true });
    assertSnapshotsEqual(fromDir, snapshotFromSpec(layer, { whiteouts, nsec: true }), { message: `${layer.name}: directory form vs spec` });
    assertSnapshotsEqual(fromTar, snapshotFromSpec(layer, { whiteouts, nsec: true, form: "tar" }), { message: `${layer.name}: tar form vs spec` });
    // and directly against each other (sockets are the only allowed difference)
    const d = diffSnapshots(fromDir, fromTar, { names: ["dir", "tar"] });
    assert.ok(d.every((l) => /only in dir \(socket\)/.test(l)), d.join("\n"));
  });
}

test("all-types texture: directory and tar forms agree with the spec", { skip }, async () => {
  await checkBothForms(allTypesTexture(64 * 1024), "oci");
});

test("all-types texture with GNU long-name entries and a ./ prefix", { skip }, async () => {
  const layer = allTypesTexture(4096);
  await checkBothForms(layer, "oci", { longNames: "gnu", namePrefix: "./" });
});

for (const style of ["oci", "overlayfs"] as const) {
  test(`layered textures (${style} whiteouts): each layer's forms agree`, { skip }, async () => {
    for (const layer of layeredTextures()) await checkBothForms(layer, style);
  });
}

test("tar members carry exact names, PAX xattrs (binary) and whiteout markers", { skip }, async () => {
  await withTempDir(async (tmp) => {
    const [, l2] = layeredTextures();
    const tarFile = path.join(tmp, "l2.tar");
    await writeTar(l2, tarFile);
    const list = await run("tar", ["-tf", tarFile]);
    assert.equal(list.code, 0, list.stderr);
    const names = list.stdout.trim().split("\n");
    assert.ok(names.includes("etc/.wh.remove.conf"), names.join("\n"));
    assert.ok(names.includes("opq/.wh..wh..opq"));
    assert.ok(names.includes("gone") === false && names.includes(".wh.gone"));
    assert.ok(names.includes("hl/n2"));
    const verbose = await run("tar", ["-tvf", tarFile]);
    assert.match(verbose.stdout, /hl\/n2 link to hl\/n/);
    // binary xattr value survives a GNU tar round trip byte for byte
    const all = allTypesTexture(4096);
    const allTar = path.join(tmp, "all.tar");
    await writeTar(all, allTar);
    const ext = path.join(tmp, "ext");
    await gnuTarExtract(allTar, ext);
    const g = await run("getfattr", ["-n", "user.binary", "-e", "hex", path.join(ext, "xattrs/user")]);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /user\.binary=0x000102fffe0080/);
  });
});

test("hostile raw entries are written verbatim", { skip: skipReason(haveGnuTar()) }, async () => {
  const { layer, hostileNames } = hostileTexture();
  await withTempDir(async (tmp) => {
    const tarFile = path.join(tmp, "h.tar");
    await writeTar(layer, tarFile);
    // --no-wildcards and -P: list names exactly as stored
    const list = await run("tar", ["-tPf", tarFile]);
    assert.equal(list.code, 0, list.stderr);
    const names = list.stdout.trim().split("\n");
    for (const n of hostileNames) assert.ok(names.includes(n), `missing raw name ${n} in\n${names.join("\n")}`);
    const v = await run("tar", ["-tvPf", tarFile]);
    assert.match(v.stdout, /hard-out link to \/etc\/passwd/);
    assert.match(v.stdout, /escape-link -> \/tmp/);
  });
});

test("tar bytes are deterministic and 512-aligned; content generators are seeded", () => {
  const a = tarBytes(allTypesTexture(4096));
  const b = tarBytes(allTypesTexture(4096));
  assert.equal(a.length % 512, 0);
  assert.deepEqual(a, b);
  assert.notDeepEqual(contentBytes(random(1000, 1)), contentBytes(random(1000, 2)));
  assert.deepEqual(contentBytes(random(1000, 7)), contentBytes(random(1000, 7)));
  const r = contentBytes(repeat(3 * 4096 + 5, 4096, 9));
  assert.deepEqual(r.subarray(0, 4096), r.subarray(4096, 8192));
  assert.deepEqual(r.subarray(0, 5), r.subarray(3 * 4096));
});

test("GNU tar created from the materialised directory round-trips too", { skip }, async () => {
  const layer = allTypesTexture(4096);
  await withTempDir(async (tmp) => {
    const dir = path.join(tmp, "dir");
    await materializeDir(layer, dir);
    await gnuTarCreate(dir, path.join(tmp, "gnu.tar"));
    await gnuTarExtract(path.join(tmp, "gnu.tar"), path.join(tmp, "ext"));
    assertSnapshotsEqual(await snapshotTree(path.join(tmp, "ext"), { nsec: true }), snapshotFromSpec(layer, { nsec: true, form: "tar" }));
  });
});
