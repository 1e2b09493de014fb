/**
 * Options shared by every registry operation (transport, source, sink).
 */

/** Credentials for one registry: a user and password, a Docker identity (refresh) token, or a ready bearer token. */
export type Credentials =
  | { username: string; password: string }
  | { identityToken: string }
  | { registryToken: string };

/** What {@link RegistryOptions.onRequest} reports after every HTTP exchange. */
export interface RequestInfo {
  method: string;
  url: string;
  /** HTTP status, or 0 when no response arrived (connection error). */
  status: number;
}

export interface RegistryOptions {
  /** Talk plain HTTP instead of HTTPS. @default false */
  plainHttp?: boolean;
  /** Skip TLS certificate verification. @default false */
  insecure?: boolean;
  /** Extra trusted CA certificates (PEM), added to Node's default roots. */
  ca?: (string | Uint8Array)[];
  /** Credentials for a registry name as written in references (e.g. `docker.io`, `127.0.0.1:5000`). */
  credentials?: (registry: string) => Credentials | undefined;
  /**
   * Retries after the first attempt of each request, for 429, 500/502/503/504, 408, connection
   * resets/timeouts and truncated blob bodies. So up to `retries + 1` attempts. @default 4
   */
  retries?: number;
  /** First back-off delay; doubles per retry (with ±50 % jitter, capped at 10 s). `Retry-After` wins when given. @default 200 */
  retryDelayMs?: number;
  /** Socket idle timeout before a request counts as failed (and is retried). @default 60000 */
  timeoutMs?: number;
  /** @default "nydus-ts/0.1" */
  userAgent?: string;
  signal?: AbortSignal;
  /** Called after every HTTP exchange (tests count requests with it). */
  onRequest?: (info: RequestInfo) => void;
}
