/**
 * Running peer tools (skopeo, umoci, buildah, ctr) and the nydus-ts CLI as child processes with a
 * chosen environment and stdin — what the registry/peer end-to-end tests need beyond `runCli`.
 *
 * @example
 * await skopeo(["copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${reg.host}/app:v1`]);
 * const r = await runCliWith(["convert", "--source", "-", "--target", ...], { stdinFile: "image.tar" });
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { PROJECT_ROOT } from "./paths.ts";

export interface ProcResult {
  code: number;
  /** Set when the process died of a signal. */
  signal?: NodeJS.Signals;
  stdout: string;
  stderr: string;
  /** Parsed stdout when it is JSON. */
  json?: any;
}

export interface ProcOptions {
  /** Added to (and overriding) the parent's environment. */
  env?: Record<string, string | undefined>;
  /** Bytes for stdin (default: empty). */
  input?: Uint8Array;
  /** A file streamed into stdin instead of `input`. */
  stdinFile?: string;
  cwd?: string;
  /** Called once the child is running (e.g. to kill it later). */
  onSpawn?: (child: ChildProcess) => void;
  /** Kill (SIGKILL) after this many ms; the result then has signal "SIGKILL". Default 120 s. */
  timeoutMs?: number;
}

/** Runs `cmd ARGS…`; never throws on a non-zero exit (check `code`). */
export function runProc(cmd: string, args: readonly string[], options: ProcOptions = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env, cwd: options.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    // EPIPE when the child exits before reading all of stdin (e.g. it failed early): its exit code tells.
    child.stdin!.on("error", () => undefined);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        // Not JSON output; `json` stays undefined.
      }
      resolve({ code: code ?? -1, signal: signal ?? undefined, stdout, stderr: Buffer.concat(err).toString("utf8"), json });
    });
    if (options.stdinFile) fs.createReadStream(options.stdinFile).on("error", (e) => child.stdin!.destroy(e)).pipe(child.stdin!);
    else child.stdin!.end(options.input ?? "");
    options.onSpawn?.(child);
  });
}

/** Like runProc but throws with stderr when the exit code is not 0. */
export async function procOk(cmd: string, args: readonly string[], options: ProcOptions = {}): Promise<ProcResult> {
  const r = await runProc(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}${r.signal ? ` (${r.signal})` : ""}:\n${r.stderr}${r.stdout.slice(-2000)}`);
  return r;
}

/** `nydus-ts ARGS…` (bin/nydus-ts.js) with an environment / stdin file; never throws on a non-zero exit. */
export function runCliWith(args: readonly string[], options: ProcOptions = {}): Promise<ProcResult> {
  return runProc(process.execPath, [path.join(PROJECT_ROOT, "bin", "nydus-ts.js"), ...args], options);
}

/** Like runCliWith but throws when the CLI exits non-zero. */
export async function cliOkWith(args: readonly string[], options: ProcOptions = {}): Promise<ProcResult> {
  const r = await runCliWith(args, options);
  if (r.code !== 0) throw new Error(`nydus-ts ${args.join(" ")} exited ${r.code}${r.signal ? ` (${r.signal})` : ""}:\n${r.stderr}`);
  return r;
}

/** `skopeo ARGS…`, throwing on failure. */
export function skopeo(args: readonly string[], options: ProcOptions = {}): Promise<ProcResult> {
  return procOk("skopeo", args, options);
}

/** Writes `DIR/config.json` with Docker `auths` (base64 `user:pass`) for each host; returns DIR (for DOCKER_CONFIG). */
export async function writeDockerConfig(dir: string, auths: Record<string, { username: string; password: string }>): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const entries = Object.fromEntries(
    Object.entries(auths).map(([host, c]) => [host, { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") }]),
  );
  await fsp.writeFile(path.join(dir, "config.json"), JSON.stringify({ auths: entries }, null, 2));
  return dir;
}

/** The manifest of `docker://REF` as raw bytes plus its parsed JSON (`skopeo inspect --raw`). */
export async function inspectRaw(ref: string, args: readonly string[] = ["--tls-verify=false"]): Promise<{ raw: string; json: any }> {
  const r = await skopeo(["inspect", ...args, "--raw", `docker://${ref}`]);
  return { raw: r.stdout, json: JSON.parse(r.stdout) };
}

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

/**
 * Copies one manifest (and its config and layers) of an anonymous plain-HTTP registry into an OCI
 * layout tagged `tag`, with plain `fetch` — for Docker schema 2 Nydus manifests, which skopeo 1.9
 * refuses ("unsupported docker v2s2 media type" for the Nydus blob layer type). Digests are checked.
 */
export async function fetchToLayout(registryUrl: string, repo: string, reference: string, dir: string, tag: string): Promise<{ digest: string; mediaType: string }> {
  const get = async (p: string, accept?: string) => {
    const res = await fetch(`${registryUrl}/v2/${repo}/${p}`, { headers: accept ? { accept } : {} });
    if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status}`);
    return { bytes: new Uint8Array(await res.arrayBuffer()), type: res.headers.get("content-type") ?? "" };
  };
  const put = async (bytes: Uint8Array, expect?: string) => {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (expect && digest !== expect) throw new Error(`blob ${expect}: got bytes of ${digest}`);
    await fsp.mkdir(path.join(dir, "blobs", "sha256"), { recursive: true });
    await fsp.writeFile(path.join(dir, "blobs", "sha256", digest.slice(7)), bytes);
    return digest;
  };
  const m = await get(`manifests/${reference}`, MANIFEST_ACCEPT);
  const digest = await put(m.bytes);
  const manifest = JSON.parse(Buffer.from(m.bytes).toString("utf8"));
  for (const d of [manifest.config, ...manifest.layers]) await put((await get(`blobs/${d.digest}`)).bytes, d.digest);
  await fsp.writeFile(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const mediaType = manifest.mediaType ?? m.type;
  await fsp.writeFile(path.join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType, digest, size: m.bytes.length, annotations: { "org.opencontainers.image.ref.name": tag } }],
  }));
  return { digest, mediaType };
}

/** GET a manifest or index of an anonymous plain-HTTP registry: raw bytes, digest, Content-Type and JSON. */
export async function fetchManifest(registryUrl: string, repo: string, reference: string): Promise<{ raw: Uint8Array; digest: string; contentType: string; json: any } | undefined> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET manifest ${repo}:${reference}: HTTP ${res.status}`);
  const raw = new Uint8Array(await res.arrayBuffer());
  return { raw, digest: `sha256:${createHash("sha256").update(raw).digest("hex")}`, contentType: res.headers.get("content-type") ?? "", json: JSON.parse(Buffer.from(raw).toString("utf8")) };
}

/** GET a blob of an anonymous plain-HTTP registry (undefined on 404). */
export async function fetchBlob(registryUrl: string, repo: string, digest: string): Promise<Uint8Array | undefined> {
  const res = await fetch(`${registryUrl}/v2/${repo}/blobs/${digest}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET blob ${repo}@${digest}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}
