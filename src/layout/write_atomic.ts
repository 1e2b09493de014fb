/**
 * Atomic, idempotent writes (DESIGN rule 6): data goes to a temporary file in the target
 * directory, is verified and fsynced, then renamed into place. An interrupted or failed
 * write leaves no file that looks complete, and no temporary file behind.
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import type { FetchOptions } from "../oci/store.ts";
import type { Descriptor } from "../oci/types.ts";
import { verifyStream } from "../oci/verify.ts";

/** Prefix of temporary files; readers never look at names starting with a dot. */
export const TEMP_PREFIX = ".tmp-";

function tempName(target: string): string {
  return path.join(path.dirname(target), `${TEMP_PREFIX}${path.basename(target)}-${crypto.randomBytes(6).toString("hex")}`);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `bytes` at the handle's current position (looping over short writes). */
export async function writeAll(fh: fsp.FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done);
    done += bytesWritten;
  }
}

/**
 * Writes `pieces` to a temporary file beside `target`, fsyncs it and renames it to `target`.
 * If `pieces` throws (a verification error, an abort), the temporary file is removed and the
 * error is rethrown; `target` is untouched.
 */
export async function writeFileAtomic(target: string, pieces: AsyncIterable<Uint8Array> | Uint8Array, options: Pick<FetchOptions, "signal"> = {}): Promise<void> {
  const temp = tempName(target);
  const fh = await fsp.open(temp, "wx", 0o644);
  let committed = false;
  try {
    if (pieces instanceof Uint8Array) {
      await writeAll(fh, pieces);
    } else {
      for await (const piece of pieces) {
        options.signal?.throwIfAborted();
        await writeAll(fh, piece);
      }
    }
    await fh.sync();
    await fh.close();
    await fsp.rename(temp, target);
    committed = true;
    await fsyncDir(path.dirname(target));
  } finally {
    if (!committed) {
      await fh.close().catch(() => undefined); // may already be closed; the write error matters
      await fsp.rm(temp, { force: true });
    }
  }
}

/**
 * Stores a blob at `target` from `source`, verifying size and digest while writing; an
 * existing file of the right size is taken as done (returns false, `source` is not read).
 *
 * @returns whether the blob was written
 * @throws {DigestMismatchError} when `source` does not match `desc` (nothing is left behind)
 */
export async function writeBlobAtomic(
  target: string,
  desc: Pick<Descriptor, "digest" | "size">,
  source: () => AsyncIterable<Uint8Array>,
  what: string,
  options: Pick<FetchOptions, "signal"> = {},
): Promise<boolean> {
  if (await hasFileOfSize(target, desc.size)) return false;
  await writeFileAtomic(target, verifyStream(source(), desc, what), options);
  return true;
}

/** Whether `file` exists as a regular file of exactly `size` bytes. */
export async function hasFileOfSize(file: string, size: number): Promise<boolean> {
  try {
    const st = await fsp.stat(file);
    return st.isFile() && st.size === size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}
