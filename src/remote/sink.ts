/**
 * A registry as an {@link ImageSink}: blobs are HEAD-checked, mounted across repositories when
 * possible, else uploaded (monolithic or chunked, see `upload.ts`); manifests are PUT by tag or
 * digest with their media type as Content-Type.
 *
 * @example
 * const sink = registrySink(parseReference("127.0.0.1:5000/app:v1"), { plainHttp: true });
 * await sink.pushBlob(layerDesc, () => fs.createReadStream(file));
 * await sink.pushManifest(manifestDesc, manifestBytes, { tag: "v1" });
 */
import { RegistryError } from "../internal/errors.ts";
import type { FetchOptions, ImageSink, PushBlobOptions } from "../oci/store.ts";
import type { Descriptor } from "../oci/types.ts";
import { verifyBytes } from "../oci/verify.ts";
import { formatReference, referenceTarget, type Reference } from "../reference/reference.ts";
import type { RegistryOptions } from "./options.ts";
import { RepositoryReader } from "./source.ts";
import { RegistryTransport, repositoryScope } from "./transport.ts";
import { BlobUpload } from "./upload.ts";

export interface RegistrySinkOptions extends RegistryOptions {
  /** `auto`: monolithic up to `monolithicMaxBytes`, chunked above. @default "auto" */
  uploadMode?: "auto" | "monolithic" | "chunked";
  /** @default 67108864 (64 MiB) */
  monolithicMaxBytes?: number;
  /** PATCH size of chunked uploads (held in memory, one at a time). @default 16777216 (16 MiB) */
  chunkSize?: number;
}

/**
 * An {@link ImageSink} over a registry repository (scopes `repository:NAME:pull,push`).
 * @param ref where to push; its tag is what `existing()` looks at
 */
export function registrySink(ref: Reference, options: RegistrySinkOptions = {}): ImageSink {
  const transport = new RegistryTransport(ref.registry, options);
  const push = repositoryScope(ref.repository, "pull,push");
  const repo = new RepositoryReader(ref, transport, [push]);
  const name = `${ref.registry}/${ref.repository}`;

  async function tryMount(desc: Descriptor, from: string, fetch: FetchOptions): Promise<URL | "done" | undefined> {
    const url = `/v2/${ref.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`;
    const res = await transport.request({
      method: "POST", url, headers: { "content-length": "0" }, scopes: [push, repositoryScope(from, "pull")], expect: [201, 202],
      action: `mount blob ${desc.digest} from ${from} into ${name}`, signal: fetch.signal,
    });
    res.body.resume();
    if (res.status === 201) return "done";
    const loc = res.headers.location;
    return loc ? new URL(loc, res.url) : undefined;
  }

  return {
    name: formatReference(ref),
    hasBlob: (desc, fetch) => repo.hasBlob(desc, fetch),
    async pushBlob(desc: Descriptor, open: () => AsyncIterable<Uint8Array>, fetch: PushBlobOptions = {}) {
      if (await repo.hasBlob(desc, fetch)) {
        fetch.onProgress?.(desc.size);
        return;
      }
      let session: URL | undefined;
      if (fetch.mountFrom && fetch.mountFrom !== ref.repository) {
        const mounted = await tryMount(desc, fetch.mountFrom, fetch);
        if (mounted === "done") {
          fetch.onProgress?.(desc.size);
          return;
        }
        session = mounted;
      }
      await new BlobUpload(repo, desc, open, {
        mode: options.uploadMode ?? "auto",
        monolithicMaxBytes: options.monolithicMaxBytes ?? 64 * 1024 * 1024,
        chunkSize: options.chunkSize ?? 16 * 1024 * 1024,
        signal: fetch.signal,
        onProgress: fetch.onProgress,
      }).run(session);
    },
    async pushManifest(desc, bytes, fetch = {}) {
      verifyBytes(bytes, desc, `manifest ${desc.digest}`);
      const target = fetch.tag ?? desc.digest;
      const action = `push manifest ${desc.digest} to ${name}${fetch.tag ? `:${fetch.tag}` : ""}`;
      const res = await transport.request({
        method: "PUT", url: `/v2/${ref.repository}/manifests/${target}`, headers: { "content-type": desc.mediaType, "content-length": String(bytes.length) },
        body: () => bytes, scopes: [push], expect: [200, 201, 204], action, signal: fetch.signal,
      });
      res.body.resume();
      const served = res.headers["docker-content-digest"];
      if (typeof served === "string" && served !== desc.digest) {
        throw new RegistryError(`Cannot ${action}: the registry stored it as ${served}`, { status: res.status });
      }
    },
    existing: (fetch) => repo.manifest(referenceTarget(ref), { ...fetch, optional: true }),
    fetchBytes: (desc, fetch) => repo.document(desc, fetch),
    async close() {
      transport.close();
    },
  };
}
