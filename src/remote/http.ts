/**
 * One HTTP exchange over node:http/node:https (no retries, no auth): TLS options, streamed
 * request bodies and socket errors stay under our control.
 */
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tls from "node:tls";

/** A request body: bytes (re-sendable) or a stream (sent once; pass Content-Length). */
export type Body = Uint8Array | AsyncIterable<Uint8Array>;

/** Thrown (as the request error) when the body's own source failed: never retried as a network error. */
export class BodySourceError extends Error {
  constructor(cause: unknown) {
    super(`request body failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** Connection pools and TLS settings of one transport. */
export class HttpAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
  constructor(options: { insecure?: boolean; ca?: (string | Uint8Array)[] }) {
    this.http = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const ca = options.ca && options.ca.length > 0 ? [...tls.rootCertificates, ...options.ca.map((c) => (typeof c === "string" ? c : Buffer.from(c)))] : undefined;
    this.https = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: !options.insecure, ...(ca ? { ca } : {}) });
  }
  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

export interface SendOptions {
  method: string;
  headers: Record<string, string>;
  body?: Body;
  agents: HttpAgents;
  timeoutMs: number;
  signal?: AbortSignal;
}

async function* guardSource(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (err) {
    throw new BodySourceError(err);
  }
}

/**
 * Sends one request and resolves with the response once its headers arrived; the caller must
 * consume or destroy `response`.
 * @throws the socket / TLS error, or {@link BodySourceError}
 */
export function send(url: URL, options: SendOptions): Promise<http.IncomingMessage> {
  const secure = url.protocol === "https:";
  const mod = secure ? https : http;
  return new Promise((resolve, reject) => {
    let bodyError: unknown;
    const req = mod.request(url, {
      method: options.method,
      headers: options.headers,
      agent: secure ? options.agents.https : options.agents.http,
      signal: options.signal,
      timeout: options.timeoutMs,
    }, (res) => resolve(res));
    req.on("error", (err) => reject(bodyError ?? err));
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no data for ${options.timeoutMs} ms`), { code: "ETIMEDOUT" })));
    const body = options.body;
    if (body === undefined) req.end();
    else if (body instanceof Uint8Array) req.end(body);
    else {
      pipeline(Readable.from(guardSource(body), { objectMode: false }), req).catch((err: unknown) => {
        if (err instanceof BodySourceError) bodyError = err;
        req.destroy(err as Error);
      });
    }
  });
}

/** Reads at most `limit` bytes of a response body (error bodies, tokens), then drops the rest. */
export async function readCapped(res: http.IncomingMessage, limit: number): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (n + chunk.length > limit) {
        parts.push(chunk.subarray(0, limit - n));
        n = limit;
        break;
      }
      parts.push(chunk);
      n += chunk.length;
    }
  } finally {
    res.destroy();
  }
  return Buffer.concat(parts, n);
}
