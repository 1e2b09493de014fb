/**
 * Shared set-up of the lazy-runtime e2e tests (runtime_*.test.ts): a source OCI layout from the
 * all-types texture (64 KiB chunks, plus an 8 MiB file) materialised as the reference tree,
 * converted with our CLI into a docker-registry on a fixed loopback port (killable and
 * restartable on that port), a counting proxy, CLI runners with a private run dir, and tree
 * snapshots taken by child processes (the mount is never touched by the test process itself
 * with sync calls, and never by a daemon's own process).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { allTypesTexture, file, random, type LayerSpec } from "../textures/spec.ts";
import { materializeDir } from "../textures/generate.ts";
import { writeSourceLayout } from "../support/images.ts";
import { PROJECT_ROOT } from "../support/paths.ts";
import { canMountFuse, skipReason } from "../support/oracles.ts";
import { restartableRegistry, type RestartableRegistry } from "../support/registry.ts";
import { makeTempDir, mountsUnder, removeTree } from "../support/tmp.ts";

export const CHUNK = 0x10000;

/** Why the runtime tests cannot run here, or undefined. */
export function runtimeSkip(): string | false {
  const fuse = skipReason(canMountFuse());
  if (fuse) return fuse;
  if (!fs.existsSync("/usr/bin/docker-registry")) return "no docker-registry (apt-get install docker-registry)";
  return false;
}

/** The texture: every file type, sizes around the chunk size, xattrs, owners, special modes; no socket (tar has none). */
export function runtimeLayer(): LayerSpec {
  const base = allTypesTexture(CHUNK);
  return { ...base, entries: [...base.entries.filter((e) => e.type !== "socket"), file("big/random-8m.bin", random(8 << 20, 4242), { mtime: 1_650_000_100 })] };
}

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
  json?: any;
}

/** Runs a command to completion (never throws on a non-zero exit). */
export function run(cmd: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = options.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        // not JSON
      }
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr: Buffer.concat(err).toString("utf8"), json });
    });
  });
}

export const sh = (script: string, options: { timeoutMs?: number } = {}) => run("bash", ["-c", script], options);

export type Registry = RestartableRegistry;

export interface SeenRequest {
  method: string;
  url: string;
  range?: string;
  headers: http.IncomingHttpHeaders;
}

/** A loopback reverse proxy in front of `targetHost` that records every request. */
export async function countingProxy(targetHost: string) {
  const [hostname, port] = targetHost.split(":");
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", range: req.headers.range, headers: req.headers });
    const up = http.request({ host: hostname, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: targetHost } }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    seen,
    /** Blob GETs with a Range header (chunk fetches). */
    rangeGets: () => seen.filter((r) => r.method === "GET" && /\/blobs\/sha256:/.test(r.url) && r.range),
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export interface World {
  work: string;
  /** The reference tree (the source layer materialised). */
  tree: string;
  reg: Registry;
  /** `HOST/rt:v1`, the converted Nydus image. */
  ref: string;
  runDir: string;
  env: NodeJS.ProcessEnv;
  cli(args: readonly string[], options?: { timeoutMs?: number }): Promise<Out>;
  cleanup(): Promise<void>;
}

/** Source layout → reference tree → `nydus-ts convert` into a fresh registry. */
export async function setupWorld(prefix: string): Promise<World> {
  const work = await makeTempDir({ prefix });
  const layer = runtimeLayer();
  const tree = path.join(work, "tree");
  await materializeDir(layer, tree);
  await writeSourceLayout(path.join(work, "src"), "v1", [{ layers: [layer] }]);
  const reg = await restartableRegistry(path.join(work, "registry"));
  const runDir = path.join(work, "run");
  const dockerConfig = path.join(work, "docker");
  fs.mkdirSync(dockerConfig);
  const env = { ...process.env, NYDUS_TS_RUN_DIR: runDir, DOCKER_CONFIG: dockerConfig, XDG_CACHE_HOME: path.join(work, "xdg") };
  const cli = (args: readonly string[], options: { timeoutMs?: number } = {}) =>
    run(process.execPath, [path.join(PROJECT_ROOT, "bin", "nydus-ts.js"), ...args], { env, timeoutMs: options.timeoutMs ?? 120_000 });
  const ref = `${reg.host}/rt:v1`;
  const conv = await cli(["convert", "--source", `oci:${path.join(work, "src")}:v1`, "--target", ref, "--plain-http", "--chunk-size", "0x10000"]);
  if (conv.code !== 0) {
    await reg.kill();
    await removeTree(work);
    throw new Error(`convert failed: ${conv.stderr}`);
  }
  return {
    work, tree, reg, ref, runDir, env, cli,
    async cleanup() {
      // Daemons still alive (a failed test): unmount their mounts, then kill them.
      for (const mp of mountsUnder(work)) {
        if (spawnSync("umount", [mp]).status !== 0) spawnSync("umount", ["-l", mp]);
      }
      for (const f of fs.existsSync(runDir) ? fs.readdirSync(runDir) : []) {
        if (!f.endsWith(".json")) continue;
        try {
          process.kill(JSON.parse(fs.readFileSync(path.join(runDir, f), "utf8")).pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      await reg.kill();
      await removeTree(work);
    },
  };
}

/** Whether /proc/mounts lists `mp`. */
export function mounted(mp: string): boolean {
  return fs.readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === mp);
}

/** Waits until `pid` has exited (bounded). */
export async function waitGone(pid: number, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `sha256sum` of the regular files under `root` (relative names), computed by a child process. */
export async function fileHashes(root: string, exclude?: string): Promise<Map<string, string>> {
  const not = exclude ? ` ! -path '${exclude}'` : "";
  const r = await sh(`cd '${root}' && find . -type f${not} -print0 | sort -z | xargs -0 -r sha256sum`, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`sha256sum under ${root} failed: ${r.stderr}`);
  return new Map(r.stdout.split("\n").filter(Boolean).map((l) => [l.slice(66), l.slice(0, 64)] as [string, string]));
}
