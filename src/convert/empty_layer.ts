/**
 * `--merge-platform` re-issues each original manifest with an empty layer in front, so
 * runtimes never share snapshots between the plain image and its Nydus twin
 * (nydus-image.md §3.2, acceld `PrependEmptyLayer`).
 */
import zlib from "node:zlib";
import { Annotation, MediaType, isDockerMediaType } from "../oci/media_type.ts";
import { jsonBytes, type Descriptor, type ImageConfig, type Manifest } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";

/** sha256 of 1024 zero bytes: the diff id of an empty tar. */
export const EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

export interface ReissuedManifest {
  manifest: Descriptor;
  manifestBytes: Uint8Array;
  config: Descriptor;
  configBytes: Uint8Array;
  emptyLayer: Descriptor;
  emptyLayerBytes: Uint8Array;
}

export function prependEmptyLayer(manifest: Manifest, source: Descriptor, config: ImageConfig): ReissuedManifest {
  const docker = isDockerMediaType(manifest.mediaType ?? source.mediaType);
  const emptyLayerBytes = zlib.gzipSync(new Uint8Array(1024));
  const emptyLayer: Descriptor = {
    ...describeBytes(docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip, emptyLayerBytes),
    annotations: { [Annotation.NydusEmptyLayer]: "true" },
  };
  const newConfig: ImageConfig = {
    ...config,
    rootfs: { type: "layers", diff_ids: [EMPTY_TAR_DIFF_ID, ...config.rootfs.diff_ids] },
    history: [{ created_by: "Nydus Converter", comment: "Nydus Empty Layer" }, ...(config.history ?? [])],
  };
  const configBytes = jsonBytes(newConfig);
  const configDesc = describeBytes(manifest.config.mediaType, configBytes);
  const out: Manifest = {
    ...manifest,
    config: configDesc,
    layers: [emptyLayer, ...manifest.layers],
    annotations: { ...(manifest.annotations ?? {}), [Annotation.NydusSourceDigest]: source.digest },
  };
  const manifestBytes = jsonBytes(out);
  return {
    manifest: describeBytes(manifest.mediaType ?? source.mediaType, manifestBytes),
    manifestBytes,
    config: configDesc,
    configBytes,
    emptyLayer,
    emptyLayerBytes,
  };
}
