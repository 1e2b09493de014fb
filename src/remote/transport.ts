/**
 * The registry transport: base URL, ping, authentication (Basic, anonymous and credentialed
 * Bearer tokens cached per scope, one re-auth on 401), bounded retries, redirects and errors.
 * One transport serves one registry; sources and sinks share nothing else.
 */
import type http from "node:http";
import { NotFoundError, RegistryError } from "../internal/errors.ts";
import { registryApiHost } from "../reference/reference.ts";
import { parseChallenges, type Challenge } from "./challenge.ts";
import { connectionError, statusError } from "./errors.ts";
import { BodySourceError, HttpAgents, readCapped, send, type Body } from "./http.ts";
import type { Credentials, RegistryOptions } from "./options.ts";
import { withRetries, type RetryPolicy } from "./retry.ts";

const ERROR_BODY_LIMIT = 64 * 1024;
const TOKEN_BODY_LIMIT = 1024 * 1024;
const MAX_REDIRECTS = 5;

export interface TransportRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** A path such as `/v2/x/manifests/t` or an absolute URL (e.g. an upload `Location`). */
  url: string | URL;
  headers?: Record<string, string>;
  /** Called for every attempt, so a retried request re-opens its body. */
  body?: () => Body;
  /** Token scopes, e.g. `repository:a/b:pull,push`. */
  scopes: readonly string[];
  /** Statuses that count as success; others throw. */
  expect: readonly number[];
  /** For messages: "push blob sha256:… to host/repo". */
  action: string;
  /** With it, a 404 throws NotFoundError naming this subject. */
  notFound?: string;
  /** Retry temporary failures (default true). */
  retry?: boolean;
  /** Follow 3xx redirects (GET/HEAD; default true). Authorization is not sent to other hosts. */
  redirects?: boolean;
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  url: URL;
  /** Must be consumed or destroyed. */
  body: http.IncomingMessage;
}

type AuthState = { kind: "none" } | { kind: "basic" } | { kind: "bearer"; challenge: Challenge };

/** A registry client transport. Call {@link RegistryTransport.close} when done. */
export class RegistryTransport {
  readonly registry: string;
  readonly baseUrl: URL;
  readonly options: RegistryOptions;
  readonly credentials: Credentials | undefined;
  #agents: HttpAgents;
  #auth: Promise<AuthState> | undefined;
  #tokens = new Map<string, Promise<string>>();
  #connected = false;

  /** @param registry registry name as in references (`docker.io`, `127.0.0.1:5000`) */
  constructor(registry: string, options: RegistryOptions = {}) {
    this.registry = registry;
    this.options = options;
    this.baseUrl = new URL(`${options.plainHttp ? "http" : "https"}://${registryApiHost(registry)}`);
    this.credentials = options.credentials?.(registry);
    this.#agents = new HttpAgents({ insecure: options.insecure, ca: options.ca });
  }

  /** The retry policy for one operation. */
  policy(signal?: AbortSignal): RetryPolicy {
    return { retries: this.options.retries ?? 4, delayMs: this.options.retryDelayMs ?? 200, signal: signal ?? this.options.signal };
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agents.destroy();
  }

