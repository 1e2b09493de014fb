/**
 * Opening a Nydus image from any {@link ImageSource} for lazy use: resolve the tag, pick the
 * platform's Nydus manifest from an index (skipping the OCI entries of a merged index), find
 * the bootstrap layer, extract and decode the merged bootstrap, and map blob ids to their
 * layer descriptors. Only the documents and the bootstrap layer are fetched.
 */
import { extractBootstrap } from "../convert/bootstrap_layer.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { Annotation, isIndexMediaType, isNydusIndexEntry, MediaType } from "../oci/media_type.ts";
import { formatPlatform, hostPlatform, platformMatches } from "../oci/platform.ts";
import type { FetchOptions, ImageSource } from "../oci/store.ts";
import { parseIndex, parseManifest, sniffMediaType, type Descriptor, type Manifest, type Platform } from "../oci/types.ts";
import { openRafs } from "../rafs/open.ts";
import type { RafsImage } from "../rafs/model.ts";

export interface OpenImageOptions {
  /** Platform to pick from an index. @default the host platform */
  platform?: Platform;
  signal?: AbortSignal;
  /**
   * Called with the bootstrap bytes as soon as they are extracted, before they are decoded here
   * (lets another thread decode its own copy at the same time).
   */
  onBootstrap?: (bootstrap: Uint8Array) => void;
}

export interface NydusImage {
  /** Digest of the Nydus manifest used. */
  manifestDigest: string;
  manifest: Manifest;
  /** The merged bootstrap (`image/image.boot`). */
  bootstrap: Uint8Array;
  image: RafsImage;
  /** Blob id (digest hex) → its Nydus blob layer descriptor. */
  blobs: Map<string, Descriptor>;
  /** Blob ids of the bootstrap's blob table that no layer of the manifest carries. */
  missingBlobs: string[];
  /** What opening cost: documents + bootstrap layer fetched, and their bytes. */
  fetches: number;
  bytes: number;
}

/**
 * Opens the Nydus image `source` names.
 * @throws InvalidInputError when it is not a Nydus image (or has no entry for the platform)
 * @throws NotFoundError, RegistryError, DigestMismatchError from the source; FormatError for a bad bootstrap
 */
export async function openNydusImage(source: ImageSource, options: OpenImageOptions = {}): Promise<NydusImage> {
  const fetchOpts: FetchOptions = { signal: options.signal };
  let fetches = 0;
  let bytes = 0;
  const fetchDoc = async (desc: Descriptor) => {
    const b = await source.fetchBytes(desc, fetchOpts);
    fetches++;
    bytes += b.length;
    return b;
  };
  let desc = await source.resolve(fetchOpts);
  let docBytes = await fetchDoc(desc);
  let mediaType = desc.mediaType || sniffMediaType(docBytes);
  if (isIndexMediaType(mediaType)) {
    const index = parseIndex(docBytes, `index of ${source.name}`);
    const marked = index.manifests.filter((m) => isNydusIndexEntry(m));
    const candidates = marked.length > 0 ? marked : index.manifests;
    const wanted = options.platform ?? hostPlatform();
    const entry = candidates.find((m) => platformMatches(wanted, m.platform));
    if (!entry) {
      throw new InvalidInputError(`Cannot open ${source.name}: its index has no ${marked.length > 0 ? "Nydus " : ""}manifest for platform ${formatPlatform(wanted)} (has ${candidates.map((m) => formatPlatform(m.platform)).join(", ") || "none"})`);
    }
    desc = entry;
    docBytes = await fetchDoc(desc);
    mediaType = desc.mediaType || sniffMediaType(docBytes);
  }
  if (isIndexMediaType(mediaType)) throw new InvalidInputError(`Cannot open ${source.name}: an index points at another index`);
  const manifest = parseManifest(docBytes, `manifest of ${source.name}`);
  const bootLayer = [...manifest.layers].reverse().find((l) => l.annotations?.[Annotation.NydusBootstrap] === "true");
  if (!bootLayer) {
    throw new InvalidInputError(`Cannot open ${source.name}: not a Nydus image (no layer with annotation ${Annotation.NydusBootstrap}="true"; convert it first)`);
  }
  const blobs = new Map<string, Descriptor>();
  for (const l of manifest.layers) {
    if (l.mediaType === MediaType.NydusBlob && l.digest.startsWith("sha256:")) blobs.set(l.digest.slice("sha256:".length), l);
  }
  const stream = await source.fetchBlob(bootLayer, fetchOpts);
  fetches++;
  let layerBytes = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const piece of stream) {
      layerBytes += piece.length;
      yield piece;
    }
  }
  const { bootstrap } = await extractBootstrap(counted(), `the bootstrap layer ${bootLayer.digest} of ${source.name}`, { diffId: false });
  bytes += layerBytes;
  options.onBootstrap?.(bootstrap);
  const image = openRafs(bootstrap);
  const missingBlobs = image.blobs.map((b) => b.blobId).filter((id) => !blobs.has(id));
  return { manifestDigest: desc.digest, manifest, bootstrap, image, blobs, missingBlobs, fetches, bytes };
}
