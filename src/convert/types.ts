/**
 * What the converter produces: documents to store and blobs to copy, in push order.
 */
import type { Descriptor, Platform } from "../oci/types.ts";

/** A blob the converted image needs in its repository, and how to get its bytes. */
export interface BlobProvider {
  desc: Descriptor;
  /** A fresh stream of the blob's bytes for each call (retries re-open). */
  open(): AsyncIterable<Uint8Array>;
  /** Set for blobs copied from the source image (mountable from the source repository). */
  fromSource?: boolean;
  /** A local file holding the bytes, when there is one. */
  file?: string;
  /** Set when `file` was built in this run (its digest computed while writing it): sinks may link it. */
  built?: boolean;
}

/** Per converted layer, for reports and `--json`. */
export interface ConvertedLayerReport {
  /** Source layer digest. */
  source: string;
  /** Nydus blob layer digest (`sha256:` + blob id). */
  blob: string;
  size: number;
  /** Reused from the layer cache instead of built. */
  cached: boolean;
  /** Chunks of the layer's file data, including those found elsewhere (a cached layer: the chunks its blob stores). */
  chunks: number;
  /** Of those, chunks not stored because the chunk dictionary (or an earlier file) has them. */
  dedupedChunks: number;
  seconds: number;
}

export interface ConvertedManifest {
  platform?: Platform;
  /** The source manifest. */
  source: Descriptor;
  /** The Nydus manifest. */
  desc: Descriptor;
  config: Descriptor;
  bootstrap: Descriptor;
  layers: ConvertedLayerReport[];
  /** Chunk-dictionary blobs the merged bootstrap references, appended as extra layers. */
  dictBlobs: string[];
}

export interface ConvertResult {
  /** What the target name should point at: a manifest or an index. */
  root: Descriptor;
  /** Manifest, index and config bytes by digest. */
  documents: Map<string, Uint8Array>;
  /** Layer blobs to store before anything that points at them (deduplicated). */
  blobs: BlobProvider[];
  /** Config descriptors (stored as blobs, before the manifests). */
  configs: Descriptor[];
  /** Manifests below the root, stored before it (children first). */
  children: Descriptor[];
  manifests: ConvertedManifest[];
}

/** Progress of one unit of work: a layer being converted or a blob being stored. */
export interface ProgressEvent {
  phase: "convert" | "push";
  /** Short name: the first 12 hex digits of the digest. */
  id: string;
  done: number;
  total: number;
  finished?: boolean;
}
