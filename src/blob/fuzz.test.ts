/**
 * Seeded fuzzing of every decoder in format.ts and of openBlob (+ every read/verify method)
 * on truncated and bit-flipped fixture bytes: only FormatError (or DigestMismatchError where
 * digests are checked) may escape, and every run terminates quickly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DigestMismatchError, FormatError } from "../internal/errors.ts";
import { bytesReaderAt } from "../io/reader_at.ts";
import { FIXTURE_BLOB_INFO, FIXTURE_LAYOUT, fixtureBlobBytes } from "./_fixture.ts";
import {
  decodeBlobMetaHeader,
  decodeCiEntryV1,
  decodeCiEntryV2,
  decodeCiTable,
  decodeTarHeader,
  decodeTocEntry,
  decodeTocList,
} from "./format.ts";
import { openBlob, type DataBlob } from "./reader.ts";
import { mulberry32 } from "../../test/support/fuzz.ts";

const blob = fixtureBlobBytes();
const sect = (k: keyof typeof FIXTURE_LAYOUT) => blob.subarray(FIXTURE_LAYOUT[k][0], FIXTURE_LAYOUT[k][1]);

/** Random mutation of `seed`: truncate, extend, flip bits or replace bytes. */
function mutate(rand: () => number, seed: Uint8Array): Uint8Array {
  const kind = rand() % 4;
  if (kind === 0) return seed.slice(0, rand() % (seed.length + 1));
  if (kind === 1) {
    const out = new Uint8Array(rand() % (seed.length * 2 + 2));
    for (let i = 0; i < out.length; i++) out[i] = rand() & 0xff;
    return out;
  }
  const out = new Uint8Array(seed);
  const flips = 1 + (rand() % 4);
  for (let i = 0; i < flips && out.length > 0; i++) {
    const at = rand() % out.length;
    out[at] = kind === 2 ? out[at]! ^ (1 << rand() % 8) : rand() & 0xff;
  }
  return out;
}

function expectOnlyFormatError(what: string, fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    assert.ok(e instanceof FormatError, `${what}: unexpected ${String(e)}`);
    return false;
  }
}

test("fuzz: format.ts decoders throw only FormatError", { timeout: 60_000 }, () => {
  const rng = mulberry32(0x5eed_b10b);
  const rand = () => rng.u32();
  const decoders: [string, Uint8Array, (b: Uint8Array) => unknown][] = [
    ["ci V1", sect("ciTable").subarray(16), (b) => decodeCiEntryV1(b, 8330)],
    ["ci V2", new Uint8Array(24).fill(0x11), (b) => decodeCiEntryV2(b, 0)],
    ["ci table", sect("ciTable"), (b) => decodeCiTable(b, b.length % 5, (b.length & 1) === 1, 8314)],
    ["header", sect("ciHeader"), (b) => decodeBlobMetaHeader(b, 8346)],
    ["toc entry", sect("toc").subarray(0, 128), (b) => decodeTocEntry(b, 13530)],
    ["toc list", sect("toc"), (b) => decodeTocList(b, 13530)],
    ["tar header", sect("tarToc"), (b) => decodeTarHeader(b, 14042)],
  ];
  const stats = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    for (const [name, seed, decode] of decoders) {
      if (expectOnlyFormatError(name, () => decode(mutate(rand, seed)))) stats.set(name, (stats.get(name) ?? 0) + 1);
    }
  }
  // Both outcomes must occur for the stricter decoders, or the fuzzing exercised nothing.
  for (const name of ["header", "toc entry", "tar header"]) {
    const ok = stats.get(name) ?? 0;
    assert.ok(ok > 0 && ok < 4000, `${name}: ${ok} of 4000 decoded`);
  }
});

async function exercise(b: DataBlob): Promise<void> {
  for (const e of b.entries) await b.readChunk(e);
  const toc = await b.readToc();
  await b.verifyToc(toc);
  const digests = await b.readChunkDigests(toc);
  assert.ok(digests, "INLINED_CHUNK_DIGEST blobs always yield digests or throw");
  for (const e of b.entries) await b.verifyChunk(e, digests.subarray(32 * e.index, 32 * e.index + 32), "blake3");
  await b.verifyBlobId(toc);
}

test("fuzz: openBlob and every read/verify on truncated or bit-flipped fixture bytes", { timeout: 120_000 }, async () => {
  const rng = mulberry32(0xdead_beef);
  const rand = () => rng.u32();
  const variants = [
    [true, FIXTURE_BLOB_INFO],
    [false, FIXTURE_BLOB_INFO],
    [false, { ...FIXTURE_BLOB_INFO, tocSize: 0, tocDigest: new Uint8Array(32) }],
  ] as const;
  const outcomes = { ok: 0, format: 0, digest: 0 };
  const structs = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    let bytes: Uint8Array;
    const kind = rand() % 3;
    if (kind === 0) {
      bytes = blob.slice(0, rand() % blob.length);
    } else {
      bytes = new Uint8Array(blob);
      const flips = 1 + (rand() % 3);
      // Half of the flips land in the metadata tail, where the decoders live.
      for (let f = 0; f < flips; f++) {
        const at = rand() % 2 === 0 ? rand() % bytes.length : 7802 + (rand() % (bytes.length - 7802));
        bytes[at] ^= kind === 1 ? 1 << rand() % 8 : 1 + (rand() % 255);
      }
    }
    // checkSize: false lets truncated blobs reach the deeper decoders too; the variant without a
    // known ToC size/digest makes readToc locate and decode a possibly corrupted ToC itself.
    for (const [checkSize, info] of variants) {
      try {
        await exercise(await openBlob(bytesReaderAt(bytes), info, { checkSize }));
        outcomes.ok++;
      } catch (e) {
        if (e instanceof DigestMismatchError) outcomes.digest++;
        else if (e instanceof FormatError) {
          outcomes.format++;
          structs.add(e.struct.startsWith("Blob(") ? "Blob" : e.struct);
        }
        else assert.fail(`iteration ${i} (kind ${kind}, checkSize ${checkSize}): unexpected ${String(e)}`);
      }
    }
  }
  assert.ok(outcomes.format > 100 && outcomes.digest > 100, JSON.stringify(outcomes));
  // The corruptions reached every layer: blob bounds/chunks, header, ci entries, tar header, ToC.
  for (const s of ["Blob", "BlobCompressionContextHeader", "BlobChunkInfoV1", "TarHeader", "TocEntry"]) {
    assert.ok(structs.has(s), `no FormatError from ${s}: ${[...structs].join(", ")}`);
  }
});
