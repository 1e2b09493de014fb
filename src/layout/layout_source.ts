/**
 * An OCI image layout directory as an {@link ImageSource}.
 */
import fsp from "node:fs/promises";
import { NotFoundError } from "../internal/errors.ts";
import type { FetchOptions, ImageSource } from "../oci/store.ts";
import { type Descriptor, sniffMediaType } from "../oci/types.ts";
import { verifyBytes, verifyStream } from "../oci/verify.ts";
import { blobPath } from "./blob_path.ts";
import { checkLayoutVersion, readLayoutIndex } from "./layout_files.ts";
import { readBlobBytes, readFileVerified, streamBlob } from "./read_blob.ts";
import { type Selection, selectEntry } from "./select_entry.ts";

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Options of {@link layoutSource}. */
export interface LayoutSourceOptions {
  /** The `org.opencontainers.image.ref.name` to resolve. @default the only entry of index.json */
  tag?: string;
  /**
   * Resolve this manifest or index digest instead of a tag: an index.json entry with this
   * digest, else the blob itself (its media type sniffed from its bytes).
   */
  digest?: string;
  /**
   * The name to report (for sources built over a layout, e.g. an unpacked archive).
   * @default `oci:DIR[:TAG]` or `oci:DIR@DIGEST`
   */
  name?: string;
}

/**
 * Reads an OCI image layout (image-spec `image-layout.md`): `oci-layout` must say version
 * 1.0.0, `index.json` names the images, and blobs live in `blobs/sha256/<hex>`. Every blob is
 * verified against its descriptor as it is read.
 *
 * @param dir the layout directory
 * @param options see {@link LayoutSourceOptions}
 * @example
 * const src = layoutSource("/tmp/layout", { tag: "v1" });
 * const desc = await src.resolve();
 * const manifest = parseManifest(await src.fetchBytes(desc));
 */
export function layoutSource(dir: string, options: LayoutSourceOptions = {}): ImageSource {
  const { tag, digest } = options;
  const name = options.name ?? `oci:${dir}${digest !== undefined ? `@${digest}` : tag !== undefined ? `:${tag}` : ""}`;
  let selection: Promise<Selection> | undefined;

  async function select(): Promise<Selection> {
    await checkLayoutVersion(dir);
    const { index, bytes } = await readLayoutIndex(dir);
    if (digest === undefined) return selectEntry(index, bytes, tag, name);
    const entry = index.manifests.find((m) => m.digest === digest);
    if (entry) return { desc: entry };
    const file = blobPath(dir, digest);
    let size: number;
    try {
      size = (await fsp.stat(file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`manifest ${digest} in ${name}`, `no such file "${file}"`);
      throw err;
    }
    const probe: Descriptor = { mediaType: "", digest, size };
    const mediaType = sniffMediaType(await readFileVerified(file, probe, `manifest ${digest} of ${name}`));
    if (mediaType === undefined) throw new NotFoundError(`manifest ${digest} in ${name}`, "the blob is not a manifest or index");
    return { desc: { ...probe, mediaType } };
  }

  function selected(): Promise<Selection> {
    if (selection === undefined) {
      const pending = select();
      selection = pending;
      // A failed resolve is not cached (the layout may be completed later); the caller sees the error.
      pending.catch(() => {
        if (selection === pending) selection = undefined;
      });
    }
    return selection;
  }

  /** The synthesized document (index.json itself, or a merged index) when `desc` names it. */
  async function virtualDocument(desc: Descriptor): Promise<Uint8Array | undefined> {
    // A layout whose name resolves to nothing can still serve blobs by digest: ignore the failure here.
    const s = await selected().catch(() => undefined);
    return s?.document !== undefined && s.desc.digest === desc.digest ? s.document : undefined;
  }

  return {
    name,
    async resolve(fetchOptions?: FetchOptions): Promise<Descriptor> {
      fetchOptions?.signal?.throwIfAborted();
      return (await selected()).desc;
    },
    async fetchBytes(desc: Descriptor, fetchOptions?: FetchOptions): Promise<Uint8Array> {
      const what = `blob ${desc.digest} of ${name}`;
      const doc = await virtualDocument(desc);
      if (doc !== undefined) return verifyBytes(doc, desc, what);
      return readBlobBytes(dir, desc, what, fetchOptions);
    },
    async fetchBlob(desc: Descriptor, fetchOptions?: FetchOptions): Promise<AsyncIterable<Uint8Array>> {
      const what = `blob ${desc.digest} of ${name}`;
      const doc = await virtualDocument(desc);
      if (doc !== undefined) return verifyStream(once(fetchOptions?.transferable ? new Uint8Array(doc) : doc), desc, what);
      return streamBlob(dir, desc, what, fetchOptions); // file pieces are fresh buffers: transferable as they are
    },
  };
}
