/**
 * What the lazy runtime fetches, against a real docker-registry: `nydus-ts cat --json` of one
 * file fetches the manifest, the bootstrap and only that file's chunk ranges (checked with the
 * metrics and with a counting proxy's request log); a mount on the same cache dir then serves
 * it with no request (and fetches a new file through a `--mirror` with its header). A chunk
 * corrupted in the registry's storage gives EIO through the mount while other files read
 * correctly; a registry stopped mid-read gives EIO, and reads recover once it is back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { parseReference } from "../../src/reference/index.ts";
import { registrySource } from "../../src/remote/index.ts";
import { openNydusImage, type NydusImage } from "../../src/storage/index.ts";
import type { ChunkInfo } from "../../src/rafs/model.ts";
import { blobDataPath } from "../support/registry.ts";
import { countingProxy, fileHashes, mounted, runtimeSkip, setupWorld, sh, waitGone, type World } from "./runtime_helpers.ts";

const skip = runtimeSkip();
if (skip) console.log(`# runtime fetch tests skipped: ${skip}`);

let w: World;
let img: NydusImage;
before(async () => {
  if (skip) return;
  w = await setupWorld("nydus-e2e-rt-fetch-");
  img = await openNydusImage(registrySource(parseReference(w.ref), { plainHttp: true }));
});
after(async () => {
  await w?.cleanup();
});

/** Unique chunks of an image file, in compressed-offset order. */
function chunksOf(p: string): ChunkInfo[] {
  const list = img.image.chunks(img.image.lookup(p)!).map((fc) => fc.chunk);
  const uniq = [...new Map(list.map((c) => [`${c.blobIndex}:${c.index}`, c])).values()];
  return uniq.sort((a, b) => a.blobIndex - b.blobIndex || a.compressedOffset - b.compressedOffset);
}

async function mountDaemon(mp: string, cacheDir: string, extra: string[] = [], ref = w.ref) {
  fs.mkdirSync(mp, { recursive: true });
  const r = await w.cli(["mount", ref, mp, "--plain-http", "--cache-dir", cacheDir, "--daemon", "--json", ...extra]);
  assert.equal(r.code, 0, `mount --daemon: ${r.stderr}${r.stdout}`);
  return r.json as { pid: number; log: string };
}

