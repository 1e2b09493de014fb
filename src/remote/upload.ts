/**
 * Blob uploads (distribution spec "Pushing blobs"): monolithic (POST, then one streamed PUT
 * `?digest=`) or chunked (POST, PATCHes with `Content-Range`, then PUT `?digest=`). A failed
 * PATCH resumes from the offset the server reports (`GET <upload>` → `Range: 0-N`); any other
 * failure restarts the upload with a fresh session and a re-opened body (after checking that
 * the blob did not land anyway).
 */
import { RegistryError } from "../internal/errors.ts";
import type { Descriptor } from "../oci/types.ts";
import { verifyStream, withProgress } from "../oci/verify.ts";
import { backoffMs, isTemporary, sleep } from "./retry.ts";
import type { RepositoryReader } from "./source.ts";

export interface UploadOptions {
  /** `auto`: monolithic up to `monolithicMaxBytes`, chunked above. */
  mode: "auto" | "monolithic" | "chunked";
  monolithicMaxBytes: number;
  chunkSize: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

/** Appends `digest=` to an upload URL, keeping its query (`?_state=…`) untouched. */
export function withDigestParam(location: URL, digest: string): URL {
  const url = new URL(location.href);
  url.search = `${url.search ? `${url.search}&` : "?"}digest=${encodeURIComponent(digest)}`;
  return url;
}

function locationOf(headers: Record<string, unknown>, base: URL, action: string, status: number): URL {
  const loc = headers.location;
  if (typeof loc !== "string" || loc === "") throw new RegistryError(`Cannot ${action}: the registry sent no upload Location`, { status });
  return new URL(loc, base);
}

/** Parses an upload `Range: 0-N` header into the committed size (N + 1). */
function committed(range: unknown): number {
  const m = typeof range === "string" ? /^(?:bytes=)?0-(-?\d+)$/.exec(range.trim()) : null;
  return m ? Number(m[1]) + 1 : 0;
}

/** One blob upload into the repository behind `repo`. */
export class BlobUpload {
  readonly #repo: RepositoryReader;
  readonly #desc: Descriptor;
  readonly #open: () => AsyncIterable<Uint8Array>;
  readonly #options: UploadOptions;
  readonly #action: string;

  constructor(repo: RepositoryReader, desc: Descriptor, open: () => AsyncIterable<Uint8Array>, options: UploadOptions) {
    this.#repo = repo;
    this.#desc = desc;
    this.#open = open;
    this.#options = options;
    this.#action = `push blob ${desc.digest} to ${repo.ref.registry}/${repo.ref.repository}`;
  }

  #verified(): AsyncIterable<Uint8Array> {
    return verifyStream(this.#open(), this.#desc, `blob ${this.#desc.digest} being pushed`);
  }

