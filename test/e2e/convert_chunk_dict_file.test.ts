/**
 * `convert --chunk-dict FILE`: a bootstrap file built by `create`, its blob next to it.
 * Chunks the dictionary has are not stored again; the dictionary blob becomes an extra
 * layer of the result, which `check` verifies against the source file by file.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { file, random, text } from "../textures/spec.ts";
import { writeTar } from "../textures/generate.ts";
import { writeSourceLayout } from "../support/images.ts";
import { cliOk, runCli } from "../support/cli.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

const SHARED = random(2_500_000, 77);
let work: string;
before(async () => {
  work = await makeTempDir({ prefix: "nydus-dictfile-" });
});
after(async () => {
  if (work) await removeTree(work);
});

test("--chunk-dict FILE reuses the chunks of a bootstrap whose blob is next to it", async () => {
  const dictDir = path.join(work, "dict");
  fs.mkdirSync(dictDir);
  const dictTar = path.join(work, "dict.tar");
  await writeTar({ entries: [file("opt/shared.bin", SHARED)] }, dictTar);
  await cliOk(["create", dictTar, "--bootstrap", path.join(dictDir, "dict.boot"), "--blob-dir", dictDir]);
  const src = path.join(work, "src");
  await writeSourceLayout(src, "v1", [{ layers: [{ entries: [file("app/copy.bin", SHARED), file("app/own.txt", text("own\n"))] }] }]);

  const plain = (await cliOk(["convert", "--source", `oci:${src}:v1`, "--target", `oci:${work}/plain:v1`, "--json"])).json;
  const withDict = (await cliOk(["convert", "--source", `oci:${src}:v1`, "--target", `oci:${work}/dict-out:v1`, "--chunk-dict", path.join(dictDir, "dict.boot"), "--json"])).json;
  const [layer] = withDict.manifests[0].layers;
  assert.ok(layer.dedupedChunks >= 2, `deduplicated ${layer.dedupedChunks} chunks`);
  assert.ok(layer.size < plain.manifests[0].layers[0].size - 2_000_000, "the shared file is not stored again");
  assert.equal(withDict.manifests[0].chunkDictBlobs.length, 1);
  await cliOk(["check", "--target", `oci:${work}/dict-out:v1`, "--source", `oci:${src}:v1`]);

  // A dictionary whose blob is missing is a clear error, before anything is written.
  fs.rmSync(path.join(dictDir, withDict.manifests[0].chunkDictBlobs[0]));
  const r = await runCli(["convert", "--source", `oci:${src}:v1`, "--target", `oci:${work}/broken:v1`, "--chunk-dict", path.join(dictDir, "dict.boot")]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /its blob [0-9a-f]{64} is not next to it/);
  assert.equal(fs.existsSync(path.join(work, "broken")), false);
});