async function umount(mp: string, pid: number) {
  const r = await w.cli(["umount", mp, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await waitGone(pid), "daemon exited");
  assert.ok(!mounted(mp));
  return r.json;
}

describe("what the lazy runtime fetches", { skip }, () => {
  test("cat of one file fetches only the bootstrap and its chunks; a mount on the same cache serves it with no request", { timeout: 120_000 }, async () => {
    const proxy = await countingProxy(w.reg.host);
    const mp = path.join(w.work, "mnt-b");
    const cache = path.join(w.work, "cache-b");
    try {
      const file = "/sizes/large";
      const chunks = chunksOf(file);
      assert.equal(chunks.length, 3, "a 3-chunk file");
      const compressed = chunks.reduce((s, c) => s + c.compressedSize, 0);
      const r = await w.cli(["cat", `${proxy.host}/rt:v1`, file, "--plain-http", "--cache-dir", cache, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const want = (await fileHashes(w.tree)).get("./sizes/large");
      assert.equal(r.json.sha256, want);
      // Metrics: the file's chunks only, each fetched once, merged into contiguous ranges.
      assert.equal(r.json.metrics.misses, 3);
      assert.equal(r.json.metrics.verifiedChunks, 3);
      assert.equal(r.json.metrics.bytes, compressed, "exactly the compressed bytes of the file's chunks");
      // The registry side: the same ranges, and besides them only documents and the bootstrap layer.
      const ranges = proxy.rangeGets();
      assert.equal(ranges.length, r.json.metrics.requests);
      const rangeBytes = ranges.reduce((s, q) => {
        const m = /bytes=(\d+)-(\d+)/.exec(q.range!)!;
        return s + Number(m[2]) - Number(m[1]) + 1;
      }, 0);
      assert.equal(rangeBytes, compressed);
      const bootDigest = img.manifest.layers.at(-1)!.digest;
      const wholeBlobs = proxy.seen.filter((q) => q.method === "GET" && /\/blobs\//.test(q.url) && !q.range);
      assert.deepEqual(wholeBlobs.map((q) => q.url), [`/v2/rt/blobs/${bootDigest}`], "the only whole blob is the bootstrap layer");
      const docs = proxy.seen.filter((q) => q.method === "GET" && /\/manifests\//.test(q.url));
      assert.equal(r.json.fetched.requests, r.json.metrics.requests + docs.length + wholeBlobs.length);
      const imageBytes = img.manifest.layers.reduce((s, l) => s + l.size, 0);
      assert.ok(r.json.fetched.bytes < imageBytes / 4, `fetched ${r.json.fetched.bytes} of ${imageBytes} bytes`);
      console.log(`# cat ${file}: fetched ${r.json.fetched.bytes} bytes in ${r.json.fetched.requests} requests (chunks: ${compressed} bytes in ${ranges.length} ranges; image layers ${imageBytes} bytes)`);

      // The same cache dir under a mount, with the proxy as a mirror: the file comes from the cache.
      const before = proxy.rangeGets().length;
      const d = await mountDaemon(mp, cache, ["--mirror", `http://${proxy.host}`, "--mirror-header", `X-Dragonfly-Registry: http://${w.reg.host}`]);
      const s1 = await sh(`sha256sum '${mp}${file}'`);
      assert.equal(s1.stdout.slice(0, 64), want);
      assert.equal(proxy.rangeGets().length, before, "no chunk request for the cached file");
      // A new file is fetched through the mirror, with its header.
      const s2 = await sh(`sha256sum '${mp}/sizes/chunk-plus-1'`);
      assert.equal(s2.stdout.slice(0, 64), (await fileHashes(w.tree)).get("./sizes/chunk-plus-1"));
      const viaMirror = proxy.rangeGets().slice(before);
      assert.ok(viaMirror.length > 0 && viaMirror.every((q) => q.headers["x-dragonfly-registry"] === `http://${w.reg.host}`), "mirror requests carry the header");
      const u = await umount(mp, d.pid);
      const t = u.last.metrics.totals;
      assert.equal(t.hits, 3, "the cached file's 3 chunks were cache hits");
      assert.equal(t.misses, chunksOf("/sizes/chunk-plus-1").length);
      assert.equal(t.requests, viaMirror.length);
    } finally {
      await proxy.stop();
    }
  });

  test("a chunk corrupted in the registry gives EIO through the mount; other files read correctly", { timeout: 120_000 }, async () => {
    const victim = "/sizes/chunk-plus-1";
    const chunk = chunksOf(victim)[0]!;
    const blob = img.image.blobs[chunk.blobIndex]!;
    const data = blobDataPath(w.reg.dataDir, `sha256:${blob.blobId}`);
    const at = chunk.compressedOffset + Math.floor(chunk.compressedSize / 2);
    const fd = fs.openSync(data, "r+");
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, at);
    fs.writeSync(fd, Buffer.from([one[0]! ^ 0xff]), 0, 1, at);
    const mp = path.join(w.work, "mnt-c");
    let d: { pid: number; log: string } | undefined;
    try {
      d = await mountDaemon(mp, path.join(w.work, "cache-c"));
      const bad = await sh(`cat '${mp}${victim}' > /dev/null`);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /Input\/output error/);
      const want = await fileHashes(w.tree, `.${victim}`);
      assert.deepEqual(await fileHashes(mp, `.${victim}`), want, "every other file reads correctly");
      assert.ok(want.size > 20);
      assert.match(fs.readFileSync(d.log, "utf8"), new RegExp(`${victim.replaceAll("/", "\\/")}|digest|verif`, "i"), "the daemon logs the failed read");
    } finally {
      fs.writeSync(fd, one, 0, 1, at);
      fs.closeSync(fd);
      if (d) await umount(mp, d.pid);
    }
  });

  test("a registry stopped mid-read gives EIO; reads recover once it is back on the same port", { timeout: 120_000 }, async () => {
    const mp = path.join(w.work, "mnt-stop");
    const d = await mountDaemon(mp, path.join(w.work, "cache-stop"));
    const file = `${mp}/big/random-8m.bin`;
    try {
      const first = await sh(`dd if='${file}' of=/dev/null bs=64k count=1 status=none`);
      assert.equal(first.code, 0, first.stderr);
      await w.reg.kill();
      const down = await sh(`cat '${file}' > /dev/null`, { timeoutMs: 90_000 });
      assert.notEqual(down.code, 0, "the read fails while the registry is down");
      assert.match(down.stderr, /Input\/output error/);
      await w.reg.start();
      const back = await sh(`sha256sum '${file}'`);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(back.stdout.slice(0, 64), (await fileHashes(w.tree)).get("./big/random-8m.bin"));
    } finally {
      await w.reg.start();
      await umount(mp, d.pid);
    }
  });
});