  /** Starts an upload session. */
  async #start(): Promise<URL> {
    const res = await this.#repo.transport.request({
      method: "POST", url: `/v2/${this.#repo.ref.repository}/blobs/uploads/`, headers: { "content-length": "0" },
      scopes: this.#repo.scopes, expect: [202], action: this.#action, signal: this.#options.signal,
    });
    res.body.resume();
    return locationOf(res.headers, res.url, this.#action, res.status);
  }

  /** Runs the upload; `session` is an upload already started (e.g. by a mount that fell back). */
  async run(session?: URL): Promise<void> {
    const policy = this.#repo.transport.policy(this.#options.signal);
    const chunked = this.#options.mode === "chunked" || (this.#options.mode === "auto" && this.#desc.size > this.#options.monolithicMaxBytes);
    let location = session;
    for (let failures = 0; ; failures++) {
      try {
        location ??= await this.#start();
        await (chunked ? this.#chunked(location) : this.#monolithic(location));
        return;
      } catch (err) {
        location = undefined;
        if (!isTemporary(err) || failures >= policy.retries || policy.signal?.aborted) throw err;
        await sleep(backoffMs(policy, failures, err), policy.signal);
        // The last attempt may have landed before its answer was lost.
        if (await this.#repo.hasBlob(this.#desc, { signal: this.#options.signal })) return;
      }
    }
  }

  async #finish(location: URL, body?: () => AsyncIterable<Uint8Array>): Promise<void> {
    const res = await this.#repo.transport.request({
      method: "PUT", url: withDigestParam(location, this.#desc.digest), retry: false, signal: this.#options.signal,
      headers: { "content-type": "application/octet-stream", "content-length": String(body ? this.#desc.size : 0) },
      body, scopes: this.#repo.scopes, expect: [201, 204], action: this.#action,
    });
    res.body.resume();
    const served = res.headers["docker-content-digest"];
    if (typeof served === "string" && served !== this.#desc.digest) {
      throw new RegistryError(`Cannot ${this.#action}: the registry stored it as ${served}`, { status: res.status });
    }
  }

  async #monolithic(location: URL): Promise<void> {
    const open = () => withProgress(this.#verified(), this.#options.onProgress);
    await this.#finish(location, open);
  }

  async #chunked(start: URL): Promise<void> {
    const size = this.#options.chunkSize;
    let location = start;
    let offset = 0;
    let buffer = Buffer.allocUnsafe(Math.min(size, Math.max(this.#desc.size, 1)));
    let filled = 0;
    let chunkStart = 0;
    const flush = async () => {
      const result = await this.#sendChunk(location, buffer.subarray(0, filled), chunkStart, offset);
      location = result.location;
      offset = result.offset;
      chunkStart += filled;
      filled = 0;
      this.#options.onProgress?.(offset);
    };
    for await (const piece of this.#verified()) {
      let p = piece;
      while (p.length > 0) {
        const n = Math.min(p.length, buffer.length - filled);
        buffer.set(p.subarray(0, n), filled);
        filled += n;
        p = p.subarray(n);
        if (filled === buffer.length) await flush();
      }
    }
    if (filled > 0) await flush();
    buffer = Buffer.alloc(0);
    await this.#finish(location);
  }

  /** PATCHes one chunk that starts at `chunkStart`; `offset` is what the server holds. */
  async #sendChunk(location: URL, chunk: Uint8Array, chunkStart: number, offset: number): Promise<{ location: URL; offset: number }> {
    const transport = this.#repo.transport;
    const policy = transport.policy(this.#options.signal);
    const chunkEnd = chunkStart + chunk.length;
    for (let failures = 0; ; failures++) {
      if (offset < chunkStart || offset > chunkEnd) {
        throw new RegistryError(`Cannot ${this.#action}: the upload holds ${offset} bytes, expected ${chunkStart}`, { status: 416, temporary: true });
      }
      if (offset === chunkEnd) return { location, offset };
      const part = chunk.subarray(offset - chunkStart);
      try {
        const res = await transport.request({
          method: "PATCH", url: location, retry: false, signal: this.#options.signal, scopes: this.#repo.scopes, expect: [202], action: this.#action,
          headers: { "content-type": "application/octet-stream", "content-length": String(part.length), "content-range": `${offset}-${chunkEnd - 1}` },
          body: () => part,
        });
        res.body.resume();
        return { location: locationOf(res.headers, res.url, this.#action, res.status), offset: res.headers.range ? committed(res.headers.range) : chunkEnd };
      } catch (err) {
        if (!isTemporary(err) || failures >= policy.retries || policy.signal?.aborted) throw err;
        await sleep(backoffMs(policy, failures, err), policy.signal);
        let status;
        try {
          status = await transport.request({
            method: "GET", url: location, scopes: this.#repo.scopes, expect: [204], action: this.#action, signal: this.#options.signal,
          });
        } catch (statusErr) {
          // A PATCH that landed but lost its answer leaves our session URL stale (its _state
          // names the old offset): start over with a new session.
          if (statusErr instanceof RegistryError && [400, 404, 416].includes(statusErr.status)) {
            throw new RegistryError(`Cannot ${this.#action}: the upload session was lost (${statusErr.message})`, { status: statusErr.status, temporary: true, cause: statusErr });
          }
          throw statusErr;
        }
        status.body.resume();
        offset = committed(status.headers.range);
        location = status.headers.location ? new URL(status.headers.location, status.url) : location;
      }
    }
  }
}
