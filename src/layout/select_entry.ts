/**
 * Choosing the image an OCI layout's `index.json` names: by tag
 * (`org.opencontainers.image.ref.name`), or the only entry.
 */
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { Annotation, MediaType, isManifestMediaType } from "../oci/media_type.ts";
import type { Descriptor, Index } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { jsonBytes } from "../oci/types.ts";

/** Annotation containerd and docker ≥ 25 put on index.json entries: the full image name. */
export const CONTAINERD_IMAGE_NAME = "io.containerd.image.name";

/** What {@link selectEntry} chose. */
export interface Selection {
  /** The descriptor the layout's name points at. */
  desc: Descriptor;
  /**
   * Bytes of a document that is not stored under `blobs/`: `index.json` itself, or an index
   * synthesized from several entries sharing one tag. Undefined for an ordinary entry.
   */
  document?: Uint8Array;
}

/** The distinct tags of `index`'s entries, in order. */
export function layoutTags(index: Index): string[] {
  const tags: string[] = [];
  for (const m of index.manifests) {
    const t = m.annotations?.[Annotation.OciRefName];
    if (t !== undefined && !tags.includes(t)) tags.push(t);
  }
  return tags;
}

function tagList(index: Index): string {
  const tags = layoutTags(index);
  return tags.length === 0 ? "it has no tagged entries" : `available tags: ${tags.map((t) => JSON.stringify(t)).join(", ")}`;
}

/** Several platform manifests that together form one multi-platform image. */
function isPlatformSet(entries: readonly Descriptor[]): boolean {
  return entries.length > 1 && entries.every((e) => e.platform !== undefined && isManifestMediaType(e.mediaType));
}

function syntheticIndex(entries: readonly Descriptor[]): Selection {
  const manifests = entries.map((e) => {
    const { annotations, ...rest } = e;
    const kept = { ...annotations };
    delete kept[Annotation.OciRefName];
    return Object.keys(kept).length > 0 ? { ...rest, annotations: kept } : rest;
  });
  const document = jsonBytes({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests });
  return { desc: describeBytes(MediaType.OciIndex, document), document };
}

/**
 * Picks the entry of `index` that `tag` names, or without a tag the only entry.
 *
 * - A tag matches `org.opencontainers.image.ref.name`, or else `io.containerd.image.name`.
 *   Several matching platform manifests (one per platform, as some exporters write them)
 *   become one synthesized index.
 * - Without a tag, a single entry is chosen. Several untagged platform manifests mean that
 *   `index.json` itself is the multi-platform image index (as go-containerregistry writes
 *   it); it is returned as the document.
 *
 * @param index the parsed index.json
 * @param indexBytes its exact bytes
 * @param tag the tag to look for, if any
 * @param where names the layout in errors, e.g. `oci:/tmp/l`
 * @throws {NotFoundError} when the tag is missing or the index is empty (listing the tags there are)
 * @throws {InvalidInputError} when no tag is given and several images are there to choose from
 */
export function selectEntry(index: Index, indexBytes: Uint8Array, tag: string | undefined, where: string): Selection {
  const entries = index.manifests;
  if (tag !== undefined) {
    let matches = entries.filter((m) => m.annotations?.[Annotation.OciRefName] === tag);
    if (matches.length === 0) matches = entries.filter((m) => m.annotations?.[CONTAINERD_IMAGE_NAME] === tag);
    if (matches.length === 0) throw new NotFoundError(`tag ${JSON.stringify(tag)} in ${where}`, tagList(index));
    if (matches.length === 1) return { desc: matches[0]! };
    if (isPlatformSet(matches)) return syntheticIndex(matches);
    throw new InvalidInputError(`Cannot resolve tag ${JSON.stringify(tag)} in ${where}: ${matches.length} entries carry it and they are not one manifest per platform`);
  }
  if (entries.length === 0) throw new NotFoundError(`an image in ${where}`, "index.json has no entries");
  if (entries.length === 1) return { desc: entries[0]! };
  if (layoutTags(index).length === 0 && isPlatformSet(entries)) {
    return { desc: describeBytes(index.mediaType ?? MediaType.OciIndex, indexBytes), document: indexBytes };
  }
  throw new InvalidInputError(`Cannot choose an image in ${where}: index.json has ${entries.length} entries; name one (${tagList(index)})`);
}
