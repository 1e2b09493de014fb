/**
 * RAFS v5 digest validation (spec §6, §8.2 item 3; nydus `rafsv5_validate_inode`).
 *
 * - {@link verifyRafsV5Digests}: metadata only, like `nydus-image check`: every directory's
 *   `i_digest` = H(children's `i_digest` in name order), every regular file's = H(its chunk
 *   ids in file order), every symlink's = H(target). Devices, FIFOs and sockets are not
 *   checked (upstream does not either).
 * - {@link verifyRafsV5ChunkData}: chunk data against the chunk records (digest, size and,
 *   when HAS_CRC32, CRC-32C); the caller supplies the uncompressed bytes, so this module
 *   needs no blob I/O or codecs.
 */
import { toHex } from "../internal/bytes.ts";
import { DigestMismatchError } from "../internal/errors.ts";
import { createHasher, crc32c, hash } from "../digest/hasher.ts";
import { chunkInfoFromRecord } from "./chunk_record.ts";
import type { ChunkInfo } from "./model.ts";
import type { RafsV5Entry, RafsV5Image } from "./v5_reader.ts";

/** Calls `visit` for every entry of the tree in depth-first pre-order, with its path. */
function walk(image: RafsV5Image, visit: (path: string, e: RafsV5Entry) => void): void {
  const root = image.entryOfIno(image.superBlock.rootIno);
  visit("/", root);
  const stack: Array<[string, RafsV5Entry]> = [["", root]];
  while (stack.length > 0) {
    const [dirPath, dir] = stack.pop()!;
    const kids = image.children(dir);
    for (let k = kids.length - 1; k >= 0; k--) {
      const c = kids[k];
      const p = `${dirPath}/${Buffer.from(c.record.name).toString("utf8")}`;
      visit(p, c);
      if (c.kind === "dir") stack.push([p, c]);
    }
  }
}

/**
 * Checks every directory, regular-file and symlink `i_digest` against its contents, as
 * `nydus-image check` does for v5.
 *
 * @throws DigestMismatchError whose subject names the path (`digest of "/a/b"`)
 * @throws FormatError on malformed metadata met on the way
 * @example
 * verifyRafsV5Digests(openRafsV5(bootstrap));
 */
export function verifyRafsV5Digests(image: RafsV5Image): void {
  const algo = image.superBlock.digester;
  // Children are checked before their parent, so the first error names the deepest bad entry.
  const dirs: Array<[string, RafsV5Entry]> = [];
  walk(image, (path, e) => {
    let actual: Uint8Array | undefined;
    if (e.kind === "reg") {
      const h = createHasher(algo);
      for (const c of image.chunkRecords(e)) h.update(c.blockId);
      actual = h.digest();
    } else if (e.kind === "symlink") {
      actual = hash(algo, e.record.symlink);
    } else if (e.kind === "dir") {
      dirs.push([path, e]);
    }
    if (actual) check(path, e, actual);
  });
  for (let i = dirs.length - 1; i >= 0; i--) {
    const [path, e] = dirs[i];
    const h = createHasher(algo);
    for (const c of image.children(e)) h.update(c.record.inode.digest);
    check(path, e, h.digest());
  }
}

function check(path: string, e: RafsV5Entry, actual: Uint8Array): void {
  const expected = e.record.inode.digest;
  if (toHex(expected) !== toHex(actual)) throw new DigestMismatchError(`digest of "${path}"`, toHex(expected), toHex(actual));
}

/** Options of {@link verifyRafsV5ChunkData}. */
export interface VerifyChunkDataOptions {
  /**
   * Returns the uncompressed bytes of `chunk` (read `compressedSize` bytes at
   * `compressedOffset` of blob `blobIndex`, decompress when `compressed`).
   */
  readChunk(chunk: ChunkInfo): Uint8Array;
}

/**
 * Checks the data of every chunk of every regular file: its length equals
 * `uncompressed_size`, its digest equals `block_id`, and its CRC-32C equals `crc32` when the
 * record has HAS_CRC32. A chunk shared by several files is read once.
 *
 * @throws DigestMismatchError whose subject names the chunk and the path using it
 * @throws FormatError on malformed metadata met on the way
 * @example
 * verifyRafsV5ChunkData(image, { readChunk: (c) => blob.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize) });
 */
export function verifyRafsV5ChunkData(image: RafsV5Image, options: VerifyChunkDataOptions): void {
  const algo = image.superBlock.digester;
  const seen = new Set<string>();
  walk(image, (path, e) => {
    if (e.kind !== "reg") return;
    image.chunkRecords(e).forEach((rec, k) => {
      const chunk = chunkInfoFromRecord(rec);
      const key = `${chunk.blobIndex}:${chunk.compressedOffset}:${chunk.compressedSize}:${chunk.uncompressedSize}:${chunk.compressed}:${toHex(chunk.digest)}:${chunk.crc32}`;
      if (seen.has(key)) return;
      const subject = `chunk ${k} (blob ${chunk.blobIndex}, offset ${chunk.compressedOffset}) of "${path}"`;
      const data = options.readChunk(chunk);
      if (data.length !== chunk.uncompressedSize) {
        throw new DigestMismatchError(`size of ${subject}`, String(chunk.uncompressedSize), String(data.length));
      }
      const actual = hash(algo, data);
      if (toHex(actual) !== toHex(chunk.digest)) throw new DigestMismatchError(subject, toHex(chunk.digest), toHex(actual));
      if (chunk.crc32 !== undefined) {
        const crc = crc32c(data);
        if (crc !== chunk.crc32) {
          throw new DigestMismatchError(`CRC-32C of ${subject}`, chunk.crc32.toString(16).padStart(8, "0"), crc.toString(16).padStart(8, "0"));
        }
      }
      seen.add(key);
    });
  });
}
