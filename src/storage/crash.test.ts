/**
 * Crash safety of the blob cache: a child process reading the whole image through the cache
 * (one chunk per request) is SIGKILLed at random moments, again and again over the same cache
 * directory. After every kill, each ready bit must name a chunk whose bytes in the data file
 * verify; at the end a fresh cache instance reads every file correctly.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { layoutSource } from "../layout/index.ts";
import { walkRafs } from "../rafs/open.ts";
import type { ChunkInfo } from "../rafs/model.ts";
import { Prng } from "../../test/support/fuzz.ts";
import { makeTempDir, removeTree } from "../../test/support/tmp.ts";
import { buildFixture, type Fixture } from "./_fixture.ts";
import { localBackend } from "./backend.ts";
import { BlobCache } from "./cache.ts";
import { openNydusImage, type NydusImage } from "./image.ts";
import { FileReader } from "./reader.ts";
import { verifyPlain } from "./verify.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../..");
let work: string;
let fx: Fixture;
let img: NydusImage;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-storage-crash-" });
  fx = await buildFixture(work, 4);
  img = await openNydusImage(layoutSource(fx.nydus, { tag: "nydus" }));
});
after(async () => {
  if (work) await removeTree(work);
});

/** Runs the child until it prints "ready", lets it work `ms`, then SIGKILLs it. Returns whether it had finished. */
function runAndKill(cacheDir: string, seed: number, ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "_crash_child.ts"), fx.nydus, cacheDir, String(seed)], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (timer === undefined && out.includes("ready")) timer = setTimeout(() => child.kill("SIGKILL"), ms);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL" || code === 0) resolve(out.includes("done"));
      else reject(new Error(`child exited ${code}: ${err}`));
    });
  });
}

/** Every chunk of the image by blob index and chunk index. */
function chunkTable(): Map<string, ChunkInfo> {
  const all = new Map<string, ChunkInfo>();
  for (const e of walkRafs(img.image)) if (e.inode.kind === "reg") for (const fc of img.image.chunks(e.inode)) all.set(`${fc.chunk.blobIndex}:${fc.chunk.index}`, fc.chunk);
  return all;
}

/** Checks that every ready bit names verified data; returns the number of ready chunks. */
async function checkReadyBits(cacheDir: string): Promise<number> {
  const table = chunkTable();
  const cache = new BlobCache({ dir: cacheDir, backend: localBackend(fx.nydus), image: img.image });
  let ready = 0;
  try {
    for (let b = 0; b < img.image.blobs.length; b++) {
      const indices = await cache.readyChunks(b); // opens (or creates) the blob's cache files
      const fh = await fs.open(cache.files(b).data, "r");
      try {
        for (const index of indices) {
          const chunk = table.get(`${b}:${index}`);
          assert.ok(chunk, `ready bit ${index} of blob ${b} names a chunk of the image`);
          const buf = Buffer.alloc(chunk.uncompressedSize);
          const { bytesRead } = await fh.read(buf, 0, buf.length, chunk.uncompressedOffset);
          assert.equal(bytesRead, buf.length, `chunk ${index} of blob ${b} is in the data file`);
          verifyPlain(img.image.blobs[b]!, img.image.superBlock.digester, chunk, buf);
          ready++;
        }
      } finally {
        await fh.close();
      }
    }
  } finally {
    await cache.close();
  }
  return ready;
}

test("SIGKILL at random moments never leaves a ready bit without verified data; a fresh cache then reads everything", { timeout: 240_000 }, async () => {
  const cacheDir = path.join(work, "cache");
  const total = chunkTable().size;
  const prng = new Prng(7);
  const counts: number[] = [];
  let midway = 0;
  for (let round = 0; round < 20; round++) {
    const finished = await runAndKill(cacheDir, round, prng.range(1, 25));
    const ready = await checkReadyBits(cacheDir);
    counts.push(ready);
    if (!finished && ready > (counts.at(-2) ?? 0) && ready < total) midway++; // killed after progress, before the end
    if (ready === total) break;
  }
  assert.ok(midway >= 3, `kills landed mid-way (ready chunks after each kill: ${counts.join(", ")} of ${total})`);
  // A fresh instance completes the cache and reads every file correctly.
  const cache = new BlobCache({ dir: cacheDir, backend: localBackend(fx.nydus), image: img.image, verifyOnHit: true });
  const reader = new FileReader(img.image, cache);
  for (const [p, want] of fx.files) {
    const inode = img.image.lookup(p)!;
    assert.deepEqual(Buffer.from(await reader.read(inode, 0, inode.size)), Buffer.from(want), p);
  }
  assert.equal(cache.metrics.snapshot().totals.verificationFailures, 0);
  await cache.close();
  assert.equal(await checkReadyBits(cacheDir), total);
  console.log(`ready chunks after each kill: ${counts.join(", ")} of ${total}`);
});
