/**
 * A registry as an {@link ImageSource}: `resolve()` GETs the manifest by tag or digest,
 * `fetchBytes()` reads small documents (verified, capped), `fetchBlob()` streams blobs through
 * `verifyStream`, resuming broken downloads.
 *
 * @example
 * const src = registrySource(parseReference("127.0.0.1:5000/app:v1"), { plainHttp: true });
 * const desc = await src.resolve();
 * const manifest = await src.fetchBytes(desc);
 * await src.close();
 */
import type http from "node:http";
import { DigestMismatchError } from "../internal/errors.ts";
import { MANIFEST_ACCEPT, isIndexMediaType, isManifestMediaType } from "../oci/media_type.ts";
import type { FetchOptions, ImageSource } from "../oci/store.ts";
import { sniffMediaType, type Descriptor } from "../oci/types.ts";
import { describeBytes, ownedCopies, verifyBytes, verifyStream, withProgress } from "../oci/verify.ts";
import { formatReference, referenceTarget, type Reference } from "../reference/reference.ts";
import { readBlob } from "./blob_reader.ts";
import type { RegistryOptions } from "./options.ts";
import { RegistryTransport, repositoryScope } from "./transport.ts";

/** Largest manifest, index or config read into memory. */
export const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

/** Reads a whole (small) response body, refusing more than `limit` bytes. */
export async function readDocument(res: http.IncomingMessage, limit: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers["content-length"] ?? 0);
  if (declared > limit) {
    res.destroy();
    throw new RangeError(`Cannot read ${what}: ${declared} bytes is more than ${limit}`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) throw new RangeError(`Cannot read ${what}: more than ${limit} bytes`);
      parts.push(chunk);
    }
  } finally {
    res.destroy();
  }
  return Buffer.concat(parts, n);
}

function mediaTypeOf(contentType: string | undefined, bytes: Uint8Array): string {
  const ct = contentType?.split(";")[0]?.trim();
  if (ct && (isManifestMediaType(ct) || isIndexMediaType(ct) || ct.startsWith("application/vnd."))) return ct;
  return sniffMediaType(bytes) ?? ct ?? "application/octet-stream";
}

/** Reads manifests and blobs of one repository (shared by source and sink). */
export class RepositoryReader {
  readonly ref: Reference;
  readonly transport: RegistryTransport;
  readonly scopes: readonly string[];
  constructor(ref: Reference, transport: RegistryTransport, scopes: readonly string[]) {
    this.ref = ref;
    this.transport = transport;
    this.scopes = scopes;
  }

  #path(kind: "manifests" | "blobs", target: string): string {
    return `/v2/${this.ref.repository}/${kind}/${target}`;
  }

  /**
   * GETs a manifest by tag or digest. With `optional`, a 404 gives undefined.
   * When `target` is a digest, the bytes are verified against it.
   */
  async manifest(target: string, options: FetchOptions & { optional?: boolean } = {}): Promise<{ desc: Descriptor; bytes: Uint8Array } | undefined> {
    const name = `${this.ref.registry}/${this.ref.repository}${target.startsWith("sha256:") ? "@" : ":"}${target}`;
    const res = await this.transport.request({
      method: "GET", url: this.#path("manifests", target), headers: { accept: MANIFEST_ACCEPT }, scopes: this.scopes,
      expect: options.optional ? [200, 404] : [200], action: `get manifest ${name}`, notFound: `manifest "${name}"`, signal: options.signal,
    });
    if (res.status === 404) {
      res.body.resume();
      return undefined;
    }
    const bytes = await readDocument(res.body, MAX_DOCUMENT_BYTES, `manifest ${name}`);
    const desc = describeBytes(mediaTypeOf(res.headers["content-type"], bytes), bytes);
    if (target.startsWith("sha256:") && desc.digest !== target) throw new DigestMismatchError(`manifest ${name}`, target, desc.digest);
    const served = res.headers["docker-content-digest"];
    if (typeof served === "string" && served.startsWith("sha256:") && served !== desc.digest && !target.startsWith("sha256:")) {
      throw new DigestMismatchError(`manifest ${name} (Docker-Content-Digest)`, served, desc.digest);
    }
    return { desc, bytes };
  }

  /** A manifest/index (by digest) or a config blob, verified against `desc`. */
  async document(desc: Descriptor, options: FetchOptions = {}): Promise<Uint8Array> {
    if (isManifestMediaType(desc.mediaType) || isIndexMediaType(desc.mediaType)) {
      const got = await this.manifest(desc.digest, options);
      return verifyBytes(got!.bytes, desc, `manifest ${desc.digest}`);
    }
    if (desc.size > MAX_DOCUMENT_BYTES) throw new RangeError(`Cannot read ${desc.digest}: ${desc.size} bytes is more than ${MAX_DOCUMENT_BYTES}`);
    const parts: Uint8Array[] = [];
    for await (const p of this.blob(desc, options)) parts.push(p);
    return Buffer.concat(parts);
  }

  /** A blob stream, verified while it streams. */
  blob(desc: Descriptor, options: FetchOptions = {}): AsyncIterable<Uint8Array> {
    const name = `${this.ref.registry}/${this.ref.repository}`;
    const raw = readBlob({
      transport: this.transport, path: this.#path("blobs", desc.digest), scopes: this.scopes, signal: options.signal,
      action: `get blob ${desc.digest} from ${name}`, notFound: `blob ${desc.digest} in ${name}`,
    });
    const verified = verifyStream(raw, desc, `blob ${desc.digest} from ${name}`);
    // Response pieces are views into socket buffers: copies for a caller that takes them.
    return withProgress(options.transferable ? ownedCopies(verified) : verified, options.onProgress);
  }

  /** Whether the repository holds the blob (HEAD). */
  async hasBlob(desc: Descriptor, options: FetchOptions = {}): Promise<boolean> {
    const res = await this.transport.request({
      method: "HEAD", url: this.#path("blobs", desc.digest), scopes: this.scopes, expect: [200, 404],
      action: `check blob ${desc.digest} in ${this.ref.registry}/${this.ref.repository}`, signal: options.signal,
    });
    res.body.resume();
    if (res.status !== 200) return false;
    const len = res.headers["content-length"];
    return len === undefined || Number(len) === desc.size;
  }
}

/**
 * An {@link ImageSource} over a registry repository. No I/O until a method is called;
 * `resolve()` is memoized.
 * @param ref the image; with a digest, the manifest is verified against it
 * @param options transport options (TLS, credentials, retries…)
 */
export function registrySource(ref: Reference, options: RegistryOptions = {}): ImageSource {
  const transport = new RegistryTransport(ref.registry, options);
  const reader = new RepositoryReader(ref, transport, [repositoryScope(ref.repository, "pull")]);
  let resolved: Promise<{ desc: Descriptor; bytes: Uint8Array }> | undefined;
  const resolveOnce = (fetch?: FetchOptions) => {
    if (!resolved) {
      resolved = reader.manifest(referenceTarget(ref), fetch).then((r) => r!);
      resolved.catch(() => (resolved = undefined));
    }
    return resolved;
  };
  return {
    name: formatReference(ref),
    async resolve(fetch) {
      return (await resolveOnce(fetch)).desc;
    },
    async fetchBytes(desc, fetch) {
      if (resolved) {
        const r = await resolved.catch(() => undefined);
        if (r && r.desc.digest === desc.digest) return verifyBytes(r.bytes, desc, `manifest ${desc.digest}`);
      }
      return reader.document(desc, fetch);
    },
    async fetchBlob(desc, fetch) {
      return reader.blob(desc, fetch);
    },
    async close() {
      transport.close();
    },
  };
}

