/**
 * Lazy-runtime benchmark (part of `npm run bench`, issue 4 "Benchmark"): the converter
 * benchmark's realistic source image, served by Debian's `docker-registry` on loopback, read
 * on demand through our FUSE mount, side by side with what a container runtime without Nydus
 * does and with the kernel's own EROFS driver.
 *
 * Set-up (once per bench run, not timed in the tables):
 *   - a `docker-registry` (test/support/registry.ts: free loopback port, plain HTTP, temp dir);
 *   - `nydus-ts convert --source oci:SRC:v1 --target 127.0.0.1:PORT/bench:nydus --plain-http`
 *     and `skopeo copy oci:SRC:v1 docker://127.0.0.1:PORT/bench:oci` (the plain OCI source);
 *   - the merged bootstrap is taken from the Nydus manifest's bootstrap layer (in the registry's
 *     storage) and decoded with the library (src/rafs) to resolve paths (symlinks followed inside
 *     the image) and to list the chunks each file needs.
 *
 * (a) Cold start: reading a start-up file set (a shell, bash and its libraries, the dynamic
 *     loader, a few coreutils, /etc files, the app's entrypoint/config and a few files of the
 *     app layer; the paths missing from the image are skipped).
 *     - ours: `nydus-ts mount REF MNT --plain-http --cache-dir EMPTY --daemon` (returns once the
 *       mount serves), then one `cat FILES >/dev/null`; time from the mount command's start to
 *       the end of cat; bytes = the daemon's `fetched` (manifest + bootstrap layer + chunk
 *       ranges) from `nydus-ts umount --json`.
 *     - full pull: `skopeo copy docker://REF oci:TMP:v1` + `umoci unpack --image TMP:v1 BUNDLE`
 *       + the same `cat`; bytes = the pulled layout (manifest, config, every layer).
 *     Targets: bytes ≤ 1.2 × (compressed size of the distinct chunks of the files read + the
 *     bootstrap layer); cold start ≤ 5 % of the full pull.
 * (b) Warm sequential reads: one mount with a cache warmed by a first pass over the same files
 *     (which also checks, by SHA-256, that both mounts return the same bytes), then per run and
 *     workload: page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only), read
 *     through our mount; dropped again, read through a kernel EROFS mount of the same image
 *     (`nydus-ts export --block` of the merged bootstrap + the registry's blob files,
 *     `mount -t erofs -o loop,ro`). Workloads: every regular file ≥ 1 MiB (`cat`, one process),
 *     and the whole /usr tree (`tar -cf - usr | cat`). Target: ours ≥ 50 % of the kernel's MB/s.
 *
 * Knobs: BENCH_RUNTIME=0 skips this part (main.ts), BENCH_RUNTIME_RUNS (default 3),
 * BENCH_CONVERT_APP_FILES selects the source image as in bench/convert.ts.
 * Everything (mounts — checked in /proc/mounts —, daemons, the registry, temp dirs) is removed
 * at the end, also on failure.
 */
import { spawn, spawnSync, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { openRafs, walkRafs } from "../src/rafs/open.ts";
import type { RafsImage, RafsInode } from "../src/rafs/model.ts";
import { blobDataPath, startRegistry, type TestRegistry } from "../test/support/registry.ts";
import type { Sample } from "./convert.ts";

export interface RuntimeBenchOptions {
  repo: string;
  cli: string;
  cache: string;
  work: string;
  runs: number;
  rootfs: { label: string };
  /** main.ts's `/usr/bin/time -v` wrapper. */
  measure: (argv: string[]) => Sample;
  log: (s: string) => void;
}

const TAG = "v1";
/** Per measured command: a hung FUSE read must not hang the bench. */
const TIMEOUT = ["timeout", "-k", "10", "600"];
const BOOTSTRAP_ANNOTATION = "containerd.io/snapshot/nydus-bootstrap";

/** The start-up file set: paths as a program would open them (symlinks resolved inside the image). */
const STARTUP_PATHS = [
  "/bin/sh",
  "/bin/bash",
  "/lib64/ld-linux-x86-64.so.2",
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/x86_64-linux-gnu/libtinfo.so.6",
  "/lib/x86_64-linux-gnu/libselinux.so.1",
  "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
  "/etc/ld.so.cache",
  "/etc/passwd",
  "/etc/group",
  "/etc/nsswitch.conf",
  "/usr/bin/env",
  "/usr/bin/ls",
  "/usr/bin/cat",
  "/entrypoint.sh",
  "/etc/app/config.json",
  "/etc/app/env",
];
/** Files of the app layer added to the start-up set: the first regular files of the first packages. */
const APP_FILES = 24;

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mb = (n: number) => (n / 1e6).toFixed(1);
const verdict = (ok: boolean) => (ok ? "**met**" : "**NOT met**");

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 28, timeout: opts.timeout ?? 600_000, env: opts.env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ").slice(0, 300)} failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || "").trim().slice(-2000)}`);
  return r.stdout;
}

