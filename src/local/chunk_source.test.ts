import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { FormatError, NotFoundError, UnsafePathError } from "../internal/errors.ts";
import type { RafsImage } from "../rafs/model.ts";
import { openRafs } from "../rafs/open.ts";
import { fixture } from "../../test/support/paths.ts";
import { withTempDir } from "../../test/support/tmp.ts";
import { ChunkSource, checkBlobFileName } from "./chunk_source.ts";

const V6_BLOB = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

test("reads and verifies zstd chunks of the v6 fixture; one open handle per blob", async () => {
  const image = openRafs(new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot"))));
  const src = new ChunkSource(image, { blobDir: fixture("blobs") });
  try {
    const lib = image.lookup("/lib.rs")!;
    const h = createHash("sha256");
    let n = 0;
    for await (const { fileOffset, data, chunk } of src.fileData(lib, "/lib.rs")) {
      assert.equal(fileOffset, n);
      assert.equal(chunk.chunk.compressed, true);
      h.update(data);
      n += data.length;
    }
    assert.equal(n, 16931);
    const again = await src.read(image.chunks(lib)[0].chunk);
    assert.equal(again.length, 16931);
  } finally {
    await src.close();
  }
});

test("a missing blob is a NotFoundError naming the blob id", async () => {
  await withTempDir(async (dir) => {
    const image = openRafs(new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot"))));
    const src = new ChunkSource(image, { blobDir: dir });
    const lib = image.lookup("/lib.rs")!;
    await assert.rejects(src.read(image.chunks(lib)[0].chunk), (e: unknown) => e instanceof NotFoundError && e.message.includes(V6_BLOB));
    await src.close();
  });
});

test("a chunk beyond the end of a truncated blob is a FormatError", async () => {
  await withTempDir(async (dir) => {
    const image = openRafs(new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot"))));
    await fsp.writeFile(path.join(dir, V6_BLOB), (await fsp.readFile(fixture(`blobs/${V6_BLOB}`))).subarray(0, 100));
    const src = new ChunkSource(image, { blobDir: dir });
    await assert.rejects(src.read(image.chunks(image.lookup("/sync_io.rs")!)[0].chunk, { path: "/sync_io.rs" }), (e: unknown) => e instanceof FormatError && /sync_io\.rs/.test(e.message));
    await src.close();
  });
});

test("blob ids that are not plain file names are refused (no reads outside the blob dir)", () => {
  for (const bad of ["../etc/passwd", "a/b", "..", ".", "", "x\0y"]) assert.throws(() => checkBlobFileName(bad), UnsafePathError, bad);
  checkBlobFileName(V6_BLOB);
  const image = { superBlock: { chunkSize: 4096 }, blobs: [{ blobId: "../../etc/shadow" }] } as unknown as RafsImage;
  assert.throws(() => new ChunkSource(image, { blobDir: "/tmp" }).blobPath(0), UnsafePathError);
});
