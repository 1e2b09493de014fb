/**
 * Where blob bytes come from: the {@link BlobBackend} interface (exact byte ranges of a blob
 * by id) and its implementations: a registry with mirrors (`registry_backend.ts`) and a local
 * directory or OCI layout ({@link localBackend}).
 */
import fs from "node:fs/promises";
import path from "node:path";
import { FormatError, NotFoundError } from "../internal/errors.ts";
import { checkBlobId } from "./verify.ts";

/** Called once per request a backend makes: which endpoint, how many bytes arrived, success. */
export type FetchReport = (blobId: string, endpoint: string, bytes: number, ok: boolean) => void;

/** A source of blob byte ranges. */
export interface BlobBackend {
  /** For messages, e.g. `registry 127.0.0.1:5000/app`. */
  readonly name: string;
  /**
   * Exactly `length` bytes of blob `blobId` from `offset`.
   * @throws NotFoundError when the blob does not exist; RegistryError, FormatError (short blob)
   */
  readRange(blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Where per-request counts go (set by the owner, e.g. a {@link StorageMetrics}' `recordFetch`). */
  onFetch?: FetchReport;
  /** Releases sockets and open files. */
  close?(): Promise<void>;
}

/** Checks a range request's arguments. @throws RangeError */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Cannot read blob range: offset ${offset} and length ${length} must be non-negative integers`);
  }
}

/**
 * Blobs in a local directory: either named by id (`DIR/<blobId>`, as `nydus-image create
 * --blob-dir` writes them) or, when `DIR/oci-layout` exists, an OCI image layout
 * (`DIR/blobs/sha256/<blobId>`).
 */
export function localBackend(dir: string): BlobBackend {
  let layout: Promise<boolean> | undefined;
  const endpoint = `local ${dir}`;
  const backend: BlobBackend = {
    name: endpoint,
    async readRange(blobId, offset, length, signal) {
      checkBlobId(blobId);
      checkRange(offset, length);
      signal?.throwIfAborted();
      layout ??= fs.stat(path.join(dir, "oci-layout")).then(() => true, () => false);
      const file = (await layout) ? path.join(dir, "blobs", "sha256", blobId) : path.join(dir, blobId);
      let fh: fs.FileHandle;
      try {
        fh = await fs.open(file, "r");
      } catch (err) {
        backend.onFetch?.(blobId, endpoint, 0, false);
        if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`blob "${blobId}"`, `no file "${file}"`);
        throw err;
      }
      try {
        const out = new Uint8Array(length);
        for (let done = 0; done < length; ) {
          const { bytesRead } = await fh.read(out, done, length - done, offset + done);
          if (bytesRead === 0) {
            backend.onFetch?.(blobId, endpoint, done, false);
            throw new FormatError(`Blob(${blobId})`, "(range)", offset, `${length} bytes at ${offset} lie beyond the end of "${file}"`);
          }
          done += bytesRead;
        }
        backend.onFetch?.(blobId, endpoint, length, true);
        return out;
      } finally {
        await fh.close();
      }
    },
  };
  return backend;
}

export { registryBackend, type Mirror, type RegistryBackendOptions } from "./registry_backend.ts";
