/**
 * Hashers for chunk digests (BLAKE3-256 or SHA-256, spec §2.2/§6), CRC-32C, and
 * SHA-256 for blob ids and OCI digests.
 */
import crypto from "node:crypto";
import { Blake3Hasher } from "@napi-rs/blake-hash";
import { native } from "../internal/native.ts";

/** Chunk digest algorithms (RAFS ids: blake3 = 0, sha256 = 1). */
export type DigesterName = "blake3" | "sha256";

export const DIGESTER_ID: Record<DigesterName, number> = { blake3: 0, sha256: 1 };

/** Digester name for a RAFS id, or undefined. */
export function digesterById(id: number): DigesterName | undefined {
  return id === 0 ? "blake3" : id === 1 ? "sha256" : undefined;
}

/** Incremental hasher producing 32 bytes. */
export interface Hasher {
  update(data: Uint8Array): this;
  digest(): Uint8Array;
}

/** A fresh hasher for `algo`. */
export function createHasher(algo: DigesterName): Hasher {
  if (algo === "sha256") {
    const h = crypto.createHash("sha256");
    return {
      update(d) {
        h.update(d);
        return this;
      },
      digest: () => new Uint8Array(h.digest()),
    };
  }
  if (algo !== "blake3") throw new TypeError(`Cannot use digester "${String(algo)}": expected blake3 or sha256`);
  const h = new Blake3Hasher();
  return {
    update(d) {
      h.update(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
      return this;
    },
    digest: () => new Uint8Array(h.digestBuffer()),
  };
}

/** Digests independent inputs one at a time, reusing native state between them. */
export interface OneShotDigester {
  /** Digest of `data` alone (32 bytes; a fresh buffer the caller may keep). */
  digest(data: Uint8Array): Uint8Array;
}

/**
 * A digester for many small independent inputs (chunks). BLAKE3 reuses one native hasher via
 * `reset()` instead of constructing one per input: 3 µs instead of 9 µs per 4 KiB chunk
 * (0.27 s on a 45,000-file tar).
 */
export function createOneShotDigester(algo: DigesterName): OneShotDigester {
  if (algo === "sha256") return { digest: (d) => crypto.createHash("sha256").update(d).digest() };
  if (algo !== "blake3") throw new TypeError(`Cannot use digester "${String(algo)}": expected blake3 or sha256`);
  const h = new Blake3Hasher();
  return {
    digest(d) {
      h.reset();
      h.update(d);
      return h.digestBuffer();
    },
  };
}

/** One-shot digest of `data` with `algo`. */
export function hash(algo: DigesterName, data: Uint8Array): Uint8Array {
  return createHasher(algo).update(data).digest();
}

/** Lowercase hex SHA-256 of `data`. */
export function sha256Hex(data: Uint8Array): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

/** CRC-32C (Castagnoli) of `data`; pass `previous` to continue a running CRC. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return native.crc32c(data, previous);
}