  async #send(url: URL, method: string, headers: Record<string, string>, body: Body | undefined, action: string, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const all = { "user-agent": this.options.userAgent ?? "nydus-ts/0.1", ...headers };
    let res: http.IncomingMessage;
    try {
      res = await send(url, { method, headers: all, body, agents: this.#agents, timeoutMs: this.options.timeoutMs ?? 60_000, signal: signal ?? this.options.signal });
    } catch (err) {
      this.options.onRequest?.({ method, url: url.href, status: 0 });
      if (err instanceof BodySourceError) throw err.cause;
      if ((err as Error)?.name === "AbortError") throw err;
      throw connectionError(err, { action, registry: this.registry, https: url.protocol === "https:", connectedBefore: this.#connected });
    }
    this.#connected = true;
    this.options.onRequest?.({ method, url: url.href, status: res.statusCode ?? 0 });
    return res;
  }

  async #errorFor(res: http.IncomingMessage, action: string, url: URL): Promise<RegistryError> {
    let body: Uint8Array;
    try {
      body = await readCapped(res, ERROR_BODY_LIMIT);
    } catch (err) {
      void err; // a broken error body: report the status without its details
      body = new Uint8Array();
    }
    return statusError({
      action, registry: this.registry, status: res.statusCode ?? 0, body, retryAfter: res.headers["retry-after"],
      hadCredentials: this.credentials !== undefined, plainHttp: url.protocol === "http:",
    });
  }

  /** Pings `/v2/` once (memoized) to learn how the registry authenticates. */
  #authState(signal?: AbortSignal): Promise<AuthState> {
    if (!this.#auth) {
      this.#auth = withRetries(this.policy(signal), async () => {
        const url = new URL("/v2/", this.baseUrl);
        const res = await this.#send(url, "GET", {}, undefined, `reach registry ${this.registry}`, signal);
        if (res.statusCode === 200) {
          res.resume();
          return { kind: "none" } as const;
        }
        if (res.statusCode === 401) {
          res.resume();
          return stateFrom(res.headers["www-authenticate"]);
        }
        throw await this.#errorFor(res, `reach registry ${this.registry}`, url);
      });
      this.#auth.catch(() => (this.#auth = undefined));
    }
    return this.#auth;
  }

  async #authorization(scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const state = await this.#authState(signal);
    const creds = this.credentials;
    if (creds && "registryToken" in creds) return `Bearer ${creds.registryToken}`;
    if (state.kind === "basic") return creds && "username" in creds ? basicHeader(creds.username, creds.password) : undefined;
    if (state.kind === "bearer") {
      const key = [...scopes].sort().join(" ");
      let token = this.#tokens.get(key);
      if (!token) {
        token = this.#fetchToken(state.challenge, scopes, signal);
        this.#tokens.set(key, token);
        token.catch(() => this.#tokens.delete(key));
      }
      return `Bearer ${await token}`;
    }
    return undefined;
  }

  async #fetchToken(challenge: Challenge, scopes: readonly string[], signal?: AbortSignal): Promise<string> {
    const realm = challenge.params.realm;
    const action = `get a token for ${this.registry}`;
    if (!realm) throw new RegistryError(`Cannot ${action}: the Bearer challenge has no realm`, { status: 401 });
    const creds = this.credentials;
    return withRetries(this.policy(signal), async () => {
      const url = new URL(realm);
      let res: http.IncomingMessage;
      if (creds && "identityToken" in creds) {
        const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: creds.identityToken, client_id: "nydus-ts" });
        if (challenge.params.service) form.set("service", challenge.params.service);
        if (scopes.length > 0) form.set("scope", scopes.join(" "));
        const body = Buffer.from(form.toString());
        res = await this.#send(url, "POST", { "content-type": "application/x-www-form-urlencoded", "content-length": String(body.length) }, body, action, signal);
      } else {
        if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
        for (const s of scopes) url.searchParams.append("scope", s);
        const headers: Record<string, string> = creds && "username" in creds ? { authorization: basicHeader(creds.username, creds.password) } : {};
        res = await this.#send(url, "GET", headers, undefined, action, signal);
      }
      if (res.statusCode !== 200) throw await this.#errorFor(res, action, url);
      const text = Buffer.from(await readCapped(res, TOKEN_BODY_LIMIT)).toString("utf8");
      let token: unknown;
      try {
        const o = JSON.parse(text) as { token?: unknown; access_token?: unknown };
        token = o.token ?? o.access_token;
      } catch (err) {
        throw new RegistryError(`Cannot ${action}: the token server answered no JSON`, { status: 200, cause: err });
      }
      if (typeof token !== "string" || token === "") throw new RegistryError(`Cannot ${action}: the token server answered no token`, { status: 200 });
      return token;
    });
  }

  #reauth(header: string | undefined, scopes: readonly string[]): readonly string[] {
    this.#tokens.delete([...scopes].sort().join(" "));
    const fresh = stateFrom(header);
    if (fresh.kind !== "none") this.#auth = Promise.resolve(fresh);
    const wanted = fresh.kind === "bearer" ? fresh.challenge.params.scope : undefined;
    return wanted && !scopes.includes(wanted) ? [...scopes, wanted] : scopes;
  }

  /**
   * Sends a request with authentication, retries (unless `retry: false`) and redirects.
   * @throws RegistryError (status, codes, `temporary`), NotFoundError on 404 when `notFound` is set
   */
  request(req: TransportRequest): Promise<TransportResponse> {
    const once = async (): Promise<TransportResponse> => {
      let url = new URL(req.url, this.baseUrl);
      let scopes = req.scopes;
      let reauthed = false;
      let redirects = 0;
      for (;;) {
        const headers: Record<string, string> = { ...req.headers };
        const sameHost = url.host === this.baseUrl.host;
        if (sameHost) {
          const authorization = await this.#authorization(scopes, req.signal);
          if (authorization) headers.authorization = authorization;
        }
        const res = await this.#send(url, req.method, headers, req.body?.(), req.action, req.signal);
        const status = res.statusCode ?? 0;
        if (status === 401 && sameHost && !reauthed) {
          reauthed = true;
          res.resume();
          scopes = this.#reauth(res.headers["www-authenticate"], scopes);
          continue;
        }
        const location = res.headers.location;
        if ((req.redirects ?? true) && (req.method === "GET" || req.method === "HEAD") && [301, 302, 303, 307, 308].includes(status) && location) {
          res.resume();
          if (++redirects > MAX_REDIRECTS) throw new RegistryError(`Cannot ${req.action}: more than ${MAX_REDIRECTS} redirects`, { status });
          url = new URL(location, url);
          continue;
        }
        if (req.expect.includes(status)) return { status, headers: res.headers, url, body: res };
        const err = await this.#errorFor(res, req.action, url);
        if (status === 404 && req.notFound) {
          throw new NotFoundError(req.notFound, `not found in ${this.registry}${err.errorCodes.length ? ` (${err.errorCodes.join(", ")})` : ""}`, { cause: err });
        }
        throw err;
      }
    };
    return req.retry === false ? once() : withRetries(this.policy(req.signal), once);
  }
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

function stateFrom(header: string | string[] | undefined): AuthState {
  const challenges = parseChallenges(Array.isArray(header) ? header.join(", ") : (header ?? ""));
  const bearer = challenges.find((c) => c.scheme === "bearer");
  if (bearer) return { kind: "bearer", challenge: bearer };
  if (challenges.some((c) => c.scheme === "basic")) return { kind: "basic" };
  return { kind: "none" };
}

/** `repository:NAME:pull` or `…:pull,push`. */
export function repositoryScope(repository: string, actions: "pull" | "pull,push"): string {
  return `repository:${repository}:${actions}`;
}
