/**
 * The blob cache over a local backend, with a real converted Nydus image (OCI layout): whole
 * files read back equal to the source, the second read comes from the cache, corrupted chunks
 * are refused by digest, single-flight, merged requests, prefetch priority and cancellation,
 * re-verification of a damaged cache, and image opening.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { layoutSource } from "../layout/index.ts";
import { DigestMismatchError, InvalidInputError } from "../internal/errors.ts";
import type { RafsInode } from "../rafs/model.ts";
import { makeTempDir, removeTree } from "../../test/support/tmp.ts";
import { buildFixture, CHUNK, type Fixture } from "./_fixture.ts";
import { localBackend, type BlobBackend } from "./backend.ts";
import { BlobCache, type BlobCacheOptions } from "./cache.ts";
import { openNydusImage, type NydusImage } from "./image.ts";
import { prefetch } from "./prefetch.ts";
import { FileReader } from "./reader.ts";
import { verifyPlain } from "./verify.ts";

let work: string;
let fx: Fixture;
let img: NydusImage;
let n = 0;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-storage-" });
  fx = await buildFixture(work);
  img = await openNydusImage(layoutSource(fx.nydus, { tag: "nydus" }));
});
after(async () => {
  if (work) await removeTree(work);
});

function open(options: Partial<BlobCacheOptions> = {}): { cache: BlobCache; reader: FileReader; dir: string } {
  const dir = options.dir ?? path.join(work, `cache-${n++}`);
  const cache = new BlobCache({ dir, backend: localBackend(fx.nydus), image: img.image, ...options });
  return { cache, reader: new FileReader(img.image, cache), dir };
}

const inode = (p: string): RafsInode => {
  const i = img.image.lookup(p);
  assert.ok(i, p);
  return i;
};
const readAll = (reader: FileReader, p: string) => reader.read(inode(p), 0, inode(p).size + 10);

/** A backend that logs each request (blob id, offset, length) before passing it on. */
function logging(inner: BlobBackend, log: string[]): BlobBackend {
  return { name: inner.name, readRange: (id, off, len, signal) => (log.push(`${id.slice(0, 8)}@${off}+${len}`), inner.readRange(id, off, len, signal)) };
}

