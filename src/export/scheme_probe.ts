/**
 * `registry.insecure=true` means "plain HTTP, or HTTPS without verification": a TLS
 * handshake tells which one the registry speaks.
 */
import tls from "node:tls";
import { registryApiHost } from "../reference/reference.ts";

/** "https" when a TLS handshake with the registry succeeds (certificate not checked), else "http". */
export function probeScheme(registry: string, timeoutMs = 5000): Promise<"https" | "http"> {
  const host = registryApiHost(registry);
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  const hostname = (m?.[1] ?? host).replace(/^\[|\]$/g, "");
  const port = m?.[2] ? Number(m[2]) : 443;
  return new Promise((resolve) => {
    const socket = tls.connect({ host: hostname, port, rejectUnauthorized: false, servername: /^[\d.]+$|:/.test(hostname) ? undefined : hostname });
    const done = (scheme: "https" | "http") => {
      socket.destroy();
      resolve(scheme);
    };
    socket.setTimeout(timeoutMs, () => done("https"));
    socket.once("secureConnect", () => done("https"));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      // A plain-HTTP server answers the ClientHello with text: "wrong version number" / EPROTO.
      const plain = err.code === "EPROTO" || err.code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number|packet length too long/i.test(err.message);
      // Other failures (refused, unreachable) are reported by the real request later, over HTTPS.
      done(plain ? "http" : "https");
    });
  });
}
