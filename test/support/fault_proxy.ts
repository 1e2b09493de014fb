/**
 * A plain-HTTP loopback reverse proxy that injects faults on a seeded share of requests, to
 * test retries against a real registry:
 *
 * - `500`: answers 500 (with a distribution error body) without forwarding;
 * - `429`: answers 429 with `Retry-After: 0` without forwarding;
 * - `reset`: destroys the client socket before forwarding anything;
 * - `truncate`: forwards, sends the response headers with the full Content-Length, then
 *   destroys the socket halfway through the body; when there is no body (HEAD, 201 of a PUT),
 *   it destroys the socket instead of answering, so the request landed but its answer is lost.
 *
 * Bodies stream both ways (nothing is buffered). `Location` headers pointing at the target are
 * rewritten to the proxy.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Prng } from "./fuzz.ts";

export type Fault = "500" | "429" | "reset" | "truncate";

export interface FaultProxyOptions {
  seed: number;
  /** Share of (eligible) requests that get a fault, 0..1. */
  rate: number;
  /** Which faults to draw from (default all four). */
  faults?: Fault[];
  /** Only requests for which this returns true are eligible. */
  only?: (req: http.IncomingMessage) => boolean;
}

export interface FaultProxy {
  url: string;
  host: string;
  stats: { requests: number; injected: Record<string, number> };
  stop(): Promise<void>;
}

/** Starts the proxy in front of `targetUrl` (e.g. a test registry's `url`). */
export async function startFaultProxy(targetUrl: string, options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const prng = new Prng(options.seed);
  const faults = options.faults ?? ["500", "429", "reset", "truncate"];
  const stats = { requests: 0, injected: {} as Record<string, number> };
  const agent = new http.Agent({ keepAlive: true });
  let self = "";

  const server = http.createServer((req, res) => {
    stats.requests++;
    const roll = prng.float();
    const pick = faults[prng.int(faults.length)]!;
    const fault = roll < options.rate && (options.only?.(req) ?? true) ? pick : undefined;
    if (fault) stats.injected[fault] = (stats.injected[fault] ?? 0) + 1;
    if (fault === "reset") {
      req.socket.destroy();
      return;
    }
    if (fault === "500" || fault === "429") {
      req.resume();
      req.on("end", () => {
        const body = JSON.stringify({ errors: [{ code: fault === "500" ? "UNKNOWN" : "TOOMANYREQUESTS", message: `injected ${fault}` }] });
        res.writeHead(Number(fault), { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...(fault === "429" ? { "retry-after": "0" } : {}) });
        res.end(body);
      });
      return;
    }
    const headers = { ...req.headers, host: target.host };
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (up) => {
      const out: http.OutgoingHttpHeaders = { ...up.headers };
      if (typeof out.location === "string" && out.location.startsWith(target.origin)) out.location = self + out.location.slice(target.origin.length);
      const total = Number(up.headers["content-length"] ?? 0);
      const cut = fault === "truncate" && req.method !== "HEAD" ? Math.floor(total / 2) : 0;
      if (fault === "truncate" && cut === 0) {
        // Nothing to cut short: the request landed, but its answer is lost.
        up.destroy();
        res.socket?.destroy();
        return;
      }
      res.writeHead(up.statusCode ?? 502, out);
      if (fault !== "truncate") {
        up.pipe(res);
        return;
      }
      let sent = 0;
      up.on("data", (chunk: Buffer) => {
        if (sent >= cut) return;
        const n = Math.min(chunk.length, cut - sent);
        sent += n;
        res.write(chunk.subarray(0, n));
        if (sent >= cut) {
          up.destroy();
          // Let the written bytes reach the client, then cut the connection.
          res.socket?.end();
          setTimeout(() => res.socket?.destroy(), 20);
        }
      });
    });
    upstream.on("error", () => res.socket?.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  self = `http://127.0.0.1:${port}`;
  return {
    url: self,
    host: `127.0.0.1:${port}`,
    stats,
    stop: () => new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
