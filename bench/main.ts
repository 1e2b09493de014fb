/**
 * `npm run bench`: nydus-ts `create` against the C reference pipeline
 * (`tar -x` + `mkfs.erofs --chunksize --blobdev`, erofs-utils 1.5), side by side.
 *
 * Inputs: (a) a Debian bookworm minbase rootfs (debootstrap, cached as a tar; a synthetic
 * rootfs-like tree when debootstrap or the network fails), (b) a node_modules-style tree of
 * many small files, (c) one large file (memory check). Every command runs under
 * `/usr/bin/time -v` for peak RSS; wall time is measured here around it.
 *
 * Environment knobs (all optional):
 *   BENCH_RUNS=5            runs per measurement (the table shows the median and the best)
 *   BENCH_WORKDIR=DIR       scratch directory (default: /dev/shm when it is a writable tmpfs, else os.tmpdir())
 *   BENCH_BIG_MIB=1536      size of the single-file layer of the memory check (0 skips it)
 *   BENCH_NM_FILES=45000    files in the node_modules-style tree
 *   BENCH_CACHE=DIR         input cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/nydus-ts-bench)
 *   BENCH_NO_DEBOOTSTRAP=1  use the synthetic rootfs even when debootstrap would work
 *   BENCH_CPU_PROF=DIR      also run each tar create once more with --cpu-prof into DIR (not timed)
 *   BENCH_CONVERT=0         skip the converter benchmark (bench/convert.ts: convert of a 3-layer OCI image vs the codec floor)
 *   BENCH_CONVERT_RUNS=N    runs of the converter benchmark (default: BENCH_RUNS)
 *   BENCH_RUNTIME=0         skip the lazy-runtime benchmark (bench/runtime.ts: FUSE mount cold start and warm reads vs a full
 *                           pull and a kernel EROFS mount, on the converter benchmark's image in a loopback docker-registry)
 *   BENCH_RUNTIME_RUNS=N    runs of the lazy-runtime benchmark (default 3)
 *   BENCH_ONLY=runtime      run only the lazy-runtime benchmark (the source image must be cached); prints its section,
 *                           does not write bench/results.md
 *   BENCH_ONLY=convert      the same for the converter benchmark
 */
import { spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { benchConvert } from "./convert.ts";
import { benchRuntime } from "./runtime.ts";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(REPO, "bin", "nydus-ts.js");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1536);
const NM_FILES = Number(process.env.BENCH_NM_FILES ?? 45000);
const CACHE = process.env.BENCH_CACHE ?? path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "nydus-ts-bench");
const RSS_LIMIT_MIB = 256;
const LOAD_AT_START = os.loadavg().map((x) => x.toFixed(2)).join(" ");
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

function pickWorkdir(): string {
  if (process.env.BENCH_WORKDIR) return process.env.BENCH_WORKDIR;
  try {
    fs.accessSync("/dev/shm", fs.constants.W_OK);
    if (fsType("/dev/shm") === "tmpfs" && os.freemem() > 8 * 2 ** 30) return "/dev/shm";
  } catch {
    // no usable /dev/shm: fall through to the temp dir
  }
  return os.tmpdir();
}

