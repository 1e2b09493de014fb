/** CLI conventions: stdin and gzip input, --help for every command, usage errors, prefetch files, --json. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import zlib from "node:zlib";
import { dir, file, random, symlink, text } from "../textures/spec.ts";
import { tarBytes } from "../textures/generate.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk, runCli } from "../support/cli.ts";

let work: string;
const layer = { name: "cli", entries: [dir("etc"), file("etc/hosts", text("127.0.0.1 localhost\n")), file("bin/tool", random(200_000, 5), { mode: 0o755 }), symlink("bin/t", "tool")] };
before(async () => {
  work = await makeTempDir({ prefix: "nydus-cli-" });
});
after(async () => {
  if (work) await removeTree(work);
});

test("a gzip'ed tar on stdin gives the same image as the plain tar file", async () => {
  const tar = tarBytes(layer);
  await fs.writeFile(path.join(work, "l.tar"), tar);
  const a = (await cliOk(["create", path.join(work, "l.tar"), "--bootstrap", path.join(work, "a.boot"), "--blob-dir", path.join(work, "blobs"), "--json"])).json;
  const b = (await cliOk(["create", "-", "--bootstrap", path.join(work, "b.boot"), "--blob-dir", path.join(work, "blobs"), "--json"], { input: zlib.gzipSync(tar) })).json;
  assert.equal(a.blobId, b.blobId, "same blob id: deterministic output");
  assert.deepEqual(await fs.readFile(path.join(work, "a.boot")), await fs.readFile(path.join(work, "b.boot")));
});

test("--prefetch-files puts existing paths in the prefetch table, in order", async () => {
  await fs.writeFile(path.join(work, "prefetch.txt"), "/bin/tool\n# a comment\n/etc\n/missing\n");
  await cliOk(["create", path.join(work, "l.tar"), "--bootstrap", path.join(work, "p.boot"), "--blob-dir", path.join(work, "blobs"), "--prefetch-files", path.join(work, "prefetch.txt")]);
  const j = (await cliOk(["inspect", path.join(work, "p.boot"), "--json"])).json;
  const byIno = new Map(j.nodes.map((n: { ino: number; path: string }) => [n.ino, n.path]));
  assert.deepEqual(j.prefetch.map((i: number) => byIno.get(i)), ["/bin/tool", "/etc"]);
});

test("every command has --help, and usage errors exit 2 without a stack trace", async () => {
  for (const cmd of ["create", "merge", "inspect", "check", "unpack", "export"]) {
    const r = await runCli([cmd, "--help"]);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, /Usage: nydus-ts/);
    assert.match(r.stdout, /--json/);
  }
  const bad = await runCli(["create", "x.tar", "--compressor", "brotli", "--bootstrap", "b", "--blob-dir", "d"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Allowed choices are none, lz4_block, zstd/);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);
  const size = await runCli(["create", path.join(work, "l.tar"), "--chunk-size", "0x3000", "--bootstrap", path.join(work, "s.boot"), "--blob-dir", path.join(work, "blobs")]);
  assert.equal(size.code, 1);
  assert.match(size.stderr, /chunk size/);
});
