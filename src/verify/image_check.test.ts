/**
 * checkNydusImage: a converted image passes every rule (and equals its source file by file);
 * each kind of damage is reported by the rule that owns it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { checkNydusImage, ImageCheckError } from "./image_check.ts";
import { convertImage, pushImage } from "../convert/index.ts";
import { layoutSink, layoutSource } from "../layout/index.ts";
import { DigestMismatchError } from "../internal/errors.ts";
import { layeredTextures, file, text, random } from "../../test/textures/spec.ts";
import { layoutRoot, readLayoutJson, writeSourceLayout } from "../../test/support/images.ts";
import { makeTempDir, removeTree } from "../../test/support/tmp.ts";

let work: string;
let src: string;
let dst: string;
before(async () => {
  work = await makeTempDir({ prefix: "nydus-imgcheck-" });
  src = path.join(work, "src");
  dst = path.join(work, "dst");
  await writeSourceLayout(src, "v1", [{ layers: layeredTextures() }]);
  const r = await convertImage(layoutSource(src, { tag: "v1" }), { workDir: path.join(work, "w"), mergePlatform: false });
  await pushImage(r, layoutSink(dst, { tag: "nydus" }), { tag: "nydus" });
});
after(async () => {
  if (work) await removeTree(work);
});

let n = 0;
const scratch = () => path.join(work, `scratch-${n++}`);

/** A copy of the converted layout whose manifest (and config) `edit` rewrote, tagged "bad". */
function tamper(edit: (manifest: any, config: any) => void): string {
  const dir = path.join(work, `tampered-${n++}`);
  fs.cpSync(dst, dir, { recursive: true });
  const root = layoutRoot(dir, "nydus");
  const manifest = readLayoutJson(dir, root.digest);
  const config = readLayoutJson(dir, manifest.config.digest);
  edit(manifest, config);
  const put = (obj: unknown) => {
    const bytes = Buffer.from(JSON.stringify(obj));
    const digest = `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
    fs.writeFileSync(path.join(dir, "blobs", "sha256", digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  manifest.config = { ...manifest.config, ...put(config) };
  const m = put(manifest);
  fs.writeFileSync(
    path.join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: root.mediaType, ...m, annotations: { "org.opencontainers.image.ref.name": "bad" } }] }),
  );
  return dir;
}

test("a converted image passes every rule and equals its source file by file", async () => {
  const r = await checkNydusImage(layoutSource(dst, { tag: "nydus" }), { workDir: scratch(), source: layoutSource(src, { tag: "v1" }) });
  assert.equal(r.layers, 4);
  assert.ok(r.bootstrap.blobs.length >= 1 && r.bootstrap.blobs.every((b) => b.verified));
  assert.ok(r.compared && r.compared.files > 5 && r.compared.bytes > 300_000);
});

test("a different source image is reported file by file", async () => {
  const other = path.join(work, "other");
  const layers = layeredTextures();
  layers[0]!.entries.push(file("etc/extra", text("only in the other source\n")));
  await writeSourceLayout(other, "v1", [{ layers }]);
  await assert.rejects(
    checkNydusImage(layoutSource(dst, { tag: "nydus" }), { workDir: scratch(), source: layoutSource(other, { tag: "v1" }) }),
    (e: Error) => e instanceof ImageCheckError && e.problems.some((p) => p.includes('"/etc/extra" is missing from the Nydus image')),
  );
  const changed = path.join(work, "changed");
  const l2 = layeredTextures();
  const i = l2[0]!.entries.findIndex((e) => e.path === "big/shared.bin");
  l2[0]!.entries[i] = file("big/shared.bin", random(300_000, 99));
  await writeSourceLayout(changed, "v1", [{ layers: l2 }]);
  await assert.rejects(
    checkNydusImage(layoutSource(dst, { tag: "nydus" }), { workDir: scratch(), source: layoutSource(changed, { tag: "v1" }) }),
    (e: Error) => e instanceof ImageCheckError && e.problems.some((p) => p.startsWith('"/big/shared.bin" sha256 differs')),
  );
});

test("manifest rule: missing annotations, wrong media types and diff ids", async () => {
  const cases: [string, (m: any, c: any) => void, RegExp][] = [
    ["bootstrap annotation", (m) => delete m.layers.at(-1).annotations["containerd.io/snapshot/nydus-bootstrap"], /not a Nydus image|nydus-bootstrap/],
    ["blob annotation", (m) => delete m.layers[0].annotations["containerd.io/snapshot/nydus-blob"], /layer 0 is not annotated nydus-blob=true/],
    ["blob media type", (m) => (m.layers[1].mediaType = "application/vnd.oci.image.layer.v1.tar"), /layer 1 has media type/],
    ["diff id count", (_m, c) => c.rootfs.diff_ids.pop(), /4 layers but 3 diff ids/],
    ["bootstrap diff id", (_m, c) => (c.rootfs.diff_ids[3] = `sha256:${"0".repeat(64)}`), /uncompressed tar hashes to/],
  ];
  for (const [name, edit, expected] of cases) {
    const dir = tamper(edit);
    await assert.rejects(checkNydusImage(layoutSource(dir, { tag: "bad" }), { workDir: scratch() }), (e: Error) => e instanceof ImageCheckError && expected.test(e.message), name);
  }
});

test("bootstrap rule: a blob the bootstrap names must be a layer", async () => {
  const dir = tamper((m, c) => {
    m.layers.splice(0, 1);
    c.rootfs.diff_ids.splice(0, 1);
  });
  await assert.rejects(checkNydusImage(layoutSource(dir, { tag: "bad" }), { workDir: scratch() }), /which is not a layer of the manifest/);
});

test("blob rule: a damaged blob is refused by its digest", async () => {
  const dir = path.join(work, "damaged");
  fs.cpSync(dst, dir, { recursive: true });
  const m = readLayoutJson(dir, layoutRoot(dir, "nydus").digest);
  const blob = path.join(dir, "blobs", "sha256", m.layers[0].digest.slice(7));
  const bytes = fs.readFileSync(blob);
  bytes[100]! ^= 0x40;
  fs.writeFileSync(blob, bytes);
  await assert.rejects(checkNydusImage(layoutSource(dir, { tag: "nydus" }), { workDir: scratch() }), (e: Error) => e instanceof DigestMismatchError);
});

test("a plain OCI image is not a Nydus image", async () => {
  await assert.rejects(checkNydusImage(layoutSource(src, { tag: "v1" }), { workDir: scratch() }), /not a Nydus image/);
});