function fsType(p: string): string {
  const r = spawnSync("stat", ["-f", "-c", "%T", p], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

const sh = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "";
};

// ---------------------------------------------------------------- measurement

interface Sample {
  wall: number;
  user: number;
  sys: number;
  rssKiB: number;
}

/** Runs argv under /usr/bin/time -v; throws on failure. */
function measure(argv: string[], opts: { cwd?: string } = {}): Sample {
  const timeFile = path.join(os.tmpdir(), `nydus-bench-time-${process.pid}.txt`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-v", "-o", timeFile, ...argv], { cwd: opts.cwd, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const text = fs.existsSync(timeFile) ? fs.readFileSync(timeFile, "utf8") : "";
  fs.rmSync(timeFile, { force: true });
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed (${r.status}): ${r.stderr}\n${text}`);
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return {
    wall,
    user: num(/User time \(seconds\): ([\d.]+)/),
    sys: num(/System time \(seconds\): ([\d.]+)/),
    rssKiB: num(/Maximum resident set size \(kbytes\): (\d+)/),
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface Row {
  input: string;
  tool: string;
  inputBytes: number;
  samples: Sample[];
  /** Output size (blob + bootstrap / blob + meta) of the last run. */
  outBytes?: number;
  note?: string;
}

const rows: Row[] = [];
function record(input: string, tool: string, inputBytes: number, note?: string): Row {
  const row: Row = { input, tool, inputBytes, samples: [], note };
  rows.push(row);
  return row;
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isFile()) n += fs.statSync(path.join(dir, e.name)).size;
  return n;
}

// ---------------------------------------------------------------- inputs

/** Debian minbase rootfs tar: cached; built with debootstrap (root + network), else synthetic. */
function rootfsTar(): { tar: string; label: string } {
  fs.mkdirSync(CACHE, { recursive: true });
  const cached = path.join(CACHE, "rootfs-bookworm-minbase.tar");
  if (fs.existsSync(cached) && !process.env.BENCH_NO_DEBOOTSTRAP) return { tar: cached, label: "debian-minbase" };
  const synthetic = path.join(CACHE, "rootfs-synthetic-v1.tar");
  const fallback = (why: string) => {
    log(`rootfs: ${why}; using a SYNTHETIC rootfs-like tree instead`);
    if (!fs.existsSync(synthetic)) {
      execFileSync("node", ["--import", "tsx", path.join(REPO, "bench", "gen_rootfs.ts"), synthetic + ".tmp"], { cwd: REPO, stdio: "inherit" });
      fs.renameSync(synthetic + ".tmp", synthetic);
    }
    return { tar: synthetic, label: "synthetic-rootfs" };
  };
  if (process.env.BENCH_NO_DEBOOTSTRAP) return fallback("BENCH_NO_DEBOOTSTRAP is set");
  if (process.getuid?.() !== 0) return fallback("debootstrap needs root");
  if (!sh("sh", ["-c", "command -v debootstrap"])) return fallback("debootstrap is not installed");
  // On disk, not tmpfs: debootstrap runs the packages' scripts in a chroot (needs exec and dev).
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-bench-debootstrap-"));
  try {
    log(`rootfs: debootstrap --variant=minbase bookworm (once, ~30-70 s; cached in ${CACHE})`);
    const r = spawnSync("debootstrap", ["--variant=minbase", "bookworm", root, "http://deb.debian.org/debian"], { stdio: ["ignore", "ignore", "inherit"], timeout: 600_000 });
    if (r.status !== 0) return fallback(`debootstrap failed (status ${r.status}, network unavailable?)`);
    execFileSync("tar", ["--numeric-owner", "-C", root, "-cf", cached + ".tmp", "."]);
    fs.renameSync(cached + ".tmp", cached);
    return { tar: cached, label: "debian-minbase" };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function nodeModulesTar(): string {
  const file = path.join(CACHE, `node-modules-${NM_FILES}-seed1-v1.tar`);
  if (!fs.existsSync(file)) {
    log(`node_modules: generating ${NM_FILES} files (cached in ${CACHE})`);
    execFileSync("node", ["--import", "tsx", path.join(REPO, "bench", "gen_node_modules.ts"), file + ".tmp", String(NM_FILES), "1"], { cwd: REPO, stdio: "inherit" });
    fs.renameSync(file + ".tmp", file);
  }
  return file;
}

// ---------------------------------------------------------------- runs

function createArgs(src: string, out: string, compressor: string, extra: string[] = []): string[] {
  return ["node", CLI, "create", src, "--bootstrap", path.join(out, "bootstrap"), "--blob-dir", path.join(out, "blobs"), "--compressor", compressor, ...extra];
}

function fresh(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function outSize(out: string): number {
  return fs.statSync(path.join(out, "bootstrap")).size + dirBytes(path.join(out, "blobs"));
}

function benchInput(label: string, tar: string, work: string): void {
  const size = fs.statSync(tar).size;
  const none = record(label, "nydus-ts create (tar, none)", size);
  const zstd = record(label, "nydus-ts create (tar, zstd)", size);
  const dirNone = record(label, "nydus-ts create (dir, none)", size, "input is the extracted tree; MB/s still uses the tar size");
  const tarX = record(label, "ref: tar -x", size);
  const mkfs = record(label, "ref: mkfs.erofs", size);
  const ref = record(label, "**ref: tar -x + mkfs.erofs**", size);
  const out = path.join(work, "out");
  const tree = path.join(work, "tree");
  for (let i = 0; i < RUNS; i++) {
    log(`${label}: run ${i + 1}/${RUNS}`);
    for (const [row, comp] of [[none, "none"], [zstd, "zstd"]] as const) {
      fresh(out);
      row.samples.push(measure(createArgs(tar, out, comp)));
      row.outBytes = outSize(out);
    }
    fresh(tree);
    fresh(out);
    const a = measure(["tar", "--numeric-owner", "-xf", tar, "-C", tree]);
    const b = measure(["mkfs.erofs", "--quiet", "--chunksize=1048576", `--blobdev=${path.join(out, "blob")}`, path.join(out, "meta"), tree]);
    tarX.samples.push(a);
    mkfs.samples.push(b);
    ref.samples.push({ wall: a.wall + b.wall, user: a.user + b.user, sys: a.sys + b.sys, rssKiB: Math.max(a.rssKiB, b.rssKiB) });
    ref.outBytes = mkfs.outBytes = dirBytes(out);
    fresh(out);
    dirNone.samples.push(measure(createArgs(tree, out, "none", ["--type", "dir"])));
    dirNone.outBytes = outSize(out);
  }
  if (process.env.BENCH_CPU_PROF) {
    for (const comp of ["none", "zstd"]) {
      const profDir = path.join(process.env.BENCH_CPU_PROF, `${label}-${comp}`);
      fresh(out);
      measure(["node", "--cpu-prof", `--cpu-prof-dir=${profDir}`, ...createArgs(tar, out, comp).slice(1)]);
      log(`cpu profile: ${profDir}`);
    }
  }
  fs.rmSync(tree, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
}

/** One large file, generated into the work dir: ours (none, zstd) and the reference, twice each (it is the slowest input). */
function benchBig(work: string): void {
  const tar = path.join(work, "big-layer.tar");
  log(`big layer: generating ${BIG_MIB} MiB`);
  execFileSync("node", ["--import", "tsx", path.join(REPO, "bench", "gen_big_layer.ts"), tar, String(BIG_MIB), "7"], { cwd: REPO, stdio: "inherit" });
  const size = fs.statSync(tar).size;
  const label = `1 file, ${BIG_MIB} MiB`;
  const out = path.join(work, "out");
  const tree = path.join(work, "tree");
  const none = record(label, "nydus-ts create (tar, none)", size);
  const zstd = record(label, "nydus-ts create (tar, zstd)", size);
  const ref = record(label, "**ref: tar -x + mkfs.erofs**", size);
  const parts: string[] = [];
  for (let i = 0; i < Math.min(RUNS, 2); i++) {
    for (const [row, comp] of [[none, "none"], [zstd, "zstd"]] as const) {
      log(`big layer: run ${i + 1}: create --compressor ${comp}`);
      fresh(out);
      row.samples.push(measure(createArgs(tar, out, comp)));
      row.outBytes = outSize(out);
    }
    log(`big layer: run ${i + 1}: reference`);
    fresh(out);
    fresh(tree);
    const a = measure(["tar", "--numeric-owner", "-xf", tar, "-C", tree]);
    const b = measure(["mkfs.erofs", "--quiet", "--chunksize=1048576", `--blobdev=${path.join(out, "blob")}`, path.join(out, "meta"), tree]);
    parts.push(`${a.wall.toFixed(2)} + ${b.wall.toFixed(2)} s`);
    ref.samples.push({ wall: a.wall + b.wall, user: a.user + b.user, sys: a.sys + b.sys, rssKiB: Math.max(a.rssKiB, b.rssKiB) });
    ref.outBytes = dirBytes(out);
    fs.rmSync(tree, { recursive: true, force: true });
  }
  ref.note = `tar -x + mkfs: ${parts.join(", ")}`;
  fs.rmSync(tar, { force: true });
  fs.rmSync(out, { recursive: true, force: true });
}

// ---------------------------------------------------------------- report

function table(): string {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const lines = [
    "| input | tool | wall s (median) | best s | MB/s (tar/median) | CPU s (user+sys) | peak RSS MiB | output MB |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const wall = median(r.samples.map((s) => s.wall));
    const best = Math.min(...r.samples.map((s) => s.wall));
    const cpu = median(r.samples.map((s) => s.user + s.sys));
    const rss = Math.max(...r.samples.map((s) => s.rssKiB)) / 1024;
    lines.push(
      `| ${r.input} | ${r.tool} | ${wall.toFixed(2)} | ${best.toFixed(2)} | ${r.inputBytes ? (r.inputBytes / 1e6 / wall).toFixed(0) : ""} | ${cpu.toFixed(2)} | ${rss.toFixed(0)} | ${r.outBytes === undefined ? "" : mb(r.outBytes)} |`,
    );
  }
  return lines.join("\n");
}

function verdicts(): string[] {
  const out: string[] = [];
  const inputs = [...new Set(rows.map((r) => r.input))];
  for (const input of inputs) {
    const get = (tool: string) => rows.find((r) => r.input === input && r.tool.includes(tool));
    const ours = get("(tar, none)");
    const ref = get("tar -x + mkfs");
    if (ours && ref) {
      const a = median(ours.samples.map((s) => s.wall));
      const b = median(ref.samples.map((s) => s.wall));
      out.push(`- ${input}: create --compressor none ${a.toFixed(2)} s vs tar -x + mkfs.erofs ${b.toFixed(2)} s → ${a <= b ? "**met**" : "**NOT met**"} (${(a / b).toFixed(2)}×)`);
    }
  }
  for (const r of rows.filter((r) => r.input.startsWith("1 file") && r.tool.startsWith("nydus-ts"))) {
    const rss = Math.max(...r.samples.map((s) => s.rssKiB)) / 1024;
    out.push(`- peak RSS, ${r.input}, ${r.tool}: ${rss.toFixed(0)} MiB < ${RSS_LIMIT_MIB} MiB → ${rss < RSS_LIMIT_MIB ? "**met**" : "**NOT met**"}`);
  }
  for (const r of rows.filter((r) => !r.input.startsWith("1 file") && r.tool.startsWith("nydus-ts"))) {
    const rss = Math.max(...r.samples.map((s) => s.rssKiB)) / 1024;
    if (rss >= RSS_LIMIT_MIB) out.push(`- note: ${r.input}, ${r.tool} peaked at ${rss.toFixed(0)} MiB (metadata of many files, not layer size)`);
  }
  return out;
}

function environment(work: string, inputs: string[]): string[] {
  const dpkg = (p: string) => sh("dpkg-query", ["-W", "-f", "${Version}", p]) || "?";
  const commit = sh("git", ["-C", REPO, "rev-parse", "--short", "HEAD"]) || "?";
  const dirty = sh("git", ["-C", REPO, "status", "--porcelain", "--untracked-files=no", "src", "bin", "native"]) ? " (+ uncommitted changes in src/bin/native)" : "";
  const cpu = (fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ?? [])[1] ?? "?";
  return [
    `- date: ${new Date().toISOString()}; load average at start ${LOAD_AT_START}, at end ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (other work on the machine skews the numbers)`,
    `- machine: ${os.cpus().length} cores (nproc ${sh("nproc", [])}), ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, kernel ${os.release()}`,
    `- versions: nydus-ts ${commit}${dirty}, node ${process.version}, erofs-utils ${dpkg("erofs-utils")}, GNU tar ${dpkg("tar")}, libzstd ${dpkg("libzstd1")}`,
    `- work dir: ${work} (${fsType(work)}); inputs read from the page cache; runs: ${RUNS} (median and best shown; RSS is the max over runs)`,
    "  (tmpfs by default: on this kind of VM's ext4 disk each new file costs ~1 ms of kernel time on fresh blocks, so `tar -x` of the",
    "  node_modules tree took 25–45 s there, which measures the disk, not the tools; `BENCH_WORKDIR=/tmp npm run bench` measures on disk)",
    `- inputs: ${inputs.join("; ")}`,
    "- ours: `bin/nydus-ts.js create SRC --bootstrap B --blob-dir D --compressor C` (blake3, 1 MiB chunks), one process per run (Node start-up included; the launcher runs the compiled dist/)",
    "- reference: `tar --numeric-owner -xf TAR -C DIR` then `mkfs.erofs --quiet --chunksize=1048576 --blobdev=BLOB META DIR`",
  ];
}

// ---------------------------------------------------------------- main

const work = path.join(pickWorkdir(), `nydus-bench-${process.pid}`);
fs.mkdirSync(work, { recursive: true });
const started = Date.now();
const runtimeOptions = (rootfs: { tar: string; label: string }) => ({
  repo: REPO, cli: CLI, cache: CACHE, work, runs: Number(process.env.BENCH_RUNTIME_RUNS ?? 3), rootfs, measure, log,
});
const convertOptions = (rootfs: { tar: string; label: string }) => ({
  repo: REPO, cli: CLI, cache: CACHE, work, runs: Number(process.env.BENCH_CONVERT_RUNS ?? RUNS), rootfs, measure, log,
});
const only = process.env.BENCH_ONLY;
if (only === "runtime" || only === "convert") {
  try {
    const md = only === "runtime" ? await benchRuntime(runtimeOptions(rootfsTar())) : benchConvert(convertOptions(rootfsTar()));
    process.stdout.write("\n" + md + `\nTotal bench time: ${((Date.now() - started) / 1000).toFixed(0)} s.\n`);
    log(`BENCH_ONLY=${only}: bench/results.md not written`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.exit();
}
try {
  const inputs: string[] = [];
  // Warm-up (not recorded): tsx compiles and caches the sources on first use.
  const tiny = path.join(work, "warmup.tar");
  execFileSync("node", ["--import", "tsx", path.join(REPO, "bench", "gen_big_layer.ts"), tiny, "1", "1"], { cwd: REPO });
  for (const comp of ["none", "zstd"]) measure(createArgs(tiny, fresh(path.join(work, "out")), comp));
  fs.rmSync(tiny);
  const startup = record("—", "nydus-ts --version (start-up only)", 0);
  for (let i = 0; i < RUNS; i++) startup.samples.push(measure(["node", CLI, "--version"]));

  const rootfs = rootfsTar();
  const nm = nodeModulesTar();
  const count = (t: string) => Number(sh("sh", ["-c", `tar -tf '${t}' | wc -l`]));
  inputs.push(`${rootfs.label} ${(fs.statSync(rootfs.tar).size / 1e6).toFixed(0)} MB tar, ${count(rootfs.tar)} entries${rootfs.label.startsWith("synthetic") ? " (**SYNTHETIC: debootstrap unavailable**)" : ""}`);
  inputs.push(`node_modules-style ${(fs.statSync(nm).size / 1e6).toFixed(0)} MB tar, ${count(nm)} entries (${NM_FILES} files, seeded)`);
  benchInput(rootfs.label, rootfs.tar, work);
  benchInput("node_modules", nm, work);
  if (BIG_MIB > 0) {
    inputs.push(`one ${BIG_MIB} MiB file (1/3 random, 2/3 text, no duplicate chunks), generated into the work dir`);
    benchBig(work);
  }
  const convertMd =
    process.env.BENCH_CONVERT === "0"
      ? ""
      : benchConvert(convertOptions(rootfs));
  const runtimeMd = process.env.BENCH_RUNTIME === "0" ? "" : await benchRuntime(runtimeOptions(rootfs));

  const md = [
    "# nydus-ts create benchmark",
    "",
    ...environment(work, inputs),
    "",
    table(),
    "",
    ...rows.filter((r) => r.note).map((r) => `- ${r.input}, ${r.tool.replace(/\*/g, "")}: ${r.note}`),
    "",
    "Targets:",
    ...verdicts(),
    "",
    ...(convertMd ? [convertMd] : []),
    ...(runtimeMd ? [runtimeMd] : []),
    `Total bench time: ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    "",
  ].join("\n");
  process.stdout.write("\n" + md);
  fs.writeFileSync(path.join(REPO, "bench", "results.md"), md);
  log("wrote bench/results.md");
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
