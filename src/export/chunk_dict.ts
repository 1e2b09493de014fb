/**
 * `--chunk-dict REF|FILE`: a Nydus image (any source) or a bootstrap file whose chunks new
 * blobs reference instead of storing again (nydus-image.md §4.5). The dictionary's blobs
 * that the result references are added to the result's layers and copied to the target.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { BlobProvider, ChunkDict } from "../convert/index.ts";
import { extractBootstrap } from "../convert/bootstrap_layer.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { Annotation, MediaType, isIndexMediaType, isNydusIndexEntry } from "../oci/media_type.ts";
import { platformMatches } from "../oci/platform.ts";
import type { ImageSource } from "../oci/store.ts";
import { parseIndex, parseManifest, type Descriptor, type Platform } from "../oci/types.ts";
import { openRafs } from "../rafs/open.ts";
import { openSource, parseSource, type OpenOptions } from "./endpoint.ts";

const RAFS_V6_MAGIC_OFFSET = 1024;

function looksLikeBootstrap(file: string): boolean {
  const fd = fs.openSync(file, "r");
  try {
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, RAFS_V6_MAGIC_OFFSET);
    const v5 = Buffer.alloc(4);
    fs.readSync(fd, v5, 0, 4, 0);
    return b.readUInt32LE(0) === 0xe0f5e1e2 || v5.readUInt32LE(0) === 0x52414653;
  } finally {
    fs.closeSync(fd);
  }
}

/** Picks the Nydus manifest of a dictionary image for `platform`. */
async function nydusManifest(source: ImageSource, platform: Platform, signal?: AbortSignal): Promise<Descriptor> {
  const root = await source.resolve({ signal });
  if (!isIndexMediaType(root.mediaType)) return root;
  const index = parseIndex(await source.fetchBytes(root, { signal }), `index of ${source.name}`);
  const forPlatform = index.manifests.filter((m) => !m.platform || platformMatches(platform, m.platform));
  const marked = forPlatform.find(isNydusIndexEntry);
  const pick = marked ?? forPlatform[0];
  if (!pick) throw new InvalidInputError(`Cannot use chunk dictionary ${source.name}: it has no manifest for this platform`);
  return pick;
}

export async function loadChunkDict(text: string, platform: Platform, options: OpenOptions = {}): Promise<{ dict: ChunkDict; close(): Promise<void> }> {
  if (fs.statSync(text, { throwIfNoEntry: false })?.isFile() && looksLikeBootstrap(text)) {
    const bootstrap = await fsp.readFile(text);
    const image = openRafs(bootstrap);
    const dir = path.dirname(text);
    const blobs = new Map<string, BlobProvider>();
    for (const b of image.blobs) {
      const file = path.join(dir, b.blobId);
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (!st?.isFile()) throw new InvalidInputError(`Cannot use chunk dictionary "${text}": its blob ${b.blobId} is not next to it (${file})`);
      blobs.set(b.blobId, { desc: { mediaType: MediaType.NydusBlob, digest: `sha256:${b.blobId}`, size: st.size }, file, open: () => fs.createReadStream(file, { highWaterMark: 1 << 20 }) });
    }
    const digest = `sha256:${crypto.createHash("sha256").update(bootstrap).digest("hex")}`;
    return { dict: { name: text, image, bootstrap, bootstrapDigest: digest, blobs }, close: async () => {} };
  }
  const source = await openSource(parseSource(text), options);
  try {
    const desc = await nydusManifest(source, platform, options.signal);
    const manifest = parseManifest(await source.fetchBytes(desc, { signal: options.signal }), `manifest of chunk dictionary ${source.name}`);
    const last = manifest.layers.at(-1);
    if (!last || last.annotations?.[Annotation.NydusBootstrap] !== "true") {
      throw new InvalidInputError(`Cannot use chunk dictionary ${source.name}: it is not a Nydus image (no bootstrap layer)`);
    }
    const { bootstrap } = await extractBootstrap(await source.fetchBlob(last, { signal: options.signal }), `bootstrap layer of ${source.name}`);
    const image = openRafs(bootstrap);
    const blobs = new Map<string, BlobProvider>();
    for (const l of manifest.layers.slice(0, -1)) {
      if (l.mediaType !== MediaType.NydusBlob) continue;
      blobs.set(l.digest.slice(7), {
        desc: l,
        fromSource: true,
        open: () =>
          (async function* () {
            yield* await source.fetchBlob(l, { signal: options.signal });
          })(),
      });
    }
    const digest = `sha256:${crypto.createHash("sha256").update(bootstrap).digest("hex")}`;
    return { dict: { name: source.name, image, bootstrap, bootstrapDigest: digest, blobs }, close: async () => source.close?.() };
  } catch (err) {
    await source.close?.();
    throw err;
  }
}
