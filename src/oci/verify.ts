/**
 * Verify while streaming (DESIGN rule 5): a stream is limited to the descriptor's size
 * and hashed; a wrong size or digest throws instead of ending.
 */
import crypto from "node:crypto";
import { DigestMismatchError } from "../internal/errors.ts";
import type { FetchOptions } from "./store.ts";
import type { Descriptor } from "./types.ts";

/**
 * Passes `source` through, checking that it has exactly `desc.size` bytes and hashes to
 * `desc.digest`. The error surfaces from the final `next()`, so a consumer that writes
 * the bytes somewhere must not commit them before the iterator has finished.
 * @param what names the blob in errors, e.g. `layer sha256:ab… of oci:/x`
 */
export async function* verifyStream(source: AsyncIterable<Uint8Array>, desc: Pick<Descriptor, "digest" | "size">, what: string): AsyncGenerator<Uint8Array> {
  const hash = crypto.createHash("sha256");
  let n = 0;
  for await (const piece of source) {
    n += piece.length;
    if (n > desc.size) throw new DigestMismatchError(`${what} (size)`, `${desc.size} bytes`, `more than ${desc.size} bytes`);
    hash.update(piece);
    yield piece;
  }
  if (n !== desc.size) throw new DigestMismatchError(`${what} (size)`, `${desc.size} bytes`, `${n} bytes`);
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== desc.digest) throw new DigestMismatchError(what, desc.digest, actual);
}

/**
 * Pieces that each own a whole ArrayBuffer (see {@link FetchOptions.transferable}): copies of
 * `source`'s pieces, for sources whose pieces share or reuse buffers.
 */
export async function* ownedCopies(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const piece of source) yield new Uint8Array(piece); // a copy (Buffer#slice would not be one)
}

/** Verifies a whole in-memory document. */
export function verifyBytes(bytes: Uint8Array, desc: Pick<Descriptor, "digest" | "size">, what: string): Uint8Array {
  if (bytes.length !== desc.size) throw new DigestMismatchError(`${what} (size)`, `${desc.size} bytes`, `${bytes.length} bytes`);
  const actual = `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
  if (actual !== desc.digest) throw new DigestMismatchError(what, desc.digest, actual);
  return bytes;
}

/** sha256 descriptor of in-memory bytes. */
export function describeBytes(mediaType: string, bytes: Uint8Array): Descriptor {
  return { mediaType, digest: `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`, size: bytes.length };
}

/** Collects a (verified) stream into memory, refusing more than `limit` bytes. */
export async function collect(source: AsyncIterable<Uint8Array>, limit: number, what: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of source) {
    n += p.length;
    if (n > limit) throw new RangeError(`Cannot read ${what}: larger than ${limit} bytes`);
    parts.push(p);
  }
  return Buffer.concat(parts, n);
}

/**
 * Passes `source` through, reporting the running byte count to `onProgress` (the
 * {@link FetchOptions.onProgress} contract); `source` itself when there is no callback.
 */
export function withProgress(source: AsyncIterable<Uint8Array>, onProgress: ((total: number) => void) | undefined): AsyncIterable<Uint8Array> {
  if (!onProgress) return source;
  return (async function* () {
    let total = 0;
    for await (const piece of source) {
      total += piece.length;
      onProgress(total);
      yield piece;
    }
  })();
}
