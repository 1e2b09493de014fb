import { test } from "node:test";
import assert from "node:assert/strict";
import { DigestMismatchError } from "../internal/errors.ts";
import { CHUNK_RECORD_SIZE } from "./chunk_record.ts";
import { openRafsV5 } from "./v5_reader.ts";
import { verifyRafsV5ChunkData, verifyRafsV5Digests } from "./v5_verify.ts";
import { V5_BLOB_ID, V5_FIXTURES, allPaths, readBlob, readBootstrap, readChunk } from "./_v5_testing.ts";

const blob = readBlob(V5_BLOB_ID);
const names = (e: unknown, path: string) => e instanceof DigestMismatchError && e.subject.includes(`"${path}"`);

for (const name of V5_FIXTURES) {
  const orig = readBootstrap(name);
  const image = openRafsV5(orig);
  /** Absolute record offset of a path's own table slot (hardlinks: its own record). */
  const recordOf = (path: string) => {
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    const dir = image.entryOfIno(image.lookup(parent)!.ino);
    const base = path.slice(path.lastIndexOf("/") + 1);
    return image.children(dir).find((c) => Buffer.from(c.record.name).toString() === base)!.record;
  };
  const flip = (off: number, bytes = orig.slice()) => {
    bytes[off] ^= 0x01;
    return bytes;
  };

  test(`${name}: every directory, file and symlink digest verifies`, () => {
    verifyRafsV5Digests(image);
    verifyRafsV5ChunkData(image, { readChunk: (c) => readChunk(image, blob, c) });
  });

  test(`${name}: a flipped i_digest byte is reported with the path of its inode`, () => {
    for (const path of [
      "/normal-file-test/busybox/1f777dbdd68d1c4d554bc0d20e027bfef9ed2dfe2d8d5f029e958552a0e12475/etc/passwd",
      "/normal-file-test/holefiles",
      "/symlink-test/root-2",
      "/hardlink-test/test.sh",
      "/normal-file-test/busybox/1f777dbdd68d1c4d554bc0d20e027bfef9ed2dfe2d8d5f029e958552a0e12475/var/spool/mail",
    ]) {
      const bytes = flip(recordOf(path).offset + 17);
      assert.throws(() => verifyRafsV5Digests(openRafsV5(bytes)), (e) => names(e, path), path);
    }
    // The root's own digest.
    assert.throws(() => verifyRafsV5Digests(openRafsV5(flip(image.entry(1).record.offset))), (e) => names(e, "/"));
  });

  test(`${name}: a changed chunk id, symlink target or blob byte names the path`, () => {
    const file = "/normal-file-test/busybox/1f777dbdd68d1c4d554bc0d20e027bfef9ed2dfe2d8d5f029e958552a0e12475/layer.tar";
    const rec = recordOf(file);
    // Second chunk record's block_id: the file digest (H(chunk ids)) no longer matches.
    assert.throws(() => verifyRafsV5Digests(openRafsV5(flip(rec.chunksOffset + CHUNK_RECORD_SIZE + 5))), (e) => names(e, file));
    // Target "/foobar" -> "/foobas": the symlink digest (H(target)) no longer matches.
    const link = recordOf("/symlink-test/root-2");
    const linkOff = link.offset + 128 + 8 + 6;
    assert.equal(orig[linkOff], "r".charCodeAt(0));
    assert.throws(() => verifyRafsV5Digests(openRafsV5(flip(linkOff))), (e) => names(e, "/symlink-test/root-2"));

    // One byte of chsum's data in a copy of the blob: chunk verification names the file.
    const chsum = "/normal-file-test/holefiles/chsum";
    const [{ chunk }] = image.chunks(image.lookup(chsum)!);
    const users = allPaths(image).filter(([, i]) => i.kind === "reg" && image.chunks(i).some((c) => c.chunk.index === chunk.index));
    assert.deepEqual(users.map(([p]) => p), [chsum], "chsum's chunk is not shared");
    const badBlob = blob.slice();
    badBlob[chunk.compressedOffset + 3] ^= 0x80;
    assert.throws(
      () => verifyRafsV5ChunkData(image, { readChunk: (c) => readChunk(image, badBlob, c) }),
      (e) => names(e, chsum) && (e as DigestMismatchError).subject.startsWith(`chunk 0 (blob 0, offset ${chunk.compressedOffset})`),
    );
    // A short read is reported as a size mismatch.
    assert.throws(
      () => verifyRafsV5ChunkData(image, { readChunk: (c) => readChunk(image, blob, c).subarray(1) }),
      (e) => e instanceof DigestMismatchError && e.subject.startsWith("size of chunk 0"),
    );
  });
}
