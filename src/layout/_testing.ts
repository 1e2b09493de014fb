/**
 * Test-only: tiny in-memory images and hand-written OCI layouts (no library code uses this).
 */
import fsp from "node:fs/promises";
import path from "node:path";
import zlib from "node:zlib";
import { Annotation, MediaType } from "../oci/media_type.ts";
import { type Descriptor, type Platform, jsonBytes } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { buildTar } from "../tar/_testing.ts";

/** A blob with its descriptor. */
export interface TestBlob {
  desc: Descriptor;
  bytes: Uint8Array;
}

/** A single-platform image: gzip layers, config and manifest, all in memory. */
export interface TestImage {
  layers: TestBlob[];
  config: TestBlob;
  manifest: TestBlob;
  /** The uncompressed layer tars (diff ids are their digests). */
  tars: Uint8Array[];
}

/** Builds an image with one layer per entry of `layerFiles` (file name → content). */
export function makeImage(layerFiles: Record<string, string>[], platform: Platform = { architecture: "amd64", os: "linux" }): TestImage {
  const tars = layerFiles.map((files) => buildTar(Object.entries(files).map(([name, data]) => ({ name, data, mtime: 0 }))));
  const layers = tars.map((t) => {
    const gz = new Uint8Array(zlib.gzipSync(t));
    return { desc: describeBytes(MediaType.OciLayerGzip, gz), bytes: gz };
  });
  const configBytes = jsonBytes({
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ["PATH=/bin"] },
    rootfs: { type: "layers", diff_ids: tars.map((t) => describeBytes("", t).digest) },
  });
  const config = { desc: describeBytes(MediaType.OciConfig, configBytes), bytes: configBytes };
  const manifestBytes = jsonBytes({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: config.desc,
    layers: layers.map((l) => l.desc),
  });
  return { layers, config, tars, manifest: { desc: describeBytes(MediaType.OciManifest, manifestBytes), bytes: manifestBytes } };
}

/** An index over `images`, each entry with its platform. */
export function makeIndex(images: readonly { image: TestImage; platform: Platform }[]): TestBlob {
  const bytes = jsonBytes({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: images.map(({ image, platform }) => ({ ...image.manifest.desc, platform })),
  });
  return { desc: describeBytes(MediaType.OciIndex, bytes), bytes };
}

/** Writes blobs into `dir/blobs/sha256/` (no checks: tests may write corrupt ones). */
export async function writeBlobs(dir: string, blobs: readonly TestBlob[]): Promise<void> {
  await fsp.mkdir(path.join(dir, "blobs", "sha256"), { recursive: true });
  for (const b of blobs) await fsp.writeFile(path.join(dir, "blobs", "sha256", b.desc.digest.slice(7)), b.bytes);
}

/** All blobs of an image. */
export function imageBlobs(image: TestImage): TestBlob[] {
  return [...image.layers, image.config, image.manifest];
}

/** Writes a complete layout by hand: `oci-layout`, blobs and an index.json of `entries`. */
export async function writeHandLayout(dir: string, blobs: readonly TestBlob[], entries: readonly Descriptor[]): Promise<void> {
  await writeBlobs(dir, blobs);
  await fsp.writeFile(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await fsp.writeFile(path.join(dir, "index.json"), jsonBytes({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries }));
}

/** `desc` with an `org.opencontainers.image.ref.name` annotation. */
export function tagged(desc: Descriptor, tag: string): Descriptor {
  return { ...desc, annotations: { [Annotation.OciRefName]: tag } };
}

/** Concatenates a stream. */
export async function readAll(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of source) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

/** Files in `dir` (recursively) whose name starts with `.tmp-`. */
export async function tempFilesUnder(dir: string): Promise<string[]> {
  const all = (await fsp.readdir(dir, { recursive: true })) as string[];
  return all.filter((f) => path.basename(f).startsWith(".tmp-"));
}
