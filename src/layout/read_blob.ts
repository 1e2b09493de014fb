/**
 * Reading blobs of an OCI image layout, verified against their descriptors (DESIGN rule 5).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { DigestMismatchError, InvalidInputError, NotFoundError } from "../internal/errors.ts";
import type { FetchOptions } from "../oci/store.ts";
import type { Descriptor } from "../oci/types.ts";
import { verifyBytes, verifyStream, withProgress } from "../oci/verify.ts";
import { blobPath } from "./blob_path.ts";

/** Documents (manifests, indexes, configs) larger than this are refused by {@link readBlobBytes}. */
export const MAX_DOCUMENT_SIZE = 64 << 20;

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * Opens a file for reading, turning "no such file" into {@link NotFoundError} naming the path.
 * @param what names the blob in errors
 */
export async function openFile(file: string, what: string): Promise<fsp.FileHandle> {
  try {
    return await fsp.open(file, "r");
  } catch (err) {
    if (isMissing(err)) throw new NotFoundError(`${what} at "${file}"`, "no such file");
    throw err;
  }
}

/**
 * Reads a whole small blob into memory and verifies size and digest.
 *
 * @param file the blob's file
 * @param desc the descriptor it must match
 * @param what names the blob in errors, e.g. `manifest sha256:… of oci:/l`
 * @throws {NotFoundError} when the file is missing; {@link DigestMismatchError} when it does not match
 */
export async function readFileVerified(file: string, desc: Descriptor, what: string, options: FetchOptions = {}): Promise<Uint8Array> {
  options.signal?.throwIfAborted();
  if (desc.size > MAX_DOCUMENT_SIZE) {
    throw new InvalidInputError(`Cannot read ${what} into memory: ${desc.size} bytes is more than the ${MAX_DOCUMENT_SIZE}-byte document limit`);
  }
  const fh = await openFile(file, what);
  try {
    const { size } = await fh.stat();
    if (size !== desc.size) throw new DigestMismatchError(`${what} (size)`, `${desc.size} bytes`, `${size} bytes`);
    const bytes = await fh.readFile({ signal: options.signal });
    options.onProgress?.(bytes.length);
    return verifyBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), desc, what);
  } finally {
    await fh.close();
  }
}

/**
 * Streams a file, verified while it streams: the iterator throws {@link DigestMismatchError}
 * instead of ending when the size or digest is wrong. A missing file is reported here, not
 * mid-stream; the file is opened when iteration starts and closed when it ends or stops.
 *
 * @param file the blob's file
 * @param desc the descriptor it must match
 * @param what names the blob in errors
 * @throws {NotFoundError} when the file is missing
 */
export async function streamFileVerified(file: string, desc: Descriptor, what: string, options: FetchOptions = {}): Promise<AsyncIterable<Uint8Array>> {
  options.signal?.throwIfAborted();
  try {
    await fsp.stat(file);
  } catch (err) {
    if (isMissing(err)) throw new NotFoundError(`${what} at "${file}"`, "no such file");
    throw err;
  }
  const { signal, onProgress } = options;
  async function* pieces(): AsyncGenerator<Uint8Array> {
    // A read stream hands out a freshly allocated buffer per read (never a shared or reused
    // one), so its pieces are transferable as they are (FetchOptions.transferable).
    const stream = fs.createReadStream(file, { highWaterMark: 1 << 20, signal });
    try {
      yield* withProgress(stream as AsyncIterable<Buffer>, onProgress);
    } catch (err) {
      if (isMissing(err)) throw new NotFoundError(`${what} at "${file}"`, "no such file");
      throw err;
    } finally {
      stream.destroy(); // closes the file when the consumer stops early
    }
  }
  return verifyStream(pieces(), desc, what);
}

/** {@link readFileVerified} for the blob `desc.digest` of the layout `dir`. */
export function readBlobBytes(dir: string, desc: Descriptor, what: string, options?: FetchOptions): Promise<Uint8Array> {
  return readFileVerified(blobPath(dir, desc.digest), desc, what, options);
}

/** {@link streamFileVerified} for the blob `desc.digest` of the layout `dir`. */
export function streamBlob(dir: string, desc: Descriptor, what: string, options?: FetchOptions): Promise<AsyncIterable<Uint8Array>> {
  return streamFileVerified(blobPath(dir, desc.digest), desc, what, options);
}
