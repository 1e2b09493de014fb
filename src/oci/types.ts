/**
 * The OCI / Docker schema 2 JSON documents as TypeScript types, plus strict parsers
 * that validate the fields the toolkit relies on (OCI image-spec v1.1).
 */
import { InvalidInputError } from "../internal/errors.ts";
import { isIndexMediaType, isManifestMediaType } from "./media_type.ts";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  urls?: string[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** Image config; unknown keys are kept as they are. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  config?: Record<string, unknown>;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** Whether `s` is a `sha256:<64 lowercase hex>` digest (the only algorithm accepted). */
export function isDigest(s: unknown): s is string {
  return typeof s === "string" && DIGEST_RE.test(s);
}

function fail(what: string, detail: string): never {
  throw new InvalidInputError(`Cannot parse ${what}: ${detail}`);
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    fail(what, `not JSON (${(err as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what, "not a JSON object");
  return v as Record<string, unknown>;
}

/** Validates one descriptor object. */
export function checkDescriptor(d: unknown, what: string): Descriptor {
  if (typeof d !== "object" || d === null) fail(what, "descriptor is not an object");
  const o = d as Record<string, unknown>;
  if (typeof o.mediaType !== "string" || o.mediaType === "") fail(what, "descriptor has no mediaType");
  if (!isDigest(o.digest)) fail(what, `descriptor digest ${JSON.stringify(o.digest)} is not a sha256 digest`);
  if (typeof o.size !== "number" || !Number.isSafeInteger(o.size) || o.size < 0) fail(what, `descriptor size ${JSON.stringify(o.size)} is not a non-negative integer`);
  return o as unknown as Descriptor;
}

/** Parses an image manifest (OCI or Docker schema 2). */
export function parseManifest(bytes: Uint8Array, what = "manifest"): Manifest {
  const o = parseJson(bytes, what);
  if (o.schemaVersion !== 2) fail(what, `schemaVersion is ${JSON.stringify(o.schemaVersion)}, expected 2`);
  if (o.mediaType !== undefined && !isManifestMediaType(o.mediaType as string)) fail(what, `mediaType "${String(o.mediaType)}" is not an image manifest`);
  checkDescriptor(o.config, `${what} config`);
  if (!Array.isArray(o.layers)) fail(what, "layers is not an array");
  o.layers.forEach((l, i) => checkDescriptor(l, `${what} layer ${i}`));
  return o as unknown as Manifest;
}

/** Parses an OCI index or Docker manifest list. */
export function parseIndex(bytes: Uint8Array, what = "index"): Index {
  const o = parseJson(bytes, what);
  if (o.schemaVersion !== 2) fail(what, `schemaVersion is ${JSON.stringify(o.schemaVersion)}, expected 2`);
  if (o.mediaType !== undefined && !isIndexMediaType(o.mediaType as string)) fail(what, `mediaType "${String(o.mediaType)}" is not an index`);
  if (!Array.isArray(o.manifests)) fail(what, "manifests is not an array");
  o.manifests.forEach((m, i) => checkDescriptor(m, `${what} entry ${i}`));
  return o as unknown as Index;
}

/** Parses an image config; requires `rootfs.diff_ids`. */
export function parseConfig(bytes: Uint8Array, what = "image config"): ImageConfig {
  const o = parseJson(bytes, what);
  const rootfs = o.rootfs as Record<string, unknown> | undefined;
  if (!rootfs || !Array.isArray(rootfs.diff_ids)) fail(what, "rootfs.diff_ids is missing");
  rootfs.diff_ids.forEach((d, i) => {
    if (!isDigest(d)) fail(what, `rootfs.diff_ids[${i}] ${JSON.stringify(d)} is not a sha256 digest`);
  });
  if (typeof o.os !== "string" || typeof o.architecture !== "string") fail(what, "os or architecture is missing");
  return o as unknown as ImageConfig;
}

/**
 * Which kind of document `bytes` is, from its `mediaType` field, or from its shape
 * when the field is absent (OCI allows omitting it).
 */
export function sniffMediaType(bytes: Uint8Array): string | undefined {
  let o: Record<string, unknown>;
  try {
    o = parseJson(bytes, "document");
  } catch {
    // Not a JSON object: no media type can be sniffed.
    return undefined;
  }
  if (typeof o.mediaType === "string") return o.mediaType;
  if (Array.isArray(o.manifests)) return "application/vnd.oci.image.index.v1+json";
  if (Array.isArray(o.layers)) return "application/vnd.oci.image.manifest.v1+json";
  return undefined;
}

/** Canonical bytes of a JSON document as this toolkit writes them (compact, key order as given). */
export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
