/**
 * A blob GET that survives broken connections: when the body ends early (reset, truncated
 * below Content-Length), it asks again with `Range: bytes=N-` and continues where it stopped
 * (or restarts and skips what was already delivered when the server ignores the Range).
 * The consumer sees one continuous stream with no duplicate bytes.
 */
import { RegistryError } from "../internal/errors.ts";
import { connectionError } from "./errors.ts";
import { backoffMs, isTemporary, sleep } from "./retry.ts";
import type { RegistryTransport } from "./transport.ts";

export interface BlobReadOptions {
  transport: RegistryTransport;
  /** `/v2/NAME/blobs/DIGEST` */
  path: string;
  scopes: readonly string[];
  action: string;
  notFound: string;
  signal?: AbortSignal;
}

/** The Content-Range start of a 206 answer (`bytes 100-199/200` → 100), or undefined. */
function rangeStart(header: string | undefined): number | undefined {
  const m = header ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

/** Streams a blob, resuming after temporary failures (bounded by the transport's retries). */
export async function* readBlob(options: BlobReadOptions): AsyncGenerator<Uint8Array> {
  const { transport } = options;
  const policy = transport.policy(options.signal);
  let delivered = 0;
  for (let failures = 0; ; ) {
    const res = await transport.request({
      method: "GET", url: options.path, scopes: options.scopes, action: options.action, notFound: options.notFound, signal: options.signal,
      expect: [200, 206], headers: delivered > 0 ? { range: `bytes=${delivered}-` } : {},
    });
    let skip = 0;
    if (delivered > 0) {
      const start = res.status === 206 ? rangeStart(res.headers["content-range"] as string | undefined) : 0;
      if (start === undefined || start > delivered) {
        res.body.destroy();
        throw new RegistryError(`Cannot ${options.action}: resumed download answered an unusable Content-Range ${JSON.stringify(res.headers["content-range"])}`, { status: res.status });
      }
      skip = delivered - start;
    }
    const lengthHeader = res.headers["content-length"];
    const expected = lengthHeader !== undefined ? Number(lengthHeader) : undefined;
    let received = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        received += chunk.length;
        let piece: Uint8Array = chunk;
        if (skip > 0) {
          if (piece.length <= skip) {
            skip -= piece.length;
            continue;
          }
          piece = piece.subarray(skip);
          skip = 0;
        }
        delivered += piece.length;
        yield piece;
      }
      if (expected !== undefined && received < expected) {
        throw Object.assign(new Error(`body truncated at ${received} of ${expected} bytes`), { code: "ECONNRESET" });
      }
      return;
    } catch (err) {
      const wrapped = err instanceof RegistryError ? err : connectionError(err, {
        action: options.action, registry: transport.registry, https: transport.baseUrl.protocol === "https:", connectedBefore: true,
      });
      if (!isTemporary(wrapped) || failures >= policy.retries || policy.signal?.aborted) throw wrapped;
      await sleep(backoffMs(policy, failures, wrapped), policy.signal);
      failures++;
    } finally {
      res.body.destroy();
    }
  }
}
