/** Test helpers for the registry client: random blobs, a tiny image, stream collection. */
import crypto from "node:crypto";
import { MediaType } from "../oci/media_type.ts";
import type { Descriptor } from "../oci/types.ts";
import { describeBytes, jsonBytes } from "../oci/index.ts";

/** Deterministic pseudo-random bytes (sha256 counter mode). */
export function bytesOf(size: number, seed: string): Uint8Array {
  const out = Buffer.allocUnsafe(size);
  for (let off = 0, i = 0; off < size; i++) {
    const block = crypto.createHash("sha256").update(`${seed}/${i}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

/** Yields `bytes` in pieces of `piece` bytes. */
export async function* pieces(bytes: Uint8Array, piece = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += piece) yield bytes.subarray(off, off + piece);
}

export async function collectAll(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

export interface TinyImage {
  layer: { desc: Descriptor; bytes: Uint8Array };
  config: { desc: Descriptor; bytes: Uint8Array };
  manifest: { desc: Descriptor; bytes: Uint8Array };
}

/** A one-layer OCI image (the layer is random bytes; registries do not look inside). */
export function tinyImage(seed: string, layerSize = 1000): TinyImage {
  const layerBytes = bytesOf(layerSize, seed);
  const layer = { desc: describeBytes(MediaType.OciLayerGzip, layerBytes), bytes: layerBytes };
  const configBytes = jsonBytes({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.desc.digest] }, seed });
  const config = { desc: describeBytes(MediaType.OciConfig, configBytes), bytes: configBytes };
  const manifestBytes = jsonBytes({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: [layer.desc] });
  return { layer, config, manifest: { desc: describeBytes(MediaType.OciManifest, manifestBytes), bytes: manifestBytes } };
}
