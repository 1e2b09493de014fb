/**
 * A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on a free
 * loopback port in its own temp dir, plain HTTP, htpasswd basic auth, bearer-token auth
 * (with {@link startTokenServer}) and/or TLS with a self-signed certificate.
 *
 * @example
 * const reg = await startRegistry({ auth: "htpasswd", tls: true });
 * try { … `https://${reg.host}/v2/` with reg.caFile … } finally { await reg.stop(); }
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { makeTempDir, removeTree } from "./tmp.ts";
import { startTokenServer, type TokenServer } from "./token_server.ts";

const execFileP = promisify(execFile);

export interface RegistryOptions {
  /** `htpasswd`: basic auth; `token`: bearer tokens from a Node token server (same user/password). */
  auth?: "htpasswd" | "token";
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1 / localhost. */
  tls?: boolean;
  /** Token auth only: answer the token in this JSON field alone (default: both `token` and `access_token`). */
  tokenField?: "token" | "access_token";
  /** Run as a pull-through cache of this upstream registry URL. */
  proxyRemoteUrl?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http(s)://127.0.0.1:PORT` */
  url: string;
  /** Storage root (`docker/registry/v2/...` below it). */
  dataDir: string;
  /** PEM of the self-signed certificate (TLS only). */
  caFile?: string;
  /** Directory holding `ca.crt` (for skopeo `--cert-dir`). */
  certDir?: string;
  username?: string;
  password?: string;
  /** The token server (auth "token" only). */
  tokenServer?: TokenServer;
  stop(): Promise<void>;
}

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Creates a self-signed certificate (SAN IP:127.0.0.1, DNS:localhost) in `dir`. */
export async function makeSelfSignedCert(dir: string, name = "cert"): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  await execFileP("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
  return { cert, key };
}

function probe(url: string, ca: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const mod = url.startsWith("https:") ? https : http;
    const req = mod.get(`${url}/v2/`, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
  });
}

function yamlString(s: string): string {
  return JSON.stringify(s);
}

/** Starts a registry; always call `stop()` (it kills the process and removes the temp dir). */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await makeTempDir({ prefix: "nydus-ts-registry-" });
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    const dataDir = path.join(dir, "data");
    await fs.mkdir(dataDir);
    const username = options.auth ? "testuser" : undefined;
    const password = options.auth ? "testpass" : undefined;
    const lines = [
      "version: 0.1",
      "log: {level: warn, accesslog: {disabled: true}}",
      "storage:",
      `  filesystem: {rootdirectory: ${yamlString(dataDir)}}`,
      "  delete: {enabled: true}",
      "  cache: {blobdescriptor: inmemory}",
      "http:",
      "  addr: ADDR",
      "  secret: test-secret",
    ];
    let caFile: string | undefined;
    let certDir: string | undefined;
    if (options.tls) {
      const { cert, key } = await makeSelfSignedCert(dir);
      caFile = cert;
      certDir = path.join(dir, "certs");
      await fs.mkdir(certDir);
      await fs.copyFile(cert, path.join(certDir, "ca.crt"));
      lines.push("  tls:", `    certificate: ${yamlString(cert)}`, `    key: ${yamlString(key)}`);
    }
    if (options.auth === "htpasswd") {
      const { stdout } = await execFileP("htpasswd", ["-Bbn", username!, password!]);
      const file = path.join(dir, "htpasswd");
      await fs.writeFile(file, stdout);
      lines.push("auth:", "  htpasswd:", "    realm: basic-realm", `    path: ${yamlString(file)}`);
    } else if (options.auth === "token") {
      tokenServer = await startTokenServer({ dir, username: username!, password: password!, field: options.tokenField });
      lines.push("auth:", "  token:", `    realm: ${yamlString(tokenServer.realm)}`, `    service: ${yamlString(tokenServer.service)}`,
        `    issuer: ${yamlString(tokenServer.issuer)}`, `    rootcertbundle: ${yamlString(tokenServer.certFile)}`);
    }
    if (options.proxyRemoteUrl) lines.push("proxy:", `  remoteurl: ${yamlString(options.proxyRemoteUrl)}`);
    const scheme = options.tls ? "https" : "http";
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const config = path.join(dir, "config.yml");
      await fs.writeFile(config, lines.join("\n").replace("ADDR", host) + "\n");
      const logFile = await fs.open(path.join(dir, "registry.log"), "a");
      child = spawn("/usr/bin/docker-registry", ["serve", config], { stdio: ["ignore", logFile.fd, logFile.fd] });
      await logFile.close();
      let exited = false;
      child.once("exit", () => (exited = true));
      const url = `${scheme}://${host}`;
      const deadline = Date.now() + 10_000;
      const caPem = caFile ? await fs.readFile(caFile, "utf8") : undefined;
      while (!exited && Date.now() < deadline && (await probe(url, caPem)) === 0) await new Promise((r) => setTimeout(r, 10));
      if (!exited && Date.now() < deadline) {
        const proc = child;
        const ts = tokenServer;
        return {
          host, url, dataDir, caFile, certDir, username, password, tokenServer: ts,
          async stop() {
            if (proc.exitCode === null && proc.signalCode === null) {
              const gone = new Promise((r) => proc.once("exit", r));
              proc.kill("SIGKILL");
              await gone;
            }
            await ts?.stop();
            await removeTree(dir);
          },
        };
      }
      if (!exited) child.kill("SIGKILL");
      if (attempt >= 2) {
        const log = await fs.readFile(path.join(dir, "registry.log"), "utf8").catch(() => "(no log)");
        throw new Error(`Cannot start docker-registry: not answering on ${url}\n${log.slice(-2000)}`);
      }
    }
  } catch (err) {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await tokenServer?.stop();
    await removeTree(dir);
    throw err;
  }
}

/** Path of a blob's data file inside a registry's storage (to tamper with it in tests). */
export function blobDataPath(dataDir: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return path.join(dataDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

/**
 * A docker-registry (plain HTTP) on a fixed loopback port that tests kill and start again:
 * `kill()` (SIGKILL, resolved once it has exited) and `start()` keep the port and the storage,
 * so a client sees the registry go away and come back.
 */
export async function restartableRegistry(dir: string) {
  const dataDir = path.join(dir, "data");
  await fs.mkdir(dataDir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = path.join(dir, "config.yml");
  await fs.writeFile(config, ["version: 0.1", "log: {level: warn, accesslog: {disabled: true}}", "storage:",
    `  filesystem: {rootdirectory: ${JSON.stringify(dataDir)}}`, "http:", `  addr: ${host}`, "  secret: test-secret", ""].join("\n"));
  let child: ChildProcess | undefined;
  const probe = () => new Promise<number>((resolve) => {
    http.get(`http://${host}/v2/`, { agent: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", () => resolve(0));
  });
  const reg = {
    host,
    dataDir,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async start() {
      if (reg.running()) return;
      child = spawn("/usr/bin/docker-registry", ["serve", config], { stdio: "ignore" });
      const deadline = Date.now() + 10_000;
      while ((await probe()) !== 200) {
        if (Date.now() > deadline) throw new Error(`docker-registry did not start on ${host}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child!.once("exit", r));
        child.kill("SIGKILL");
        await gone;
      }
    },
  };
  await reg.start();
  return reg;
}
export type RestartableRegistry = Awaited<ReturnType<typeof restartableRegistry>>;
