/**
 * An OCI image layout directory as an {@link ImageSink}.
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { Annotation } from "../oci/media_type.ts";
import type { FetchOptions, ImageSink, PushBlobOptions } from "../oci/store.ts";
import type { Descriptor } from "../oci/types.ts";
import { verifyBytes } from "../oci/verify.ts";
import { blobPath } from "./blob_path.ts";
import { initLayout, readLayoutIndex, writeLayoutIndex } from "./layout_files.ts";
import { readBlobBytes } from "./read_blob.ts";
import { TEMP_PREFIX, hasFileOfSize, writeBlobAtomic, writeFileAtomic } from "./write_atomic.ts";

/** Options of {@link layoutSink}. */
export interface LayoutSinkOptions {
  /** The tag {@link ImageSink.existing} looks up (`org.opencontainers.image.ref.name`). */
  tag?: string;
}

/** The index.json entry for `desc` named `tag`: media type, digest, size, platform, ref name. */
function indexEntry(desc: Descriptor, tag: string): Descriptor {
  const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.platform !== undefined) entry.platform = desc.platform;
  entry.annotations = { [Annotation.OciRefName]: tag };
  return entry;
}

/**
 * Writes into an OCI image layout directory, creating it (with `oci-layout` and an empty
 * `index.json`) on first use. Blobs are streamed to a temporary file in `blobs/sha256/`,
 * verified while written, fsynced and renamed; a blob already there with the right size is
 * skipped. Tagging a manifest rewrites `index.json` atomically, replacing any entry with the
 * same `org.opencontainers.image.ref.name` and keeping the others.
 *
 * @param dir the layout directory (created when missing)
 * @param options see {@link LayoutSinkOptions}
 * @example
 * const sink = layoutSink("/tmp/out", { tag: "v1" });
 * await sink.pushBlob(layerDesc, () => fs.createReadStream(layerFile));
 * await sink.pushManifest(manifestDesc, manifestBytes, { tag: "v1" });
 */
/**
 * Hard-links a blob the caller just built (its digest computed while it was written) into
 * the layout: no copy, no second hash. False when it cannot (another file system, a size
 * that does not match): the caller then copies and verifies as usual.
 */
async function linkBuiltFile(file: string, target: string, size: number): Promise<boolean> {
  if (await hasFileOfSize(target, size)) return true;
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st?.isFile() || st.size !== size) return false;
  const temp = path.join(path.dirname(target), `${TEMP_PREFIX}${path.basename(target)}-${process.pid}-${crypto.randomUUID()}`);
  try {
    await fsp.link(file, temp);
  } catch {
    // EXDEV, EPERM, or no hard links on this file system: fall back to a verified copy.
    return false;
  }
  try {
    const fh = await fsp.open(temp, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(temp, target);
    return true;
  } catch (err) {
    await fsp.rm(temp, { force: true });
    throw err;
  }
}

export function layoutSink(dir: string, options: LayoutSinkOptions = {}): ImageSink {
  const { tag } = options;
  const name = `oci:${dir}${tag !== undefined ? `:${tag}` : ""}`;
  let ready: Promise<void> | undefined;
  /** index.json updates of this sink, one after the other. */
  let indexQueue: Promise<void> = Promise.resolve();

  function init(): Promise<void> {
    if (ready === undefined) {
      const pending = initLayout(dir);
      ready = pending;
      pending.catch(() => {
        if (ready === pending) ready = undefined; // retried on the next call
      });
    }
    return ready;
  }

  async function setTag(desc: Descriptor, refName: string): Promise<void> {
    const { index } = await readLayoutIndex(dir);
    const manifests = index.manifests.filter((m) => m.annotations?.[Annotation.OciRefName] !== refName);
    manifests.push(indexEntry(desc, refName));
    await writeLayoutIndex(dir, { ...index, manifests });
  }

  return {
    name,
    async hasBlob(desc: Descriptor, fetchOptions?: FetchOptions): Promise<boolean> {
      fetchOptions?.signal?.throwIfAborted();
      return hasFileOfSize(blobPath(dir, desc.digest), desc.size);
    },
    async pushBlob(desc: Descriptor, open: () => AsyncIterable<Uint8Array>, pushOptions?: PushBlobOptions): Promise<void> {
      const target = blobPath(dir, desc.digest);
      await init();
      if (pushOptions?.builtFile && (await linkBuiltFile(pushOptions.builtFile, target, desc.size))) return;
      await writeBlobAtomic(target, desc, open, `blob ${desc.digest} for ${name}`, { signal: pushOptions?.signal });
    },
    async pushManifest(desc: Descriptor, bytes: Uint8Array, pushOptions?: FetchOptions & { tag?: string }): Promise<void> {
      const target = blobPath(dir, desc.digest);
      verifyBytes(bytes, desc, `manifest ${desc.digest} for ${name}`);
      await init();
      if (!(await hasFileOfSize(target, desc.size))) await writeFileAtomic(target, bytes, { signal: pushOptions?.signal });
      const refName = pushOptions?.tag;
      if (refName === undefined) return;
      if (refName === "") throw new InvalidInputError(`Cannot tag manifest ${desc.digest} in ${name}: the tag is empty`);
      const update = indexQueue.then(() => setTag(desc, refName));
      indexQueue = update.catch(() => undefined); // the next update runs even if this one failed; the caller sees the error
      await update;
    },
    async existing(fetchOptions?: FetchOptions): Promise<{ desc: Descriptor; bytes: Uint8Array } | undefined> {
      if (tag === undefined) return undefined;
      let found: Descriptor | undefined;
      try {
        const { index } = await readLayoutIndex(dir);
        found = index.manifests.find((m) => m.annotations?.[Annotation.OciRefName] === tag);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined; // no layout (or no index.json) yet
        throw err;
      }
      if (found === undefined) return undefined;
      return { desc: found, bytes: await readBlobBytes(dir, found, `manifest ${found.digest} of ${name}`, fetchOptions) };
    },
    fetchBytes(desc: Descriptor, fetchOptions?: FetchOptions): Promise<Uint8Array> {
      return readBlobBytes(dir, desc, `blob ${desc.digest} of ${name}`, fetchOptions);
    },
  };
}
