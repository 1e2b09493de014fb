/**
 * Media types and Nydus annotation keys: every OCI/Docker/Nydus vocabulary string the
 * toolkit reads or writes, in one place (spec nydus-image.md §1).
 */

export const MediaType = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  /** Every Nydus data (blob) layer, in OCI and Docker manifests alike. */
  NydusBlob: "application/vnd.oci.image.layer.nydus.blob.v1",
  /** Config media type of the Nydus manifest inside a merged index (§1.1). */
  NydusConfig: "application/vnd.nydus.image.config.v1+json",
  /** `artifactType` of the index entry pointing at the Nydus manifest (§1.2). */
  NydusManifestArtifact: "application/vnd.nydus.image.manifest.v1+json",
} as const;

/** One of the known media type strings. */
export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

/** Annotation keys (§1.3, §1.4). */
export const Annotation = {
  NydusBlob: "containerd.io/snapshot/nydus-blob",
  NydusBootstrap: "containerd.io/snapshot/nydus-bootstrap",
  NydusFsVersion: "containerd.io/snapshot/nydus-fs-version",
  NydusSourceDigest: "containerd.io/snapshot/nydus-source-digest",
  NydusSourceReference: "containerd.io/snapshot/nydus-source-reference",
  NydusBuilderVersion: "containerd.io/snapshot/nydus-builder-version",
  NydusEmptyLayer: "containerd.io/snapshot/nydus-empty-layer",
  NydusRef: "containerd.io/snapshot/nydus-ref",
  Uncompressed: "containerd.io/uncompressed",
  OciRefName: "org.opencontainers.image.ref.name",
} as const;

/** Legacy `platform.os.features` marker of a Nydus index entry (§1.2); accepted on read. */
export const NYDUS_OS_FEATURE = "nydus.remoteimage.v1";

/**
 * Whether an index entry points at a Nydus manifest: the current marker (`artifactType`)
 * or the legacy one (`platform.os.features`), both accepted as consumers accept them (§1.2).
 */
export function isNydusIndexEntry(entry: { artifactType?: string; platform?: { "os.features"?: string[] } }): boolean {
  return entry.artifactType === MediaType.NydusManifestArtifact || (entry.platform?.["os.features"]?.includes(NYDUS_OS_FEATURE) ?? false);
}

/** Path of the merged bootstrap inside the bootstrap layer's tar (§2.3). */
export const BOOTSTRAP_PATH_IN_LAYER = "image/image.boot";

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isDockerMediaType(mt: string | undefined): boolean {
  return mt !== undefined && mt.startsWith("application/vnd.docker.");
}

/** How the bytes of a layer with this media type are compressed; undefined if it is not a tar layer type. */
export function layerCompression(mt: string): "gzip" | "zstd" | "none" | undefined {
  switch (mt) {
    case MediaType.OciLayerGzip:
    case MediaType.OciLayerNondistGzip:
    case MediaType.DockerLayerGzip:
    case MediaType.DockerLayerForeignGzip:
      return "gzip";
    case MediaType.OciLayerZstd:
    case "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
      return "zstd";
    case MediaType.OciLayer:
    case "application/vnd.oci.image.layer.nondistributable.v1.tar":
    case "application/vnd.docker.image.rootfs.diff.tar":
      return "none";
    default:
      return undefined;
  }
}

/** The Accept header value for manifest GETs: all four manifest/index types (the registry 404s otherwise). */
export const MANIFEST_ACCEPT = [MediaType.OciIndex, MediaType.OciManifest, MediaType.DockerManifestList, MediaType.DockerManifest].join(", ");