/** Mount points from /proc/mounts (octal escapes decoded). */
function mountPoints(): string[] {
  return fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[1]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}
const isMounted = (mp: string) => mountPoints().includes(mp);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether bin/nydus-ts.js runs dist/ (as its launcher decides) or the sources through tsx. */
function launcherMode(repo: string): string {
  let built: number;
  try {
    built = fs.statSync(path.join(repo, "dist", ".built")).mtimeMs;
  } catch {
    return "through tsx (no dist/ build)";
  }
  const stack = [path.join(repo, "src")];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && fs.statSync(p).mtimeMs > built) return "through tsx (src/ newer than dist/: slower start-up of every CLI process)";
    }
  }
  return "from the compiled dist/";
}

function dropCaches(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    spawnSync("sync");
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  return n;
}

// ---------------------------------------------------------------- the image's bootstrap

/** Resolves `p` inside the image, following symlinks (relative and absolute) in every component. */
function resolveInImage(image: RafsImage, p: string): { path: string; inode: RafsInode } | undefined {
  const todo = p.split("/").filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === ".") continue;
    if (name === "..") {
      done.pop();
      continue;
    }
    const cur = "/" + [...done, name].join("/");
    const inode = image.lookup(cur);
    if (!inode) return undefined;
    if (inode.kind === "symlink") {
      if (++hops > 40) return undefined;
      const target = new TextDecoder().decode(image.readlink(inode));
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...target.split("/").filter(Boolean));
      continue;
    }
    done.push(name);
  }
  const real = "/" + done.join("/");
  const inode = image.lookup(real);
  return inode ? { path: real, inode } : undefined;
}

interface FileSet {
  /** Image paths (absolute, symlink-free), regular files. */
  paths: string[];
  bytes: number;
  /** Compressed size of the distinct chunks these files need. */
  chunkBytes: number;
  chunks: number;
}

function fileSet(image: RafsImage, files: { path: string; inode: RafsInode }[]): FileSet {
  const seenIno = new Set<number>();
  const seenChunk = new Set<string>();
  const paths: string[] = [];
  let bytes = 0;
  let chunkBytes = 0;
  for (const f of files) {
    if (f.inode.kind !== "reg" || seenIno.has(f.inode.ino)) continue;
    seenIno.add(f.inode.ino);
    paths.push(f.path);
    bytes += f.inode.size;
    for (const c of image.chunks(f.inode)) {
      const key = `${c.chunk.blobIndex}:${c.chunk.compressedOffset}`;
      if (seenChunk.has(key)) continue;
      seenChunk.add(key);
      chunkBytes += c.chunk.compressedSize;
    }
  }
  return { paths, bytes, chunkBytes, chunks: seenChunk.size };
}

function startupSet(image: RafsImage, log: (s: string) => void): { set: FileSet; missing: string[] } {
  const files: { path: string; inode: RafsInode }[] = [];
  const missing: string[] = [];
  for (const p of STARTUP_PATHS) {
    const r = resolveInImage(image, p);
    if (r && r.inode.kind === "reg") files.push(r);
    else missing.push(p);
  }
  // App layer: the first regular files (walk order) below /node_modules.
  let app = 0;
  for (const e of walkRafs(image)) {
    if (app >= APP_FILES) break;
    if (e.path.startsWith("/node_modules/") && e.inode.kind === "reg") {
      files.push({ path: e.path, inode: e.inode });
      app++;
    }
  }
  if (missing.length) log(`runtime: start-up paths absent from the image (skipped): ${missing.join(" ")}`);
  return { set: fileSet(image, files), missing };
}

function walkSet(image: RafsImage, pick: (p: string, inode: RafsInode) => boolean): FileSet {
  const files: { path: string; inode: RafsInode }[] = [];
  for (const e of walkRafs(image)) if (e.inode.kind === "reg" && pick(e.path, e.inode)) files.push({ path: e.path, inode: e.inode });
  return fileSet(image, files);
}

// ---------------------------------------------------------------- registry documents

async function getManifest(reg: TestRegistry, repoName: string, ref: string): Promise<{ layers: Desc[]; config: Desc }> {
  const accept = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
  const get = async (r: string) => {
    const res = await fetch(`${reg.url}/v2/${repoName}/manifests/${r}`, { headers: { accept: accept.join(", ") } });
    if (!res.ok) throw new Error(`runtime: GET manifest ${repoName}:${r} → ${res.status}`);
    return (await res.json()) as { manifests?: (Desc & { platform?: { architecture?: string } })[]; layers: Desc[]; config: Desc };
  };
  let doc = await get(ref);
  if (doc.manifests) {
    const entry = doc.manifests.find((m) => m.platform?.architecture === "amd64") ?? doc.manifests[0];
    if (!entry) throw new Error(`runtime: empty index ${repoName}:${ref}`);
    doc = await get(entry.digest);
  }
  return doc;
}

