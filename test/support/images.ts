/**
 * Source images for convert tests, written as OCI image layouts by hand (the layout format
 * skopeo and umoci accept): layers from texture specs, gzip / zstd / uncompressed.
 */
import crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import zlib from "node:zlib";
import type { LayerSpec } from "../textures/spec.ts";
import { tarBytes } from "../textures/generate.ts";

export interface SourceImageSpec {
  layers: LayerSpec[];
  platform?: { os: string; architecture: string; variant?: string };
  compression?: "gzip" | "zstd" | "none";
  /** Docker schema 2 media types instead of OCI. */
  docker?: boolean;
  /** Extra `config` object fields. */
  config?: Record<string, unknown>;
}

export interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

const sha = (b: Uint8Array) => `sha256:${crypto.createHash("sha256").update(b).digest("hex")}`;

async function putBlob(dir: string, bytes: Uint8Array, mediaType: string): Promise<Desc> {
  const digest = sha(bytes);
  const file = path.join(dir, "blobs", "sha256", digest.slice(7));
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, bytes);
  return { mediaType, digest, size: bytes.length };
}

function compress(tar: Uint8Array, how: "gzip" | "zstd" | "none"): Uint8Array {
  if (how === "gzip") return zlib.gzipSync(tar);
  if (how === "none") return tar;
  const r = spawnSync("zstd", ["-q", "-c"], { input: tar, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

/** Writes one image's blobs, config and manifest into the layout at `dir`; returns the manifest descriptor. */
export async function writeImage(dir: string, spec: SourceImageSpec): Promise<Desc> {
  const how = spec.compression ?? "gzip";
  const platform = spec.platform ?? { os: "linux", architecture: "amd64" };
  const layerType = spec.docker
    ? how === "gzip" ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.docker.image.rootfs.diff.tar"
    : `application/vnd.oci.image.layer.v1.tar${how === "none" ? "" : `+${how}`}`;
  const layers: Desc[] = [];
  const diffIds: string[] = [];
  const history: Record<string, unknown>[] = [];
  for (const l of spec.layers) {
    const tar = tarBytes(l);
    diffIds.push(sha(tar));
    layers.push(await putBlob(dir, compress(tar, how), layerType));
    history.push({ created: "2026-01-01T00:00:00Z", created_by: `layer ${l.name ?? layers.length}` });
  }
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"], WorkingDir: "/", ...spec.config },
    rootfs: { type: "layers", diff_ids: diffIds },
    history,
  };
  const configDesc = await putBlob(dir, Buffer.from(JSON.stringify(config)), spec.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json");
  const manifestType = spec.docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json";
  const manifest = { schemaVersion: 2, mediaType: manifestType, config: configDesc, layers };
  const desc = await putBlob(dir, Buffer.from(JSON.stringify(manifest)), manifestType);
  return { ...desc, platform };
}

/**
 * Writes an OCI layout at `dir` tagged `tag`: a single manifest for one image, an OCI
 * index (or Docker list with `docker`) for several.
 */
export async function writeSourceLayout(dir: string, tag: string, images: SourceImageSpec[], options: { docker?: boolean } = {}): Promise<Desc> {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.writeFile(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests: Desc[] = [];
  for (const i of images) manifests.push(await writeImage(dir, i));
  let root: Desc;
  if (manifests.length === 1) {
    root = { ...manifests[0]!, platform: undefined };
    delete root.platform;
  } else {
    const type = options.docker ? "application/vnd.docker.distribution.manifest.list.v2+json" : "application/vnd.oci.image.index.v1+json";
    root = await putBlob(dir, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type, manifests })), type);
  }
  const entry = { ...root, annotations: { "org.opencontainers.image.ref.name": tag } };
  await fsp.writeFile(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [entry] }));
  return root;
}

/** Reads a JSON blob of a layout. */
export function readLayoutJson<T = any>(dir: string, digest: string): T {
  return JSON.parse(fs.readFileSync(path.join(dir, "blobs", "sha256", digest.replace(/^sha256:/, "")), "utf8")) as T;
}

/** The root descriptor of a layout's tag. */
export function layoutRoot(dir: string, tag: string): Desc {
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8")) as { manifests: Desc[] };
  const e = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!e) throw new Error(`no tag ${tag} in ${dir}`);
  return e;
}