describe("BlobCache over a local OCI layout", () => {
  test("opening the image: a Nydus layout works, the source (OCI) layout is refused", async () => {
    assert.equal(img.image.blobs.length, 2);
    assert.deepEqual(img.missingBlobs, []);
    for (const b of img.image.blobs) assert.equal(img.blobs.get(b.blobId)?.mediaType, "application/vnd.oci.image.layer.nydus.blob.v1");
    await assert.rejects(openNydusImage(layoutSource(fx.source, { tag: "v1" })), (e: Error) => e instanceof InvalidInputError && /not a Nydus image/.test(e.message));
  });

  test("whole files read back equal to the source; the second read is served from the cache", async () => {
    const { cache, reader, dir } = open();
    try {
      for (const [p, want] of fx.files) assert.deepEqual(Buffer.from(await readAll(reader, p)), Buffer.from(want), p);
      await cache.flush();
      const first = cache.metrics.snapshot().totals;
      assert.ok(first.bytes > 0 && first.misses > 0 && first.verifiedChunks === first.misses);
      for (const [p, want] of fx.files) assert.deepEqual(Buffer.from(await readAll(reader, p)), Buffer.from(want), p);
      const second = cache.metrics.snapshot().totals;
      assert.equal(second.bytes, first.bytes, "no new bytes fetched");
      assert.equal(second.requests, first.requests);
      assert.ok(second.hits > first.hits);
      // Partial reads across chunk boundaries.
      const big = fx.files.get("/data/big.bin")!;
      const part = await reader.read(inode("/data/big.bin"), CHUNK - 5, 2 * CHUNK + 10);
      assert.deepEqual(Buffer.from(part), Buffer.from(big.subarray(CHUNK - 5, 3 * CHUNK + 5)));
      assert.equal((await reader.read(inode("/data/big.bin"), big.length - 3, 100)).length, 3);
      assert.equal((await reader.read(inode("/data/big.bin"), big.length + 3, 100)).length, 0);
      await cache.close();
      // A fresh instance over the same directory reads everything without fetching.
      const again = open({ dir });
      for (const [p, want] of fx.files) assert.deepEqual(Buffer.from(await readAll(again.reader, p)), Buffer.from(want), p);
      assert.equal(again.cache.metrics.snapshot().totals.requests, 0);
      await again.cache.close();
    } finally {
      await cache.close();
    }
  });

  test("contiguous missing chunks are merged up to mergeLimit; smaller limits mean more requests", async () => {
    const big = inode("/data/big.bin");
    const chunks = img.image.chunks(big).length; // 17, contiguous, ~1 MiB
    for (const [limit, expected] of [[1 << 20, 2], [4 * CHUNK, Math.ceil(chunks / 4)], [CHUNK, chunks]] as const) {
      const log: string[] = [];
      const cache = new BlobCache({ dir: path.join(work, `cache-${n++}`), backend: logging(localBackend(fx.nydus), log), image: img.image, mergeLimit: limit });
      const reader = new FileReader(img.image, cache);
      assert.deepEqual(Buffer.from(await reader.read(big, 0, big.size)), Buffer.from(fx.files.get("/data/big.bin")!));
      assert.equal(log.length, expected, `mergeLimit ${limit}: ${log.join(" ")}`);
      await cache.close();
    }
  });

  test("with a gap allowance, chunks a few bytes apart share one request; the gap is read and dropped", async () => {
    const big = inode("/data/big.bin");
    const every = img.image.chunks(big).map((fc) => fc.chunk);
    const wanted = every.filter((_, i) => i % 2 === 0); // a one-chunk gap between each two
    const gaps = wanted.slice(1).map((c, i) => c.compressedOffset - (wanted[i]!.compressedOffset + wanted[i]!.compressedSize));
    const widestGap = Math.max(...gaps);
    assert.ok(Math.min(...gaps) > 0, "the wanted chunks are not contiguous");
    // Requests for an allowance: one, plus one per gap wider than it.
    const requestsFor = (gap: number) => 1 + gaps.filter((g) => g > gap).length;
    assert.equal(requestsFor(0), wanted.length);
    for (const gap of [0, widestGap - 1, widestGap]) {
      const expected = requestsFor(gap);
      const log: string[] = [];
      // A merge limit above the whole span, so that only the gaps decide.
      const cache = new BlobCache({ dir: path.join(work, `cache-${n++}`), backend: logging(localBackend(fx.nydus), log), image: img.image, mergeLimit: 4 << 20 });
      const got = await cache.readChunks(wanted, { gap });
      got.forEach((plain, k) => verifyPlain(img.image.blobs[wanted[k]!.blobIndex]!, img.image.superBlock.digester, wanted[k]!, plain));
      assert.equal(log.length, expected, `gap ${gap}: ${log.join(" ")}`);
      const span = wanted.at(-1)!.compressedOffset + wanted.at(-1)!.compressedSize - wanted[0]!.compressedOffset;
      if (expected === 1) assert.match(log[0]!, new RegExp(`@${wanted[0]!.compressedOffset}\\+${span}$`), "one request spans the wanted chunks and the gaps between them");
      // Only the wanted chunks became ready, not the skipped ones.
      await cache.flush();
      for (const c of every) assert.equal(await cache.isReady(c), wanted.includes(c), `chunk ${c.index}`);
      await cache.close();
    }
  });

  test("parallel reads of one chunk share one backend request (single-flight)", async () => {
    const log: string[] = [];
    const c = new BlobCache({ dir: path.join(work, `cache-${n++}`), backend: logging(localBackend(fx.nydus), log), image: img.image });
    const r = new FileReader(img.image, c);
    const f = inode("/data/big.bin");
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => r.read(f, 1000 + i, 100)));
    for (let i = 0; i < outs.length; i++) assert.deepEqual(Buffer.from(outs[i]!), Buffer.from(fx.files.get("/data/big.bin")!.subarray(1000 + i, 1100 + i)));
    assert.equal(log.length, 1, log.join(" "));
    const m = c.metrics.snapshot().totals;
    assert.equal(m.misses, 1);
    assert.equal(m.verifiedChunks, 1);
    await c.close();
  });

  test("a corrupted chunk in the blob gives DigestMismatchError naming blob, chunk and offset; other files still read", async () => {
    // A plain blob directory (blobs named by id), with one byte of big.bin's chunk 3 flipped.
    const blobDir = path.join(work, "corrupt-blobs");
    await fs.mkdir(blobDir);
    for (const b of img.image.blobs) await fs.copyFile(path.join(fx.nydus, "blobs", "sha256", b.blobId), path.join(blobDir, b.blobId));
    const victim = img.image.chunks(inode("/data/big.bin"))[3]!.chunk;
    assert.equal(victim.compressed, false, "random data is stored as is");
    const blobId = img.image.blobs[victim.blobIndex]!.blobId;
    const fh = await fs.open(path.join(blobDir, blobId), "r+");
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, victim.compressedOffset + 100);
    one[0] = one[0]! ^ 0xff;
    await fh.write(one, 0, 1, victim.compressedOffset + 100);
    await fh.close();

    const cache = new BlobCache({ dir: path.join(work, `cache-${n++}`), backend: localBackend(blobDir), image: img.image });
    const reader = new FileReader(img.image, cache);
    const big = inode("/data/big.bin");
    const isMismatch = (e: Error) =>
      e instanceof DigestMismatchError && e.message.includes(blobId) && e.message.includes(`chunk ${victim.index} `) && e.message.includes(`compressed offset ${victim.compressedOffset}`);
    await assert.rejects(reader.read(big, 0, big.size), isMismatch);
    await assert.rejects(reader.read(big, 3 * CHUNK + 10, 10), isMismatch, "again: the bad chunk was not marked ready");
    // Reads not touching chunk 3 work, also of the same file.
    assert.deepEqual(Buffer.from(await reader.read(big, 0, 3 * CHUNK)), Buffer.from(fx.files.get("/data/big.bin")!.subarray(0, 3 * CHUNK)));
    for (const p of ["/etc/passwd", "/data/rep.bin", "/many/f3"]) assert.deepEqual(Buffer.from(await readAll(reader, p)), Buffer.from(fx.files.get(p)!), p);
    await cache.flush();
    const ready = await cache.readyChunks(victim.blobIndex);
    assert.ok(!ready.includes(victim.index));
    assert.ok(ready.includes(0) && ready.includes(2));
    assert.ok(cache.metrics.blob(blobId).verificationFailures >= 2);
    await cache.close();
  });

  test("verifyOnHit: damaged cache data is detected, refetched, and served correctly", async () => {
    const { cache, reader, dir } = open();
    const f = inode("/etc/blob2.bin");
    await readAll(reader, "/etc/blob2.bin");
    await cache.close();
    const chunk = img.image.chunks(f)[1]!.chunk;
    const data = path.join(dir, `${img.image.blobs[chunk.blobIndex]!.blobId}.blob.data`);
    const fh = await fs.open(data, "r+");
    await fh.write(Buffer.from("garbage!"), 0, 8, chunk.uncompressedOffset + 17);
    await fh.close();
    const again = open({ dir, verifyOnHit: true });
    assert.deepEqual(Buffer.from(await readAll(again.reader, "/etc/blob2.bin")), Buffer.from(fx.files.get("/etc/blob2.bin")!));
    const m = again.cache.metrics.snapshot().totals;
    assert.equal(m.verificationFailures, 1);
    assert.equal(m.misses, 1, "only the damaged chunk is fetched again");
    await again.cache.close();
  });

  test("prefetch warms the cache at low priority: an on-demand read overtakes queued prefetch requests; prefetch can be cancelled", async () => {
    const log: string[] = [];
    const dir = path.join(work, `cache-${n++}`);
    // The first backend request (a prefetch one) waits for `open`: with one request in flight, the
    // other 16 prefetch requests queue behind it, and so does the on-demand read started meanwhile.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const inner = logging(localBackend(fx.nydus), log);
    let calls = 0;
    const gated: BlobBackend = { name: inner.name, readRange: async (id, off, len, signal) => (calls++ === 0 && (await gate), inner.readRange(id, off, len, signal)) };
    const cache = new BlobCache({ dir, backend: gated, image: img.image, maxInFlight: 1, mergeLimit: CHUNK });
    const reader = new FileReader(img.image, cache);
    const warm = prefetch(cache, { paths: ["/data/big.bin"], batch: 1000 });
    const passwd = inode("/etc/passwd");
    const blob1 = img.image.blobs[1]!.blobId.slice(0, 8);
    for (let i = 0; i < 1000 && calls === 0; i++) await new Promise((r) => setTimeout(r, 5)); // the first prefetch request is at the gate
    assert.equal(calls, 1);
    const onDemand = reader.read(passwd, 0, passwd.size);
    await new Promise((r) => setTimeout(r, 50)); // the read is queued by then: nothing can run before `open`
    assert.equal(calls, 1, "one request in flight");
    open();
    assert.deepEqual(Buffer.from(await onDemand), Buffer.from(fx.files.get("/etc/passwd")!));
    const report = await warm;
    assert.equal(report.files, 1);
    assert.equal(report.chunks, 17);
    const at = log.findIndex((l) => l.startsWith(blob1));
    assert.equal(at, 1, `the on-demand request went ahead of the 16 queued prefetch requests: ${log.join(" ")}`);
    assert.equal(cache.metrics.snapshot().totals.misses, 18);
    // Everything prefetched is now a hit.
    const before = cache.metrics.snapshot().totals.requests;
    await readAll(reader, "/data/big.bin");
    assert.equal(cache.metrics.snapshot().totals.requests, before);
    await cache.close();

    // Cancellation: the prefetch rejects with the abort reason and stops fetching.
    const c2 = new BlobCache({ dir: path.join(work, `cache-${n++}`), backend: localBackend(fx.nydus), image: img.image, maxInFlight: 1, mergeLimit: CHUNK });
    const ac = new AbortController();
    const p = prefetch(c2, { paths: ["/"], batch: 4, signal: ac.signal });
    setImmediate(() => ac.abort(new Error("stop")));
    await assert.rejects(p, /stop/);
    await c2.flush();
    const ready = (await c2.readyChunks(0)).length + (await c2.readyChunks(1)).length;
    assert.ok(ready < img.image.blobs[0]!.chunkCount + img.image.blobs[1]!.chunkCount, `stopped early (${ready} ready)`);
    // The cache is still usable for on-demand reads after a cancelled prefetch.
    const r2 = new FileReader(img.image, c2);
    for (const [pth, want] of fx.files) assert.deepEqual(Buffer.from(await readAll(r2, pth)), Buffer.from(want), pth);
    await c2.close();
  });

  test("every ready bit after a read corresponds to verified data in the data file", async () => {
    const { cache, reader } = open();
    await readAll(reader, "/many/f1");
    await cache.flush();
    for (let b = 0; b < img.image.blobs.length; b++) {
      const ready = new Set(await cache.readyChunks(b));
      const fh = await fs.open(cache.files(b).data, "r");
      for (const fc of img.image.chunks(inode("/many/f1"))) {
        if (fc.chunk.blobIndex !== b) continue;
        assert.ok(ready.has(fc.chunk.index));
        const buf = Buffer.alloc(fc.chunk.uncompressedSize);
        await fh.read(buf, 0, buf.length, fc.chunk.uncompressedOffset);
        verifyPlain(img.image.blobs[b]!, img.image.superBlock.digester, fc.chunk, buf);
      }
      await fh.close();
    }
    await cache.close();
  });
});
