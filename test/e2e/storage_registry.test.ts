/**
 * The lazy storage against real Debian docker-registry processes on loopback: reading one file
 * of a pushed Nydus image fetches only the bootstrap and that file's chunk ranges; a second
 * registry run as a pull-through cache serves as a mirror (with the mirror's extra header);
 * a stopped mirror falls back to the origin and is tried again after its cool-down; an origin
 * killed mid-read gives a typed RegistryError and reads recover once it restarts on its port.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pushImage } from "../../src/convert/index.ts";
import { RegistryError } from "../../src/internal/errors.ts";
import { layoutSource } from "../../src/layout/index.ts";
import type { RafsInode } from "../../src/rafs/model.ts";
import { parseReference } from "../../src/reference/index.ts";
import { registrySink, registrySource, type RequestInfo } from "../../src/remote/index.ts";
import { buildFixture, CHUNK, type Fixture } from "../../src/storage/_fixture.ts";
import { BlobCache, FileReader, openNydusImage, registryBackend, type NydusImage } from "../../src/storage/index.ts";
import { restartableRegistry, startRegistry, type TestRegistry } from "../support/registry.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

let work: string;
let fx: Fixture;
let origin: TestRegistry;
let img: NydusImage;
let n = 0;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-e2e-storage-" });
  fx = await buildFixture(work);
  origin = await startRegistry();
  await pushImage(fx.result, registrySink(parseReference(`${origin.host}/app:nydus`), { plainHttp: true }), { tag: "nydus" });
  img = await openNydusImage(layoutSource(fx.nydus, { tag: "nydus" }));
});
after(async () => {
  await origin?.stop();
  if (work) await removeTree(work);
});

const inode = (p: string): RafsInode => img.image.lookup(p)!;
const cacheDir = () => path.join(work, `cache-${n++}`);
const isBlobGet = (r: RequestInfo) => r.method === "GET" && /\/blobs\/sha256:/.test(r.url);

/** Merged request count for a file's chunks (contiguous compressed ranges, ≤ 1 MiB). */
function expectedGroups(p: string): { groups: number; bytes: number } {
  const chunks = [...new Map(img.image.chunks(inode(p)).map((fc) => [`${fc.chunk.blobIndex}:${fc.chunk.index}`, fc.chunk])).values()];
  chunks.sort((a, b) => a.blobIndex - b.blobIndex || a.compressedOffset - b.compressedOffset);
  let groups = 0;
  let start = -1;
  let end = -1;
  let blob = -1;
  let bytes = 0;
  for (const c of chunks) {
    bytes += c.compressedSize;
    if (c.blobIndex === blob && c.compressedOffset === end && c.compressedOffset + c.compressedSize - start <= 1 << 20) {
      end += c.compressedSize;
      continue;
    }
    groups++;
    blob = c.blobIndex;
    start = c.compressedOffset;
    end = start + c.compressedSize;
  }
  return { groups, bytes };
}

