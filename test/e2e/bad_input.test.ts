/**
 * Issue "what must be shown" #4 (CLI side): hostile tars are refused with a typed error
 * and leave no output that looks complete; `check` catches a single flipped byte in
 * any chunk of a blob, for every compressor; corrupt bootstraps fail cleanly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { dir, file, random, repeat, text, type LayerSpec } from "../textures/spec.ts";
import { writeTar } from "../textures/generate.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";
import { cliOk, runCli } from "../support/cli.ts";
import { mulberry32 } from "../support/fuzz.ts";
import { openRafs } from "../../src/rafs/open.ts";
import { checkImage } from "../../src/local/check.ts";

let work: string;
before(async () => {
  work = await makeTempDir({ prefix: "nydus-bad-" });
});
after(async () => {
  if (work) await removeTree(work);
});

describe("hostile tars", () => {
  const cases: [string, LayerSpec["tarOnly"]][] = [
    ["../ traversal", [{ name: "../escape.txt", type: "file", content: text("x\n") }]],
    ["a/../../ traversal", [{ name: "safe/../../up.txt", type: "file", content: text("x\n") }]],
    ["a write through a symlink", [
      { name: "escape-link", type: "symlink", linkname: "/tmp" },
      { name: "escape-link/through.txt", type: "file", content: text("x\n") },
    ]],
    ["a hardlink out of the tree", [{ name: "hard-up", type: "hardlink", linkname: "../outside" }]],
  ];
  for (const [name, tarOnly] of cases) {
    test(`${name} is refused, and no bootstrap or blob is left behind`, async () => {
      const d = path.join(work, name.replace(/\W+/g, "-"));
      await fs.mkdir(d, { recursive: true });
      const tar = path.join(d, "layer.tar");
      await writeTar({ name, entries: [dir("safe"), file("safe/ok.txt", random(70000, 3))], tarOnly }, tar);
      const r = await runCli(["create", tar, "--bootstrap", path.join(d, "image.boot"), "--blob-dir", path.join(d, "blobs"), "--json"]);
      assert.notEqual(r.code, 0);
      assert.match(r.json.error.code, /ERR_NYDUS_(UNSAFE_PATH|INVALID_INPUT|NOT_FOUND)/);
      assert.match(r.stderr, /Cannot/);
      await assert.rejects(fs.stat(path.join(d, "image.boot")));
      assert.deepEqual(await fs.readdir(path.join(d, "blobs")).catch(() => []), [], "no blob (or temp file) remains");
    });
  }

  test("an absolute path lands inside the image root", async () => {
    const d = path.join(work, "abs");
    await fs.mkdir(d, { recursive: true });
    await writeTar({ name: "abs", entries: [], tarOnly: [{ name: "/abs/evil.txt", type: "file", content: text("absolute\n") }] }, path.join(d, "l.tar"));
    await cliOk(["create", path.join(d, "l.tar"), "--bootstrap", path.join(d, "b"), "--blob-dir", path.join(d, "blobs")]);
    const paths = (await cliOk(["inspect", path.join(d, "b"), "--json"])).json.nodes.map((n: { path: string }) => n.path);
    assert.deepEqual(paths, ["/", "/abs", "/abs/evil.txt"]);
  });
});

describe("check finds a single flipped byte in any chunk", () => {
  for (const compressor of ["none", "lz4_block", "zstd"] as const) {
    test(`compressor ${compressor}`, async () => {
      const d = path.join(work, `flip-${compressor}`);
      await fs.mkdir(d, { recursive: true });
      const spec: LayerSpec = {
        name: "flip",
        entries: [file("a", random(5 * 4096 + 17, 9)), file("b", repeat(3 * 4096, 512, 4)), file("c", text("small text file\n".repeat(300)))],
      };
      await writeTar(spec, path.join(d, "l.tar"));
      const boot = path.join(d, "b");
      const blobs = path.join(d, "blobs");
      const created = (await cliOk(["create", path.join(d, "l.tar"), "--bootstrap", boot, "--blob-dir", blobs, "--compressor", compressor, "--chunk-size", "0x1000", "--json"])).json;
      const image = openRafs(new Uint8Array(await fs.readFile(boot)));
      await checkImage(image, { blobDir: blobs });
      const blobFile = path.join(blobs, created.blobId);
      const pristine = await fs.readFile(blobFile);
      const rnd = mulberry32(compressor.length);
      const chunks = new Map<number, { off: number; size: number }>();
      for (const n of (await cliOk(["inspect", boot, "--json"])).json.nodes) {
        if (n.type !== "reg") continue;
        for (const c of (await cliOk(["inspect", boot, "--path", n.path, "--json"])).json.nodes[0].chunks) {
          chunks.set(c.index, { off: c.compressedOffset, size: c.compressedSize });
        }
      }
      assert.ok(chunks.size >= 6);
      for (const [index, { off, size }] of chunks) {
        const bad = Buffer.from(pristine);
        const at = off + rnd.int(size);
        bad[at] ^= 1 << rnd.int(8);
        await fs.writeFile(blobFile, bad);
        await assert.rejects(checkImage(image, { blobDir: blobs }), (e: Error) => {
          assert.match(e.message, new RegExp(`chunk ${index} |${created.blobId}`));
          return true;
        }, `flip at ${at} in chunk ${index}`);
      }
      await fs.writeFile(blobFile, pristine);
      const r = await runCli(["check", boot, "--blob-dir", blobs]);
      assert.equal(r.code, 0, r.stderr);
    });
  }
});

describe("corrupt bootstraps", () => {
  test("truncated or garbage bootstraps fail with a typed error naming the place", async () => {
    const d = path.join(work, "corrupt");
    await fs.mkdir(d, { recursive: true });
    await writeTar({ name: "c", entries: [file("x", text("x\n"))] }, path.join(d, "l.tar"));
    const boot = path.join(d, "b");
    await cliOk(["create", path.join(d, "l.tar"), "--bootstrap", boot, "--blob-dir", path.join(d, "blobs")]);
    const bytes = await fs.readFile(boot);
    await fs.writeFile(path.join(d, "trunc"), bytes.subarray(0, 3000));
    const garbage = Buffer.from(bytes);
    garbage.writeUInt32LE(0xdeadbeef, 1024);
    await fs.writeFile(path.join(d, "garbage"), garbage);
    for (const f of ["trunc", "garbage"]) {
      for (const cmd of ["inspect", "check"]) {
        const r = await runCli([cmd, path.join(d, f), "--json"]);
        assert.equal(r.code, 1);
        assert.equal(r.json.error.code, "ERR_NYDUS_FORMAT", r.stderr);
        assert.match(r.stderr, /Cannot decode \S+ at offset \d+/);
      }
    }
    const missing = await runCli(["inspect", path.join(d, "nope")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot find bootstrap/);
  });
});
