/**
 * A small bearer-token server for {@link startRegistry} `auth: "token"`: issues RS256 JWTs
 * with an `x5c` header, signed by a self-signed certificate that the registry lists in its
 * `rootcertbundle` (the docker token protocol, docs.docker.com/registry/spec/auth/token).
 *
 * - `GET /token?service=S&scope=repository:NAME:pull,push` with optional Basic credentials:
 *   right credentials get the requested actions, anonymous requests get `pull` only when
 *   `anonymousPull`, wrong credentials get 401.
 * - `POST /token` with `grant_type=refresh_token&refresh_token=T` (Docker's identity tokens).
 */
import crypto from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { makeSelfSignedCert } from "./registry.ts";

export interface TokenServerOptions {
  /** Directory for the signing certificate and key. */
  dir: string;
  username: string;
  password: string;
  /** Grant `pull` to anonymous requests (default false). */
  anonymousPull?: boolean;
  /** The refresh token accepted by `POST /token` (default "test-identity-token"). */
  identityToken?: string;
  /** Which field(s) carry the token in the JSON answer (default both). */
  field?: "token" | "access_token" | "both";
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** PEM of the signing certificate (the registry's `rootcertbundle`). */
  certFile: string;
  identityToken: string;
  /** Token requests served, by kind. */
  stats: { get: number; refresh: number; denied: number };
  stop(): Promise<void>;
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");

/** Starts the token server on a free loopback port. */
export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const { cert, key } = await makeSelfSignedCert(options.dir, "token-signer");
  const certPem = await fs.readFile(cert, "utf8");
  const der = certPem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const privateKey = crypto.createPrivateKey(await fs.readFile(key));
  const service = "nydus-ts-test-registry";
  const issuer = "nydus-ts-test-issuer";
  const identityToken = options.identityToken ?? "test-identity-token";
  const stats = { get: 0, refresh: 0, denied: 0 };

  function issue(subject: string, scopes: string[], mayPush: boolean, res: http.ServerResponse): void {
    const access = scopes.flatMap((s) => {
      const m = /^repository:([^:]+):(.+)$/.exec(s);
      if (!m) return [];
      const wanted = m[2]!.split(",");
      const actions = wanted.filter((a) => a === "pull" || (a === "push" && mayPush) || (a === "*" && mayPush));
      return [{ type: "repository", name: m[1]!, actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [der] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: crypto.randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const jwt = `${input}.${b64url(crypto.sign("sha256", Buffer.from(input), privateKey))}`;
    const field = options.field ?? "both";
    const body: Record<string, unknown> = { expires_in: 300, issued_at: new Date().toISOString() };
    if (field !== "access_token") body.token = jwt;
    if (field !== "token") body.access_token = jwt;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  }

  function deny(res: http.ServerResponse): void {
    stats.denied++;
    res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ details: "incorrect username or password" }));
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/token") return void res.writeHead(404).end();
    if (req.method === "POST") {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        stats.refresh++;
        const form = new URLSearchParams(Buffer.concat(parts).toString("utf8"));
        if (form.get("grant_type") !== "refresh_token" || form.get("refresh_token") !== identityToken) return deny(res);
        issue(options.username, (form.get("scope") ?? "").split(" ").filter(Boolean), true, res);
      });
      return;
    }
    stats.get++;
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Basic (.+)$/i.exec(auth);
      const [user, ...rest] = m ? Buffer.from(m[1]!, "base64").toString("utf8").split(":") : [];
      if (user !== options.username || rest.join(":") !== options.password) return deny(res);
      return issue(user, scopes, true, res);
    }
    issue("", options.anonymousPull ? scopes : [], false, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`, service, issuer, certFile: cert, identityToken, stats,
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