/** A loopback reverse proxy that records request headers; stoppable and restartable on its port. */
async function recordingProxy(targetUrl: string, port = 0) {
  const target = new URL(targetUrl);
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (r) => {
      // Hop-by-hop headers stay on their hop (a "Connection: close" from upstream is not ours).
      const { connection: _c, "keep-alive": _k, ...headers } = r.headers;
      res.writeHead(r.statusCode ?? 502, headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  const counts = { connections: 0 };
  server.on("connection", () => counts.connections++);
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const p = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${p}`,
    port: p,
    seen,
    counts,
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

describe("registry backend", () => {
  test("consecutive range reads reuse one keep-alive connection", async () => {
    const proxy = await recordingProxy(origin.url);
    try {
      const ref = parseReference(`${origin.host}/app:nydus`);
      const opened = await openNydusImage(registrySource(ref, { plainHttp: true }));
      const backend = registryBackend(parseReference(`${proxy.host}/app:nydus`), { plainHttp: true });
      const blob = opened.image.blobs[0]!;
      const reads = 12;
      const size = Math.floor(blob.compressedSize / reads);
      for (let i = 0; i < reads; i++) {
        const got = await backend.readRange(blob.blobId, i * size, Math.min(size, 4096));
        assert.equal(got.length, Math.min(size, 4096));
      }
      assert.equal(proxy.seen.filter((h) => h.range).length, reads, "one range request per read (plus the transport's /v2/ ping)");
      // One, or two when the first answer's socket was not back in the pool yet as the second
      // request left; a connection per range (12) means answers are cut off instead of read out.
      assert.ok(proxy.counts.connections <= 2, `${proxy.counts.connections} connections for ${reads} ranges: every range answer is read to its end, so its socket goes back to the pool`);
      await backend.close?.();
    } finally {
      await proxy.stop();
    }
  });

  test("reading one file fetches only the bootstrap and that file's chunk ranges", async () => {
    const ref = parseReference(`${origin.host}/app:nydus`);
    const openLog: RequestInfo[] = [];
    const opened = await openNydusImage(registrySource(ref, { plainHttp: true, onRequest: (r) => openLog.push(r) }));
    const bootLayer = opened.manifest.layers.at(-1)!;
    const openBlobGets = openLog.filter(isBlobGet);
    assert.deepEqual(openBlobGets.map((r) => r.url.split("/").at(-1)), [bootLayer.digest], "opening fetches the bootstrap layer and no data blob");
    const log: RequestInfo[] = [];
    const backend = registryBackend(ref, { plainHttp: true, onRequest: (r) => log.push(r) });
    const cache = new BlobCache({ dir: cacheDir(), backend, image: opened.image });
    const reader = new FileReader(opened.image, cache);
    const p = "/data/big.bin";
    assert.deepEqual(Buffer.from(await reader.read(inode(p), 0, inode(p).size)), Buffer.from(fx.files.get(p)!));
    const want = expectedGroups(p);
    const blobGets = log.filter(isBlobGet);
    assert.equal(blobGets.length, want.groups, blobGets.map((r) => r.url).join("\n"));
    assert.ok(blobGets.every((r) => r.status === 206), "ranged answers");
    const totals = cache.metrics.snapshot().totals;
    assert.equal(totals.bytes, want.bytes, "bytes fetched = the file's compressed chunk bytes");
    const blobSize = opened.image.blobs[0]!.compressedSize;
    assert.ok(totals.bytes < blobSize);
    console.log(`open: ${openLog.length} requests (${opened.bytes} bytes); read ${p}: ${log.length} requests (${blobGets.length} range GETs, ${totals.bytes} of ${blobSize} blob bytes)`);
    // Small file: one range request.
    log.length = 0;
    assert.deepEqual(Buffer.from(await reader.read(inode("/etc/passwd"), 0, 1 << 20)), Buffer.from(fx.files.get("/etc/passwd")!));
    assert.equal(log.filter(isBlobGet).length, 1);
    await cache.close();
  });

  describe("mirrors", () => {
    let mirror: TestRegistry;
    before(async () => {
      mirror = await startRegistry({ proxyRemoteUrl: origin.url });
    });
    after(async () => {
      await mirror?.stop();
    });

    test("requests go to the mirror with its headers; a stopped mirror falls back to the origin and is retried after the cool-down", async () => {
      const ref = parseReference(`${origin.host}/app:nydus`);
      const proxy = await recordingProxy(mirror.url);
      const log: RequestInfo[] = [];
      const backend = registryBackend(ref, {
        plainHttp: true, retries: 1, retryDelayMs: 20, onRequest: (r) => log.push(r), mirrorCooldownMs: 300,
        mirrors: [{ host: proxy.host, plainHttp: true, headers: { "x-nydus-mirror": "yes" } }],
      });
      const cache = new BlobCache({ dir: cacheDir(), backend, image: img.image });
      const reader = new FileReader(img.image, cache);
      for (const p of ["/data/big.bin", "/etc/passwd"]) assert.deepEqual(Buffer.from(await reader.read(inode(p), 0, inode(p).size)), Buffer.from(fx.files.get(p)!), p);
      const viaMirror = proxy.seen.filter((h) => h.range !== undefined);
      assert.ok(viaMirror.length >= 2, "range requests reached the mirror");
      assert.ok(viaMirror.every((h) => h["x-nydus-mirror"] === "yes"), "with the mirror's header");
      assert.equal(log.filter((r) => isBlobGet(r) && r.url.includes(origin.host)).length, 0, "nothing from the origin");
      let snap = cache.metrics.snapshot();
      const ep = (name: string) => Object.values(snap.blobs).reduce((s, b) => s + (b.endpoints[name]?.requests ?? 0), 0);
      assert.ok(ep(`mirror ${proxy.host}`) >= 2);
      assert.equal(ep(`origin ${origin.host}`), 0);

      // The mirror goes away: the read still works, from the origin.
      await proxy.stop();
      for (const p of ["/many/f1", "/many/f2"]) assert.deepEqual(Buffer.from(await reader.read(inode(p), 0, inode(p).size)), Buffer.from(fx.files.get(p)!), p);
      snap = cache.metrics.snapshot();
      const failures = Object.values(snap.blobs).reduce((s, b) => s + (b.endpoints[`mirror ${proxy.host}`]?.failures ?? 0), 0);
      assert.equal(failures, 1, "the failed mirror is skipped during its cool-down");
      assert.ok(ep(`origin ${origin.host}`) >= 2);
      assert.deepEqual(backend.endpoints().map((e) => e.healthy), [false, true]);

      // It comes back on the same port: after the cool-down it is used again.
      const again = await recordingProxy(mirror.url, proxy.port);
      await new Promise((r) => setTimeout(r, 350));
      const before = ep(`origin ${origin.host}`);
      assert.deepEqual(Buffer.from(await reader.read(inode("/many/f5"), 0, 1 << 20)), Buffer.from(fx.files.get("/many/f5")!));
      snap = cache.metrics.snapshot();
      assert.equal(ep(`origin ${origin.host}`), before);
      assert.ok(again.seen.some((h) => h["x-nydus-mirror"] === "yes" && h.range !== undefined));
      await cache.close();
      await again.stop();
    });
  });

  test("an origin killed mid-read gives a RegistryError; reads recover when it restarts on the same port", { timeout: 60_000 }, async () => {
    const reg = await restartableRegistry(path.join(work, "own-registry"));
    try {
      await pushImage(fx.result, registrySink(parseReference(`${reg.host}/app:nydus`), { plainHttp: true }), { tag: "nydus" });
      const ref = parseReference(`${reg.host}/app:nydus`);
      let blobGets = 0;
      const backend = registryBackend(ref, {
        plainHttp: true, retries: 1, retryDelayMs: 20,
        onRequest: (r) => {
          if (isBlobGet(r) && r.status === 206 && ++blobGets === 3) void reg.kill();
        },
      });
      const cache = new BlobCache({ dir: cacheDir(), backend, image: img.image, maxInFlight: 1, mergeLimit: CHUNK });
      const reader = new FileReader(img.image, cache);
      const big = inode("/data/big.bin");
      await assert.rejects(reader.read(big, 0, big.size), (e: Error) => e instanceof RegistryError, "typed error while the origin is down");
      await cache.flush();
      const readyBefore = (await cache.readyChunks(0)).length;
      assert.ok(readyBefore >= 2 && readyBefore < 17, `chunks fetched before the kill stay ready (${readyBefore})`);
      await reg.start();
      const missesBefore = cache.metrics.snapshot().totals.misses;
      assert.deepEqual(Buffer.from(await reader.read(big, 0, big.size)), Buffer.from(fx.files.get("/data/big.bin")!));
      const m = cache.metrics.snapshot().totals;
      assert.equal(m.misses - missesBefore, 17 - readyBefore, "only the missing chunks are fetched after the restart");
      await cache.close();
    } finally {
      await reg.kill();
    }
  });
});