// ---------------------------------------------------------------- benchmark

interface ColdRun {
  mount: number;
  read: number;
  bytes: number;
  requests: number;
  rssKiB: number;
}

interface PullRun {
  copy: number;
  unpack: number;
  read: number;
  bytes: number;
}

/** Runs the lazy-runtime benchmark; returns the markdown section for bench/results.md. */
export async function benchRuntime(o: RuntimeBenchOptions): Promise<string> {
  const appFiles = Number(process.env.BENCH_CONVERT_APP_FILES ?? 15000);
  const srcDir = path.join(o.cache, `oci-src-${o.rootfs.label}-app${appFiles}-v1`);
  if (!fs.existsSync(path.join(srcDir, "bench-meta.json"))) {
    o.log(`runtime: no source image ${srcDir} (built by the converter benchmark); skipped`);
    return `## nydus-ts lazy runtime benchmark\n\nSkipped: the source image ${srcDir} is built by the converter benchmark (run once without BENCH_CONVERT=0).\n`;
  }
  const cli = o.cli;
  const dir = fs.mkdtempSync(path.join(o.work, "runtime-"));
  const runDir = path.join(dir, "run");
  fs.mkdirSync(runDir);
  const savedRunDir = process.env.NYDUS_TS_RUN_DIR;
  process.env.NYDUS_TS_RUN_DIR = runDir; // state files of our mounts (inherited by every CLI process)
  const mounts: { mp: string; kind: "fuse" | "erofs" }[] = [];
  const daemons = new Set<number>();
  let reg: TestRegistry | undefined;

  /** Unmounts ours through the CLI (umount -l as a last resort); returns `umount --json`'s result when it answered. */
  const unmountFuse = (mp: string): { pid?: number; daemon?: string; last?: { fetched: { bytes: number; requests: number } } } | undefined => {
    if (!isMounted(mp)) return undefined;
    const r = spawnSync("node", [cli, "umount", mp, "--json", "--timeout", "30"], { encoding: "utf8", timeout: 60_000 });
    let res;
    try {
      res = JSON.parse(r.stdout) as { pid?: number; daemon?: string; last?: { fetched: { bytes: number; requests: number } } };
    } catch {
      o.log(`runtime: umount ${mp} failed (${r.status}): ${r.stderr.trim().slice(-500)}`);
    }
    if (isMounted(mp)) spawnSync("umount", ["-l", mp]);
    return res;
  };
  const cleanup = async () => {
    for (const m of [...mounts].reverse()) {
      if (!isMounted(m.mp)) continue;
      o.log(`runtime: cleanup: unmounting ${m.mp}`);
      if (m.kind === "fuse") unmountFuse(m.mp);
      else if (spawnSync("umount", [m.mp]).status !== 0) spawnSync("umount", ["-l", m.mp]);
    }
    // Daemons we started that outlived their mount.
    for (const f of fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((n) => n.endsWith(".json")) : []) {
      try {
        const pid = (JSON.parse(fs.readFileSync(path.join(runDir, f), "utf8")) as { pid?: number }).pid;
        if (pid) daemons.add(pid);
      } catch {
        // a state file being rewritten: its pid was recorded when mounted
      }
    }
    for (const pid of daemons) {
      // Only a live process that is still one of our daemons (a pid may have been reused meanwhile).
      let cmdline = "";
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue;
      }
      if (!alive(pid) || !cmdline.includes(dir + "/")) continue;
      // `umount` returns once the state file is gone; the process may still be exiting.
      for (const deadline = Date.now() + 5000; alive(pid) && Date.now() < deadline; ) spawnSync("sleep", ["0.1"]);
      if (!alive(pid)) continue;
      o.log(`runtime: cleanup: killing daemon ${pid} (${cmdline.split("\0").join(" ").slice(0, 200)})`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await reg?.stop().catch((e: Error) => o.log(`runtime: cleanup: registry stop: ${e.message}`));
    const left = mountPoints().filter((mp) => mp === dir || mp.startsWith(dir + "/"));
    if (left.length) o.log(`runtime: cleanup: NOT removing ${dir}: still mounted: ${left.join(" ")}`);
    else fs.rmSync(dir, { recursive: true, force: true });
    if (savedRunDir === undefined) delete process.env.NYDUS_TS_RUN_DIR;
    else process.env.NYDUS_TS_RUN_DIR = savedRunDir;
  };
  // A crash between here and the finally (uncaught in main) still detaches the mounts.
  const onExit = () => {
    for (const m of mounts) if (isMounted(m.mp)) spawnSync("umount", ["-l", m.mp]);
  };
  process.once("exit", onExit);

  try {
    // ---- registry, images
    reg = await startRegistry();
    const regVersion = run("docker-registry", ["--version"]).trim().split("\n")[0] ?? "?";
    o.log(`runtime: docker-registry on ${reg.host} (${reg.dataDir})`);
    const nydusRef = `${reg.host}/bench:nydus`;
    const ociRef = `${reg.host}/bench:oci`;
    o.log(`runtime: convert oci:${srcDir}:${TAG} → ${nydusRef}`);
    let t0 = Date.now();
    run("node", [cli, "convert", "--source", `oci:${srcDir}:${TAG}`, "--target", nydusRef, "--plain-http"]);
    const convertSec = (Date.now() - t0) / 1000;
    t0 = Date.now();
    run("skopeo", ["copy", "-q", "--dest-tls-verify=false", `oci:${srcDir}:${TAG}`, `docker://${ociRef}`]);
    const pushSec = (Date.now() - t0) / 1000;

    const nydusManifest = await getManifest(reg, "bench", "nydus");
    const ociManifest = await getManifest(reg, "bench", "oci");
    const bootLayer = [...nydusManifest.layers].reverse().find((l) => l.annotations?.[BOOTSTRAP_ANNOTATION] === "true");
    if (!bootLayer) throw new Error("runtime: the converted manifest has no bootstrap layer");
    const dataLayers = nydusManifest.layers.filter((l) => l !== bootLayer);
    const bootDir = path.join(dir, "boot");
    fs.mkdirSync(bootDir);
    execFileSync("tar", ["-xzf", blobDataPath(reg.dataDir, bootLayer.digest), "-C", bootDir, "image/image.boot"]);
    const bootstrapFile = path.join(bootDir, "image", "image.boot");
    const image = openRafs(fs.readFileSync(bootstrapFile));

    const { set: startup, missing } = startupSet(image, o.log);
    if (startup.paths.length === 0) throw new Error("runtime: none of the start-up files is in the image");
    const large = walkSet(image, (_p, inode) => inode.size >= 1 << 20);
    const usr = walkSet(image, (p) => p.startsWith("/usr/"));
    const ociBytes = ociManifest.layers.reduce((a, l) => a + l.size, 0) + ociManifest.config.size;
    o.log(`runtime: start-up set ${startup.paths.length} files ${mb(startup.bytes)} MB (${startup.chunks} chunks, ${mb(startup.chunkBytes)} MB compressed); large files: ${large.paths.length}, ${mb(large.bytes)} MB; /usr: ${usr.paths.length} files, ${mb(usr.bytes)} MB`);

    // The same image with a prefetch table of the start-up set (nydusify's --prefetch-patterns),
    // as a Nydus image built for fast start-up carries it; mounted with --prefetch below.
    const prefetchRef = `${reg.host}/bench:nydus-prefetch`;
    const patterns = path.join(dir, "prefetch-patterns.txt");
    fs.writeFileSync(patterns, startup.paths.join("\n") + "\n");
    o.log(`runtime: convert oci:${srcDir}:${TAG} → ${prefetchRef} (--prefetch-patterns: the start-up set)`);
    run("node", [cli, "convert", "--source", `oci:${srcDir}:${TAG}`, "--target", prefetchRef, "--plain-http", "--prefetch-patterns", patterns]);
    const prefetchBootLayer = [...(await getManifest(reg, "bench", "nydus-prefetch")).layers].reverse().find((l) => l.annotations?.[BOOTSTRAP_ANNOTATION] === "true");
    if (!prefetchBootLayer) throw new Error("runtime: the converted prefetch manifest has no bootstrap layer");

    // ---- (a) cold start
    const cold: ColdRun[] = [];
    const coldPrefetch: ColdRun[] = [];
    const coldServer: ColdRun[] = [];
    const coldServerPrefetch: ColdRun[] = [];
    // A resident `nydus-ts serve` (started once, not timed), like nydusd's shared daemon.
    const socket = path.join(dir, "serve.sock");
    const serveProc = spawn("node", [cli, "serve", "--socket", socket], { stdio: ["ignore", "ignore", "pipe"] });
    serveProc.stderr!.resume();
    if (serveProc.pid) daemons.add(serveProc.pid);
    for (const deadline = Date.now() + 10_000; !fs.existsSync(socket); ) {
      if (Date.now() > deadline || serveProc.exitCode !== null) throw new Error("runtime: nydus-ts serve did not start");
      await new Promise((r) => setTimeout(r, 20));
    }
    const pulls: PullRun[] = [];
    let sameBytes: boolean | undefined;
    let samePrefetchBytes: boolean | undefined;
    let sameServerBytes: boolean | undefined;
    const catScript = (root: string) => ["bash", "-c", `cd "$1" && shift && cat "$@" >/dev/null`, "bash", root, ...startup.paths.map((p) => p.slice(1))];
    const sums = (root: string) => run("bash", ["-c", `cd "$1" && shift && sha256sum "$@"`, "bash", root, ...startup.paths.map((p) => p.slice(1))]);
    for (let i = 0; i < o.runs; i++) {
      o.log(`runtime: cold start run ${i + 1}/${o.runs}`);
      // ours: on demand, then with the image's prefetch table
      const once = (ref: string, name: string, extra: string[]): { run: ColdRun; sums: string } => {
        const mnt = path.join(dir, `${name}-mnt-${i}`);
        const cache = path.join(dir, `${name}-cache-${i}`);
        fs.mkdirSync(mnt);
        fs.mkdirSync(cache);
        mounts.push({ mp: mnt, kind: "fuse" });
        const m = o.measure([...TIMEOUT, "node", cli, "mount", ref, mnt, "--plain-http", "--cache-dir", cache, ...extra]);
        const r = o.measure([...TIMEOUT, ...catScript(mnt)]);
        const statsOut = run("node", [cli, "stats", mnt, "--json"]);
        const pid = (JSON.parse(statsOut) as { pid: number }).pid;
        daemons.add(pid);
        const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
        const mountSums = i === 0 ? sums(mnt) : "";
        const u = unmountFuse(mnt);
        if (!u?.last) throw new Error(`runtime: umount ${mnt} gave no metrics`);
        if (u.daemon !== "exited" && u.daemon !== "released by its server") o.log(`runtime: daemon ${pid} after umount: ${u.daemon}`);
        fs.rmSync(cache, { recursive: true, force: true });
        return { run: { mount: m.wall, read: r.wall, bytes: u.last.fetched.bytes, requests: u.last.fetched.requests, rssKiB: Number(hwm ?? NaN) }, sums: mountSums };
      };
      const onDemand = once(nydusRef, "cold", ["--daemon"]);
      cold.push(onDemand.run);
      const withTable = once(prefetchRef, "prefetch", ["--daemon", "--prefetch"]);
      coldPrefetch.push(withTable.run);
      const viaServer = once(nydusRef, "server", ["--server", socket]);
      coldServer.push(viaServer.run);
      const viaServerTable = once(prefetchRef, "server-prefetch", ["--server", socket, "--prefetch"]);
      coldServerPrefetch.push(viaServerTable.run);
      if (i === 0) sameServerBytes = viaServer.sums === onDemand.sums && viaServerTable.sums === onDemand.sums;
      const mountSums = onDemand.sums;
      if (i === 0) samePrefetchBytes = withTable.sums === onDemand.sums;
      // full pull
      const layout = path.join(dir, `pull-${i}`);
      const bundle = path.join(dir, `bundle-${i}`);
      const c = o.measure([...TIMEOUT, "skopeo", "copy", "-q", "--src-tls-verify=false", `docker://${ociRef}`, `oci:${layout}:${TAG}`]);
      const unpack = o.measure([...TIMEOUT, "umoci", "unpack", ...(process.getuid?.() === 0 ? [] : ["--rootless"]), "--image", `${layout}:${TAG}`, bundle]);
      const rr = o.measure([...TIMEOUT, ...catScript(path.join(bundle, "rootfs"))]);
      pulls.push({ copy: c.wall, unpack: unpack.wall, read: rr.wall, bytes: treeBytes(path.join(layout, "blobs")) });
      if (i === 0) sameBytes = sums(path.join(bundle, "rootfs")) === mountSums;
      fs.rmSync(layout, { recursive: true, force: true });
      fs.rmSync(bundle, { recursive: true, force: true });
    }

    // The server unmounts nothing (every run unmounted its mount): SIGTERM ends it.
    const serveExit = new Promise<void>((r) => (serveProc.exitCode !== null ? r() : serveProc.once("exit", () => r())));
    serveProc.kill("SIGTERM");
    await serveExit;

    // ---- (b) warm sequential reads
    o.log("runtime: export --block of the merged bootstrap + blobs for the kernel EROFS mount");
    const blobDir = path.join(dir, "blobs");
    fs.mkdirSync(blobDir);
    for (const l of dataLayers) fs.symlinkSync(blobDataPath(reg.dataDir, l.digest), path.join(blobDir, l.digest.slice("sha256:".length)));
    const img = path.join(dir, "erofs.img");
    t0 = Date.now();
    run("node", [cli, "export", bootstrapFile, "--blob-dir", blobDir, "--block", img]);
    const exportSec = (Date.now() - t0) / 1000;
    const kmnt = path.join(dir, "erofs-mnt");
    fs.mkdirSync(kmnt);
    mounts.push({ mp: kmnt, kind: "erofs" });
    let erofsError = "";
    const er = spawnSync("mount", ["-t", "erofs", "-o", "loop,ro", img, kmnt], { encoding: "utf8" });
    if (er.status !== 0) {
      erofsError = (er.stderr || `status ${er.status}`).trim();
      o.log(`runtime: kernel EROFS mount failed: ${erofsError}`);
    }
    const wmnt = path.join(dir, "warm-mnt");
    const wcache = path.join(dir, "warm-cache");
    fs.mkdirSync(wmnt);
    mounts.push({ mp: wmnt, kind: "fuse" });
    run("node", [cli, "mount", nydusRef, wmnt, "--plain-http", "--cache-dir", wcache, "--daemon"]);
    const wpid = (JSON.parse(run("node", [cli, "stats", wmnt, "--json"])) as { pid: number }).pid;
    daemons.add(wpid);

    /** `stats --json` once the daemon has rewritten its state file (every second) after this call. */
    const freshStats = (mp: string) => {
      const since = Date.now();
      for (;;) {
        const st = JSON.parse(run("node", [cli, "stats", mp, "--json"])) as { updatedAt: string; fetched: { bytes: number; requests: number } };
        if (Date.parse(st.updatedAt) > since || Date.now() - since > 10_000) return st;
        spawnSync("sleep", ["0.2"]);
      }
    };
    const rel = (s: FileSet) => s.paths.map((p) => p.slice(1));
    const workloads = [
      { name: `regular files ≥ 1 MiB (${large.paths.length})`, set: large, argv: (root: string) => ["bash", "-c", `cd "$1" && shift && cat "$@" >/dev/null`, "bash", root, ...rel(large)] },
      { name: `/usr tree (${usr.paths.length} files)`, set: usr, argv: (root: string) => ["bash", "-c", `set -o pipefail; tar -C "$1" -cf - usr | cat >/dev/null`, "bash", root] },
    ];
    o.log("runtime: warm-up pass (fills our cache; SHA-256 of the large files on both mounts)");
    let warmSame: boolean | undefined;
    const sumLarge = (root: string) => run("bash", ["-c", `cd "$1" && shift && sha256sum "$@"`, "bash", root, ...rel(large)]);
    const ourLarge = sumLarge(wmnt);
    if (!erofsError) warmSame = sumLarge(kmnt) === ourLarge;
    for (const w of workloads) {
      run(TIMEOUT[0]!, [...TIMEOUT.slice(1), ...w.argv(wmnt)]);
      if (!erofsError) run(TIMEOUT[0]!, [...TIMEOUT.slice(1), ...w.argv(kmnt)]);
    }
    const statsBefore = freshStats(wmnt);
    const ours = workloads.map(() => [] as number[]);
    const kernel = workloads.map(() => [] as number[]);
    let dropped = true;
    for (let i = 0; i < o.runs; i++) {
      o.log(`runtime: warm read run ${i + 1}/${o.runs}`);
      workloads.forEach((w, j) => {
        dropped = dropCaches() && dropped;
        ours[j]!.push(o.measure([...TIMEOUT, ...w.argv(wmnt)]).wall);
        if (erofsError) return;
        dropped = dropCaches() && dropped;
        kernel[j]!.push(o.measure([...TIMEOUT, ...w.argv(kmnt)]).wall);
      });
    }
    const warmHwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${wpid}/status`, "utf8"))?.[1];
    const wu = unmountFuse(wmnt);
    if (wu?.daemon !== "exited") o.log(`runtime: warm daemon ${wpid} after umount: ${wu?.daemon ?? "umount failed"}`);
    const backendDuringTimed = wu?.last ? wu.last.fetched.requests - statsBefore.fetched.requests : NaN;
    if (isMounted(kmnt)) run("umount", [kmnt]);

    // ---- report
    const coldTotal = (c: ColdRun) => c.mount + c.read;
    const pullTotal = (p: PullRun) => p.copy + p.unpack + p.read;
    const oursCold = median(cold.map(coldTotal));
    const pullCold = median(pulls.map(pullTotal));
    const oursBytes = median(cold.map((c) => c.bytes));
    const denom = startup.chunkBytes + bootLayer.size;
    const bytesRatio = oursBytes / denom;
    const timeRatio = oursCold / pullCold;
    const maxRss = Math.max(...cold.map((c) => c.rssKiB), ...coldPrefetch.map((c) => c.rssKiB), ...coldServer.map((c) => c.rssKiB), ...coldServerPrefetch.map((c) => c.rssKiB)) / 1024;
    const serverRatio = median(coldServer.map(coldTotal)) / pullCold;
    const serverPrefetchRatio = median(coldServerPrefetch.map(coldTotal)) / pullCold;
    const oursPrefetch = median(coldPrefetch.map(coldTotal));
    const prefetchRatio = oursPrefetch / pullCold;
    const prefetchBytes = median(coldPrefetch.map((c) => c.bytes));
    const prefetchDenom = startup.chunkBytes + prefetchBootLayer.size;
    const coldRow = (label: string, runs: ColdRun[]) =>
      `| **${label}** | ${median(runs.map(coldTotal)).toFixed(2)} | ${Math.min(...runs.map(coldTotal)).toFixed(2)} | mount ${median(runs.map((c) => c.mount)).toFixed(2)} + cat ${median(runs.map((c) => c.read)).toFixed(3)} | ${mb(median(runs.map((c) => c.bytes)))} | ${median(runs.map((c) => c.requests))} |`;
    const coldTable = [
      "| cold start | wall s (median) | best s | parts (median s) | fetched MB | requests |",
      "| --- | ---: | ---: | --- | ---: | ---: |",
      coldRow("nydus-ts mount + cat (on demand)", cold),
      coldRow("nydus-ts mount --prefetch + cat (image with a prefetch table)", coldPrefetch),
      coldRow("nydus-ts mount --server + cat (a running nydus-ts serve)", coldServer),
      coldRow("nydus-ts mount --server --prefetch + cat (running serve, prefetch table)", coldServerPrefetch),
      `| **skopeo copy + umoci unpack + cat** | ${pullCold.toFixed(2)} | ${Math.min(...pulls.map(pullTotal)).toFixed(2)} | copy ${median(pulls.map((p) => p.copy)).toFixed(2)} + unpack ${median(pulls.map((p) => p.unpack)).toFixed(2)} + cat ${median(pulls.map((p) => p.read)).toFixed(3)} | ${mb(median(pulls.map((p) => p.bytes)))} | ${ociManifest.layers.length + 2} docs/blobs |`,
    ];
    const mbps = (bytes: number, secs: number[]) => bytes / 1e6 / median(secs);
    const warmTable = [
      "| warm read (page cache dropped) | MB read | nydus-ts FUSE MB/s (median) | best | kernel EROFS MB/s (median) | best | ours / kernel |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...workloads.map((w, j) => {
        const a = mbps(w.set.bytes, ours[j]!);
        const bestA = w.set.bytes / 1e6 / Math.min(...ours[j]!);
        if (erofsError) return `| ${w.name} | ${mb(w.set.bytes)} | ${a.toFixed(0)} | ${bestA.toFixed(0)} | — | — | — |`;
        const b = mbps(w.set.bytes, kernel[j]!);
        return `| ${w.name} | ${mb(w.set.bytes)} | ${a.toFixed(0)} | ${bestA.toFixed(0)} | ${b.toFixed(0)} | ${(w.set.bytes / 1e6 / Math.min(...kernel[j]!)).toFixed(0)} | ${((a / b) * 100).toFixed(0)} % |`;
      }),
    ];
    const warmVerdicts = erofsError
      ? [`- warm throughput ≥ 50 % of the kernel EROFS mount: **NOT measured** (mount -t erofs failed: ${erofsError})`]
      : workloads.map((w, j) => {
          const ratio = mbps(w.set.bytes, ours[j]!) / mbps(w.set.bytes, kernel[j]!);
          return `- warm throughput, ${w.name}: ${mbps(w.set.bytes, ours[j]!).toFixed(0)} vs ${mbps(w.set.bytes, kernel[j]!).toFixed(0)} MB/s → ${(ratio * 100).toFixed(0)} % ≥ 50 % → ${verdict(ratio >= 0.5)}`;
        });
    const show = (ps: string[], n: number) => ps.slice(0, n).join(" ") + (ps.length > n ? ` … (+${ps.length - n})` : "");
    return [
      "## nydus-ts lazy runtime benchmark",
      "",
      `- image: the converter benchmark's source (oci:${srcDir}:${TAG}, ${ociManifest.layers.length} gzip layers, ${mb(ociBytes)} MB), served by ${regVersion} on loopback (plain HTTP, storage in ${path.dirname(reg.dataDir)})`,
      `  - \`bin/nydus-ts.js convert --source oci:SRC:${TAG} --target 127.0.0.1:PORT/bench:nydus --plain-http\`: ${convertSec.toFixed(1)} s; Nydus image ${dataLayers.length} data blobs ${mb(dataLayers.reduce((a, l) => a + l.size, 0))} MB + bootstrap layer ${mb(bootLayer.size)} MB`,
      `  - plain OCI copy pushed with \`skopeo copy oci:SRC:${TAG} docker://127.0.0.1:PORT/bench:oci\` (${pushSec.toFixed(1)} s)`,
      `- CLI processes run ${launcherMode(o.repo)}; work dir ${dir.replace(/\/runtime-[^/]+$/, "")}; runs: ${o.runs}, interleaved (ours, then the reference); median and best shown`,
      "",
      "**(a) Cold start** — read a start-up file set with an empty cache:",
      `- files (${startup.paths.length}, ${mb(startup.bytes)} MB; symlinks resolved in the image's bootstrap): ${show(startup.paths, STARTUP_PATHS.length)}` +
        (missing.length ? `; absent from the image, skipped: ${missing.join(" ")}` : ""),
      "- ours: `nydus-ts mount REF MNT --plain-http --cache-dir EMPTY --daemon` (returns once the mount serves: Node start-up, manifest + bootstrap",
      "  layer fetch, FUSE init), then `cat FILES >/dev/null`; fetched = the daemon's `fetched` from `umount --json` (manifest, bootstrap layer, chunk ranges)",
      "- ours with a prefetch table: the same source converted with `--prefetch-patterns FILE` listing the start-up set (the way a Nydus image is",
      "  built for fast start: the builder records what the container reads first), mounted with `--prefetch`: the daemon fetches those chunks in the",
      "  background from the moment the bootstrap is open (merged ranges, 8 requests in flight), and `cat` reads whatever has not arrived on demand",
      "- full pull: `skopeo copy docker://REF oci:TMP:v1` + `umoci unpack --image TMP:v1 BUNDLE` + the same `cat`; fetched = the pulled layout's blobs",
      "- ours through a resident server: `nydus-ts serve --socket S` started once before the runs (not timed, like nydusd's shared daemon under",
      "  nydus-snapshotter), then `nydus-ts mount REF MNT --server S [--prefetch]`: a small client process asks the server, which fetches the",
      "  manifest and bootstrap and mounts; no daemon process starts per mount (each run still uses a fresh cache dir and fetches everything)",
      `- contents read through the mounts ${sameBytes && samePrefetchBytes && sameServerBytes ? "identical (SHA-256)" : "**DIFFER**"} to the unpacked image's; daemon peak RSS ${maxRss.toFixed(0)} MiB`,
      "",
      coldTable.join("\n"),
      "",
      `**(b) Warm sequential reads** — our mount (cache filled by a warm-up pass) vs a kernel EROFS mount (\`nydus-ts export --block\` of the merged`,
      `bootstrap + the registry's blob files, ${exportSec.toFixed(1)} s, \`mount -t erofs -o loop,ro\`); ${dropped ? "page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`) before each read" : "**page cache NOT dropped** (not root)"};`,
      "both backing stores (our blob cache dir, the EROFS image file) live in the work dir, so on tmpfs they stay in memory: this compares the",
      `read paths (FUSE daemon vs in-kernel EROFS), not the disk. Regular files ≥ 1 MiB: one \`cat F… >/dev/null\`; /usr: \`tar -C MNT -cf - usr | cat >/dev/null\`.`,
      `Backend requests of our mount during the timed passes: ${backendDuringTimed} (served from its cache); daemon peak RSS ${(Number(warmHwm ?? NaN) / 1024).toFixed(0)} MiB;`,
      `large files ${warmSame === undefined ? "not compared" : warmSame ? "identical (SHA-256) on both mounts" : "**DIFFER** between the mounts"}.`,
      "",
      warmTable.join("\n"),
      "",
      "Targets:",
      `- bytes fetched: ${mb(oursBytes)} MB ≤ 1.2 × (${startup.chunks} chunks ${mb(startup.chunkBytes)} MB compressed + bootstrap layer ${mb(bootLayer.size)} MB = ${mb(denom)} MB) → ${bytesRatio.toFixed(2)}× → ${verdict(bytesRatio <= 1.2)}` +
        ` (the full pull fetched ${mb(median(pulls.map((p) => p.bytes)))} MB)`,
      `- bytes fetched with the prefetch table: ${mb(prefetchBytes)} MB ≤ 1.2 × ${mb(prefetchDenom)} MB → ${(prefetchBytes / prefetchDenom).toFixed(2)}× → ${verdict(prefetchBytes / prefetchDenom <= 1.2)}`,
      `- cold start, on demand: ${oursCold.toFixed(2)} s vs full pull ${pullCold.toFixed(2)} s → ${(timeRatio * 100).toFixed(1)} % ≤ 5 % → ${verdict(timeRatio <= 0.05)}`,
      `- cold start with the image's prefetch table: ${oursPrefetch.toFixed(2)} s vs full pull ${pullCold.toFixed(2)} s → ${(prefetchRatio * 100).toFixed(1)} % ≤ 5 % → ${verdict(prefetchRatio <= 0.05)}`,
      `- cold start through a running server, on demand: ${median(coldServer.map(coldTotal)).toFixed(2)} s → ${(serverRatio * 100).toFixed(1)} % ≤ 5 % → ${verdict(serverRatio <= 0.05)}`,
      `- cold start through a running server, prefetch table: ${median(coldServerPrefetch.map(coldTotal)).toFixed(2)} s → ${(serverPrefetchRatio * 100).toFixed(1)} % ≤ 5 % → ${verdict(serverPrefetchRatio <= 0.05)}`,
      ...warmVerdicts,
      "",
    ].join("\n");
  } finally {
    await cleanup();
    process.removeListener("exit", onExit);
  }
}
