/**
 * The FUSE server's fast path (fuse/worker.ts) over a real blob cache: metadata and READs of
 * cached chunks are answered by the serving thread, READs touching chunks not yet cached go to
 * the main thread (which fetches, verifies, persists), and every byte read is right. Everything
 * that touches the mount runs in child processes. Root, /dev/fuse and util-linux mount needed.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildTexture, type BuiltImage } from "../local/_testing.ts";
import { BlobCache, FileReader, localBackend, shareReadiness } from "../storage/index.ts";
import { file, random } from "../../test/textures/spec.ts";
import { RafsFs } from "./rafs_fs.ts";
import { mountFuse, type FuseMount } from "./fuse/server.ts";
import { canMountFuse, skipReason } from "../../test/support/oracles.ts";

const reason = skipReason(canMountFuse()) || undefined;
if (reason) console.log(`# fuse fast-path tests skipped: ${reason}`);

function sh(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", script], { maxBuffer: 64 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? 1 : 0, stdout, stderr });
    });
  });
}

/** sha256 of files read through the mount (in a child process) and of the source tree. */
async function sums(root: string, names: string[]): Promise<string[]> {
  const r = await sh(`cd '${root}' && sha256sum ${names.join(" ")}`);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n");
}

describe("FUSE fast path over the blob cache", { skip: reason }, () => {
  const CHUNK = 0x10000;
  let work: string;
  let built: BuiltImage;
  let cache: BlobCache;
  let reader: FileReader;
  let mnt: string;
  let mount: FuseMount;
  const logs: string[] = [];

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-fuse-fast-"));
    const spec = {
      entries: [
        file("cold.bin", random(5 * CHUNK + 123, 1)),
        file("warm.bin", random(3 * CHUNK + 7, 2)),
        file("half.bin", random(8 * CHUNK + 99, 3)),
        file("dir/small.txt", random(100, 4)),
      ],
    };
    built = await buildTexture(spec, path.join(work, "img"), { input: "dir", chunkSize: CHUNK });
    cache = new BlobCache({ dir: path.join(work, "cache"), backend: localBackend(built.blobDir), image: built.image });
    reader = new FileReader(built.image, cache);
    const shared = await shareReadiness(cache, built.image);
    mnt = path.join(work, "mnt");
    await fsp.mkdir(mnt);
    const rfs = new RafsFs(built.image, reader, { log: (l) => logs.push(l) });
    mount = await mountFuse(rfs, mnt, { log: (l) => logs.push(l), fastPath: { bootstrap: built.bootstrap, cacheDir: cache.dir, ...shared } });
  });

  after(async () => {
    if (mount) await mount.unmount({ lazy: true }).catch(() => {});
    await cache?.close();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it("answers metadata in the serving thread", async () => {
    const before = mount.stats();
    const r = await sh(`ls -la '${mnt}' '${mnt}/dir' && stat '${mnt}/dir/small.txt' >/dev/null`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /cold\.bin/);
    const s = mount.stats();
    assert.ok(s.answeredInWorker > before.answeredInWorker, JSON.stringify(s));
    assert.equal(s.forwarded, before.forwarded, "no metadata request reached the main thread");
  });

  it("sends READs of chunks not yet cached to the main thread, then serves them from the cache", async () => {
    const before = mount.stats();
    const want = await sums(built.source, ["cold.bin"]);
    assert.deepEqual(await sums(mnt, ["cold.bin"]), want);
    const afterCold = mount.stats();
    assert.ok(afterCold.forwarded > before.forwarded, "the cold read went to the main thread");
    assert.equal(afterCold.fastReads, before.fastReads, "nothing was served before it was cached");
    await cache.flush();
    // Drop the kernel's page cache so that the next read reaches the server again. One drop can
    // leave pages the kernel still holds a moment (a CI run under load saw 192 KiB survive):
    // drop until fincore sees none of the file resident.
    const drop = await sh(
      `for i in $(seq 1 40); do sync; echo 3 > /proc/sys/vm/drop_caches; r=$(fincore --bytes --noheadings --output RES '${mnt}/cold.bin' | tr -d ' '); [ "$r" = 0 ] && exit 0; sleep 0.05; done; echo "still resident: $r bytes" >&2; exit 1`,
    );
    assert.equal(drop.code, 0, drop.stderr);
    assert.deepEqual(await sums(mnt, ["cold.bin"]), want);
    const s = mount.stats();
    assert.ok(s.fastReads > afterCold.fastReads, JSON.stringify(s));
    assert.equal(s.forwarded, afterCold.forwarded, "a cached read stayed in the serving thread");
    assert.equal(s.fastReadBytes - afterCold.fastReadBytes, 5 * CHUNK + 123);
    // The serving thread's chunk reads show as cache hits in the cache's metrics.
    const hits = cache.metrics.snapshot().totals.hits;
    assert.ok(hits >= 6, `6 chunks served from the cache, ${hits} hits`);
  });

  it("serves data cached by this process's reader in the serving thread", async () => {
    const inode = built.image.lookup("/warm.bin")!;
    await reader.read(inode, 0, inode.size);
    await cache.flush();
    const before = mount.stats();
    assert.deepEqual(await sums(mnt, ["warm.bin"]), await sums(built.source, ["warm.bin"]));
    const s = mount.stats();
    assert.ok(s.fastReads > before.fastReads);
    assert.equal(s.forwarded, before.forwarded);
  });

  it("reads a partly cached file right (the READs that touch missing chunks go to the main thread)", async () => {
    const inode = built.image.lookup("/half.bin")!;
    await reader.read(inode, 0, 3 * CHUNK);
    await cache.flush();
    const before = mount.stats();
    const r = await sh(`dd if='${mnt}/half.bin' bs=65536 iflag=direct status=none | sha256sum`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split(" ")[0], (await sums(built.source, ["half.bin"]))[0]!.split(" ")[0]);
    const s = mount.stats();
    assert.ok(s.fastReads >= before.fastReads + 3, `the 3 cached chunks came from the serving thread: ${JSON.stringify(s)}`);
    assert.ok(s.forwarded >= before.forwarded + 6, `the 6 missing ones from the main thread: ${JSON.stringify(s)}`);
    assert.deepEqual(logs, []);
  });
});
