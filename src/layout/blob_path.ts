/**
 * Where a blob lives in an OCI image layout: `blobs/<alg>/<hex>`.
 */
import path from "node:path";
import { InvalidInputError } from "../internal/errors.ts";
import { isDigest } from "../oci/types.ts";

/**
 * The path of the blob `digest` under the layout directory `dir`.
 *
 * Only `sha256:<64 lowercase hex>` digests are accepted, so a digest can never name a
 * path outside `blobs/sha256/`.
 *
 * @throws {InvalidInputError} when `digest` is not a sha256 digest
 * @example
 * blobPath("/l", "sha256:" + "0".repeat(64)); // "/l/blobs/sha256/000…"
 */
export function blobPath(dir: string, digest: string): string {
  if (!isDigest(digest)) {
    throw new InvalidInputError(`Cannot locate blob ${JSON.stringify(digest)}: only sha256:<64 hex> digests are supported`);
  }
  return path.join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}
