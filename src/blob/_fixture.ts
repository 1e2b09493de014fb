/**
 * Test data shared by the blob tests: the upstream v6 data blob fixture and its blob-table
 * entry, written out by hand from spec §10.4 / §10.8 (not decoded from the bootstrap).
 */
import fs from "node:fs";
import { fromHex } from "../internal/bytes.ts";
import type { BlobInfo } from "../rafs/model.ts";
import { fixture } from "../../test/support/paths.ts";

/** Blob id of the fixture (= its file name). */
export const FIXTURE_BLOB_ID = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";

/** The fixture blob's bytes (14554). */
export function fixtureBlobBytes(): Uint8Array {
  return new Uint8Array(fs.readFileSync(fixture(`blobs/${FIXTURE_BLOB_ID}`)));
}

/** Blob entry 0 of rafs-v6-2.2.boot, spec §10.4. */
export const FIXTURE_BLOB_INFO: BlobInfo = Object.freeze({
  blobId: FIXTURE_BLOB_ID,
  chunkSize: 0x10_0000,
  chunkCount: 2,
  compressor: "zstd",
  digester: "blake3",
  features: 0x7000_0021,
  compressedSize: 0x38da, // 14554
  uncompressedSize: 0x9000,
  tocSize: 0x400,
  // The spec prints cfc89ed0…acde; the full value is SHA-256 of blob[13530..14554] (asserted in reader.test.ts).
  tocDigest: fromHex("cfc89ed0739aef4eb1bf0904f0dfdb1c857134eca7319465baae95a99b84acde"),
  ciCompressor: "none",
  ciOffset: 0x207a, // 8314
  ciCompressedSize: 32,
  ciUncompressedSize: 32,
});

/** Section boundaries of the fixture, spec §10.8. */
export const FIXTURE_LAYOUT = Object.freeze({
  chunk0: [0, 4828],
  chunk1: [4828, 7802],
  tarImageBlob: [7802, 8314],
  ciTable: [8314, 8346],
  ciHeader: [8346, 12442],
  tarBlobMeta: [12442, 12954],
  digests: [12954, 13018],
  tarBlobDigest: [13018, 13530],
  toc: [13530, 14042],
  tarToc: [14042, 14554],
} as const);

/** Plain sizes of the two fixture files (lib.rs, sync_io.rs), spec §10.6. */
export const FIXTURE_FILE_SIZES = [16931, 13400] as const;
