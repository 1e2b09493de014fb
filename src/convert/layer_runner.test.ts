/**
 * The hand-over of source bytes to a layer worker: pieces that are views into one shared
 * buffer (as Node streams hand out) must reach the worker as copies, leaving the caller's
 * buffer intact; and a build in a worker gives the same blob as one on this thread.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { buildLayerHere, buildLayerInWorker } from "./layer_runner.ts";
import { buildTar, chunked } from "../tar/_testing.ts";
import { makeTempDir, removeTree } from "../../test/support/tmp.ts";

test("layer worker: pieces sharing one buffer are copied, not transferred, and the blob equals an in-thread build", async () => {
  const work = await makeTempDir();
  try {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) >>> 5;
    const tar = buildTar([
      { name: "dir/", type: "5", mode: 0o755 },
      { name: "dir/a.bin", data },
      { name: "dir/b.txt", data: "hello\n" },
    ]);
    // One ArrayBuffer, handed out as Buffer views (what fs and http streams do for small reads).
    const shared = Buffer.from(tar);
    const pieces = [...(function* () {
      for (let i = 0; i < shared.length; i += 10_000) yield shared.subarray(i, Math.min(shared.length, i + 10_000));
    })()];
    async function* source() {
      yield* pieces;
    }
    const options = { compression: "none" as const, what: "test layer", chunkSize: 0x10000 };
    const inWorker = await buildLayerInWorker(source(), { ...options, blobDir: path.join(work, "w") });
    assert.equal(shared.buffer.byteLength > 0, true, "the caller's buffer was detached");
    assert.deepEqual(Buffer.from(shared), Buffer.from(tar), "the caller's bytes changed");
    const here = await buildLayerHere(chunked(tar, 10_000), { ...options, blobDir: path.join(work, "h") });
    assert.equal(inWorker.layerBlob!.digest, here.layerBlob!.digest);
    assert.deepEqual(Buffer.from(inWorker.bootstrap), Buffer.from(here.bootstrap));
  } finally {
    await removeTree(work);
  }
});
