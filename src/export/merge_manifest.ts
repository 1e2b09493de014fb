/**
 * BuildKit `merge-manifest=true` (nydus-image.md §3.2, PR #2045): the converted Nydus
 * manifests are merged into whatever the target name already holds. Existing entries stay
 * (a single manifest becomes an index entry), an existing Nydus entry of the same platform
 * is replaced, and the new Nydus entries are appended, marked with the Nydus artifactType.
 */
import type { ConvertResult } from "../convert/types.ts";
import { MediaType, isIndexMediaType, isNydusIndexEntry } from "../oci/media_type.ts";
import { formatPlatform } from "../oci/platform.ts";
import { jsonBytes, parseIndex, type Descriptor, type Index, type Platform } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";

export interface MergeIntoOptions {
  /** OCI index (true) or Docker manifest list (false). */
  ociIndex: boolean;
  /** Platform of an existing single manifest (read from its config by the caller). @default linux/amd64 */
  existingPlatform?: Platform;
}


/**
 * Returns `result` with its root replaced by the merged index; the previous root's
 * manifests become children so that they are pushed before the index.
 */
export function mergeIntoExisting(result: ConvertResult, existing: { desc: Descriptor; bytes: Uint8Array } | undefined, options: MergeIntoOptions): ConvertResult {
  const ours: Descriptor[] = result.manifests.map((m) => ({ ...m.desc, platform: m.platform ?? { os: "linux", architecture: "amd64" }, artifactType: MediaType.NydusManifestArtifact }));
  const ourPlatforms = new Set(ours.map((d) => formatPlatform(d.platform)));
  let kept: Descriptor[] = [];
  if (existing) {
    if (isIndexMediaType(existing.desc.mediaType)) {
      const index: Index = parseIndex(existing.bytes, "the index the target already holds");
      kept = index.manifests.filter((d) => !(isNydusIndexEntry(d) && ourPlatforms.has(formatPlatform(d.platform))));
    } else {
      kept = [{ mediaType: existing.desc.mediaType, digest: existing.desc.digest, size: existing.desc.size, platform: options.existingPlatform ?? { os: "linux", architecture: "amd64" } }];
    }
  }
  kept = kept.filter((d) => !ours.some((o) => o.digest === d.digest));
  const mediaType = options.ociIndex ? MediaType.OciIndex : MediaType.DockerManifestList;
  const index: Index = { schemaVersion: 2, mediaType, manifests: [...kept, ...ours] };
  const bytes = jsonBytes(index);
  const root = describeBytes(mediaType, bytes);
  const documents = new Map(result.documents);
  documents.set(root.digest, bytes);
  const children = [...result.children];
  for (const m of result.manifests) if (!children.some((c) => c.digest === m.desc.digest)) children.push(m.desc);
  return { ...result, root, documents, children };
}
