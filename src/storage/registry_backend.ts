/**
 * Blob ranges from a registry (`GET /v2/REPO/blobs/sha256:ID` with `Range`), through mirrors
 * first. Mirrors are tried in order; one that fails is skipped for a cool-down period, then
 * tried again; when every mirror is failing or cooling down, the origin registry answers.
 * Authentication, TLS and retries are the {@link RegistryTransport}'s.
 */
import type http from "node:http";
import { RegistryError } from "../internal/errors.ts";
import type { Reference } from "../reference/reference.ts";
import type { RegistryOptions } from "../remote/options.ts";
import { withRetries } from "../remote/retry.ts";
import { RegistryTransport, repositoryScope } from "../remote/transport.ts";
import { checkRange, type BlobBackend } from "./backend.ts";
import { checkBlobId } from "./verify.ts";

/** A registry mirror (pull-through cache) of the origin. */
export interface Mirror {
  /** `host:port`, e.g. `127.0.0.1:5001`. */
  host: string;
  /** Plain HTTP to this mirror. @default the origin's `plainHttp` */
  plainHttp?: boolean;
  /** Extra headers sent with every request to this mirror. */
  headers?: Record<string, string>;
}

export interface RegistryBackendOptions extends RegistryOptions {
  mirrors?: Mirror[];
  /** How long a failed mirror is skipped. @default 30000 */
  mirrorCooldownMs?: number;
  /** Retries of a request to a mirror (the origin uses `retries`). @default 0 */
  mirrorRetries?: number;
}

interface Endpoint {
  name: string;
  transport: RegistryTransport;
  headers: Record<string, string>;
  mirror: boolean;
  /** Date.now() until which this mirror is skipped. */
  downUntil: number;
}

/** Most bytes past a slice that are read (and dropped) to keep the connection reusable. */
const DRAIN_LIMIT = 64 * 1024;

/** Start offset of a `Content-Range: bytes a-b/n` header. */
function rangeStart(header: string | string[] | undefined): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  const m = v ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(v.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * Reads `length` bytes at `skip` of a response body into a new array. A body that is (about)
 * the range asked for is read to its end, so its keep-alive connection goes back to the pool
 * for the next range; a longer one (a registry that ignored `Range`) is cut off once the slice
 * is in.
 * @throws RegistryError (temporary) when the body ends early or breaks
 */
async function readSlice(body: http.IncomingMessage, skip: number, length: number, action: string): Promise<Uint8Array> {
  const declared = Number(body.headers["content-length"]);
  const drain = Number.isSafeInteger(declared) && declared - (skip + length) <= DRAIN_LIMIT;
  const out = new Uint8Array(length);
  let pos = 0; // bytes of the body seen
  let done = 0;
  try {
    for await (const piece of body as AsyncIterable<Buffer>) {
      const start = Math.max(0, skip - pos);
      pos += piece.length;
      if (start >= piece.length) continue;
      const take = Math.min(piece.length - start, length - done);
      out.set(piece.subarray(start, start + take), done);
      done += take;
      if (done === length && !drain) break;
    }
  } catch (cause) {
    throw new RegistryError(`Cannot ${action}: the body broke after ${done} of ${length} bytes`, { status: 0, temporary: true, cause });
  } finally {
    if (!body.readableEnded) body.destroy();
  }
  if (done !== length) throw new RegistryError(`Cannot ${action}: the body ended after ${done} of ${length} bytes`, { status: 0, temporary: true });
  return out;
}

/**
 * A backend reading blobs of `ref`'s repository from its registry, mirrors first.
 * @example
 * const backend = registryBackend(parseReference("127.0.0.1:5000/app:v1"), { plainHttp: true, mirrors: [{ host: "127.0.0.1:5001" }] });
 */
export function registryBackend(ref: Reference, options: RegistryBackendOptions = {}): BlobBackend & { endpoints(): { name: string; healthy: boolean }[] } {
  const cooldown = options.mirrorCooldownMs ?? 30_000;
  const endpoints: Endpoint[] = [];
  for (const m of options.mirrors ?? []) {
    const transport = new RegistryTransport(m.host, { ...options, plainHttp: m.plainHttp ?? options.plainHttp, retries: options.mirrorRetries ?? 0 });
    endpoints.push({ name: `mirror ${m.host}`, transport, headers: { ...m.headers }, mirror: true, downUntil: 0 });
  }
  const origin: Endpoint = { name: `origin ${ref.registry}`, transport: new RegistryTransport(ref.registry, options), headers: {}, mirror: false, downUntil: 0 };
  endpoints.push(origin);
  const scopes = [repositoryScope(ref.repository, "pull")];

  async function fetchFrom(ep: Endpoint, blobId: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    const action = `read ${length} bytes at ${offset} of blob sha256:${blobId} from ${ep.name}/${ref.repository}`;
    const attempt = async () => {
      const res = await ep.transport.request({
        method: "GET", url: `/v2/${ref.repository}/blobs/sha256:${blobId}`, scopes, action, signal, retry: false,
        headers: { ...ep.headers, range: `bytes=${offset}-${offset + length - 1}` }, expect: [206, 200], notFound: `blob sha256:${blobId} in ${ep.name}/${ref.repository}`,
      });
      let skip = offset;
      if (res.status === 206) {
        const start = rangeStart(res.headers["content-range"]);
        if (start === undefined || start > offset) {
          res.body.destroy();
          throw new RegistryError(`Cannot ${action}: unusable Content-Range "${String(res.headers["content-range"])}"`, { status: 206 });
        }
        skip = offset - start;
      }
      return readSlice(res.body, skip, length, action);
    };
    return withRetries(ep.transport.policy(signal), attempt);
  }

  return {
    name: `registry ${ref.registry}/${ref.repository}`,
    async readRange(blobId, offset, length, signal) {
      checkBlobId(blobId);
      checkRange(offset, length);
      if (length === 0) return new Uint8Array();
      let lastError: unknown;
      for (const ep of endpoints) {
        if (ep.mirror && ep.downUntil > Date.now()) continue;
        try {
          const bytes = await fetchFrom(ep, blobId, offset, length, signal);
          this.onFetch?.(blobId, ep.name, bytes.length, true);
          ep.downUntil = 0;
          return bytes;
        } catch (err) {
          this.onFetch?.(blobId, ep.name, 0, false);
          if (signal?.aborted || (err as Error)?.name === "AbortError") throw err;
          if (!ep.mirror) throw err;
          ep.downUntil = Date.now() + cooldown;
          lastError = err;
        }
      }
      throw lastError; // unreachable: the origin always answers or throws
    },
    endpoints() {
      const now = Date.now();
      return endpoints.map((e) => ({ name: e.name, healthy: e.downUntil <= now }));
    },
    async close() {
      for (const e of endpoints) e.transport.close();
    },
  };
}
