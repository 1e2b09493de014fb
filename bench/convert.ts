/**
 * Converter benchmark (part of `npm run bench`): `nydus-ts convert` of a multi-layer OCI image
 * against the codec floor, i.e. what any converter must at least do per layer:
 * `gzip -dc LAYER | zstd -1 -T1 -q | b3sum` (decompress, recompress, digest), run layer after layer.
 *
 * Source image (built once, cached in the bench cache dir as an OCI image layout, tag `v1`):
 *   layer 1  the debootstrap bookworm minbase rootfs tar (the cached one; synthetic fallback as in main.ts)
 *   layer 2  an application layer: node_modules-style tree of BENCH_CONVERT_APP_FILES (15,000) files, seed 2
 *   layer 3  a small config layer: new files, a whiteout (etc/motd), an opaque dir (var/cache/apt/archives)
 *            and a whiteout of one layer-2 package
 * Layers are compressed with `gzip -6 -n` (GNU gzip); the config holds the diff ids (sha256 of each tar).
 *
 * Knobs: BENCH_CONVERT_RUNS (default: BENCH_RUNS), BENCH_CONVERT_APP_FILES (15000),
 * BENCH_CONVERT=0 skips this part, BENCH_CPU_PROF=DIR also writes one `--cpu-prof` profile of convert.
 */
import { spawnSync, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TarWriter } from "./tar_writer.ts";

export interface Sample {
  wall: number;
  user: number;
  sys: number;
  rssKiB: number;
}

export interface ConvertBenchOptions {
  repo: string;
  cli: string;
  cache: string;
  work: string;
  runs: number;
  rootfs: { tar: string; label: string };
  /** main.ts's `/usr/bin/time -v` wrapper. */
  measure: (argv: string[]) => Sample;
  log: (s: string) => void;
}

const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const TAG = "v1";

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

interface SourceLayer {
  name: string;
  tarBytes: number;
  entries: number;
  regularFiles: number;
  blob: Desc;
}

interface SourceImage {
  dir: string;
  layers: SourceLayer[];
  gzip: string;
}

function fileSha256(file: string): string {
  const h = crypto.createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buf = Buffer.allocUnsafe(4 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function putJson(dir: string, value: unknown, mediaType: string): Desc {
  const bytes = Buffer.from(JSON.stringify(value));
  const hex = crypto.createHash("sha256").update(bytes).digest("hex");
  fs.writeFileSync(path.join(dir, "blobs", "sha256", hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/** `gzip -6 -n` of a tar into the layout; returns its descriptor. */
function putGzipLayer(dir: string, tar: string): Desc {
  const tmp = path.join(dir, "blobs", "layer.tmp");
  const out = fs.openSync(tmp, "w");
  try {
    const r = spawnSync("gzip", ["-6", "-n", "-c", tar], { stdio: ["ignore", out, "pipe"] });
    if (r.status !== 0) throw new Error(`gzip ${tar} failed: ${r.stderr}`);
  } finally {
    fs.closeSync(out);
  }
  const hex = fileSha256(tmp);
  fs.renameSync(tmp, path.join(dir, "blobs", "sha256", hex));
  return { mediaType: OCI_LAYER, digest: `sha256:${hex}`, size: fs.statSync(path.join(dir, "blobs", "sha256", hex)).size };
}

function tarListing(tar: string): { entries: number; regularFiles: number; names: string[] } {
  const r = spawnSync("tar", ["-tvf", tar], { encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`tar -tvf ${tar} failed: ${r.stderr}`);
  const lines = r.stdout.split("\n").filter(Boolean);
  const names = spawnSync("tar", ["-tf", tar], { encoding: "utf8", maxBuffer: 1 << 30 }).stdout.split("\n").filter(Boolean);
  return { entries: lines.length, regularFiles: lines.filter((l) => l.startsWith("-")).length, names };
}

/** Layer 3: config files, a file whiteout, an opaque directory, a whiteout of an app package. */
function writeConfigLayer(tar: string, appPackage: string): void {
  const fd = fs.openSync(tar, "w");
  try {
    const w = new TarWriter(fd);
    const file = (name: string, text: string, mode = 0o644) => w.add({ name, type: "file", data: Buffer.from(text), mode });
    const dir = (name: string) => w.add({ name, type: "dir", mode: 0o755 });
    dir("etc");
    file("etc/.wh.motd", "");
    dir("etc/app");
    file("etc/app/config.json", JSON.stringify({ listen: "0.0.0.0:8080", logLevel: "info", workers: 4 }, null, 2) + "\n");
    file("etc/app/env", "NODE_ENV=production\nPORT=8080\n");
    dir("var");
    dir("var/cache");
    dir("var/cache/apt");
    dir("var/cache/apt/archives");
    file("var/cache/apt/archives/.wh..wh..opq", "");
    dir("var/cache/apt/archives/partial");
    dir("node_modules");
    file(`node_modules/.wh.${appPackage}`, "");
    file("entrypoint.sh", "#!/bin/sh\nexec node /node_modules/.bin/server \"$@\"\n", 0o755);
    w.end();
  } finally {
    fs.closeSync(fd);
  }
}

/** Builds (once) the source OCI layout in the cache; returns its description. */
function sourceImage(o: ConvertBenchOptions, appFiles: number): SourceImage {
  const dir = path.join(o.cache, `oci-src-${o.rootfs.label}-app${appFiles}-v1`);
  const metaFile = path.join(dir, "bench-meta.json");
  if (fs.existsSync(metaFile)) return JSON.parse(fs.readFileSync(metaFile, "utf8")) as SourceImage;

  const appTar = path.join(o.cache, `node-modules-${appFiles}-seed2-v1.tar`);
  if (!fs.existsSync(appTar)) {
    o.log(`convert: generating the application layer (${appFiles} files, cached in ${o.cache})`);
    execFileSync("node", ["--import", "tsx", path.join(o.repo, "bench", "gen_node_modules.ts"), appTar + ".tmp", String(appFiles), "2"], { cwd: o.repo, stdio: "inherit" });
    fs.renameSync(appTar + ".tmp", appTar);
  }
  o.log(`convert: building the source OCI image (gzip -6 -n; once, cached in ${dir})`);
  const tmp = dir + ".tmp";
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(tmp, "blobs", "sha256"), { recursive: true });
  fs.writeFileSync(path.join(tmp, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));

  const app = tarListing(appTar);
  // A top-level package of layer 2 that layer 3 deletes.
  const pkg = app.names.map((n) => /^node_modules\/([^@./][^/]*)\/$/.exec(n)?.[1]).find((n) => n !== undefined);
  if (!pkg) throw new Error("convert: no top-level package in the application layer");
  const configTar = path.join(tmp, "config-layer.tar");
  writeConfigLayer(configTar, pkg);

  const layers: SourceLayer[] = [];
  const diffIds: string[] = [];
  for (const [name, tar] of [
    [`${o.rootfs.label} rootfs`, o.rootfs.tar],
    [`app (node_modules, ${appFiles} files)`, appTar],
    ["config (+ whiteouts)", configTar],
  ] as const) {
    const list = tar === appTar ? app : tarListing(tar);
    diffIds.push(`sha256:${fileSha256(tar)}`);
    layers.push({ name, tarBytes: fs.statSync(tar).size, entries: list.entries, regularFiles: list.regularFiles, blob: putGzipLayer(tmp, tar) });
  }
  fs.rmSync(configTar);
  const config = putJson(
    tmp,
    {
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "NODE_ENV=production"], Entrypoint: ["/entrypoint.sh"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: layers.map((l) => ({ created: "2026-01-01T00:00:00Z", created_by: l.name })),
    },
    OCI_CONFIG,
  );
  const manifest = putJson(tmp, { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layers.map((l) => l.blob) }, OCI_MANIFEST);
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...manifest, annotations: { "org.opencontainers.image.ref.name": TAG } }] };
  fs.writeFileSync(path.join(tmp, "index.json"), JSON.stringify(index));
  const gzip = spawnSync("gzip", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0] ?? "gzip";
  const meta: SourceImage = { dir, layers, gzip };
  fs.writeFileSync(path.join(tmp, "bench-meta.json"), JSON.stringify(meta, null, 2));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return meta;
}

// ---------------------------------------------------------------- the converted image

const readJson = <T>(layout: string, digest: string): T => JSON.parse(fs.readFileSync(path.join(layout, "blobs", "sha256", digest.replace(/^sha256:/, "")), "utf8")) as T;

interface Converted {
  layers: Desc[];
  dataBlobBytes: number;
  bootstrapLayerBytes: number;
  check: string;
}

/** Reads the Nydus manifest of DST and checks its merged bootstrap against the blobs. */
function inspectConverted(o: ConvertBenchOptions, dst: string): Converted {
  const index = JSON.parse(fs.readFileSync(path.join(dst, "index.json"), "utf8")) as { manifests: Desc[] };
  let root = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === TAG);
  if (!root) throw new Error(`convert: no tag ${TAG} in ${dst}/index.json`);
  if (root.mediaType.includes("index") || root.mediaType.includes("list")) root = readJson<{ manifests: Desc[] }>(dst, root.digest).manifests[0]!;
  const manifest = readJson<{ layers: Desc[] }>(dst, root.digest);
  const boot = manifest.layers.at(-1)!;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-bench-boot-"));
  try {
    execFileSync("tar", ["-xzf", path.join(dst, "blobs", "sha256", boot.digest.slice(7)), "-C", tmp, "image/image.boot"]);
    const r = spawnSync("node", [o.cli, "check", path.join(tmp, "image", "image.boot"), "--blob-dir", path.join(dst, "blobs", "sha256"), "--json"], { encoding: "utf8", maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`convert: check of the converted image failed (${r.status}): ${r.stderr}${r.stdout}`);
    const rep = JSON.parse(r.stdout) as { ok: boolean; version: number; nodes: number; files: number; chunks: number; blobs: unknown[] };
    if (!rep.ok) throw new Error(`convert: check reported not ok: ${r.stdout}`);
    return {
      layers: manifest.layers,
      dataBlobBytes: manifest.layers.slice(0, -1).reduce((a, l) => a + l.size, 0),
      bootstrapLayerBytes: boot.size,
      check: `\`check --blob-dir\` OK: RAFS v${rep.version}, ${rep.nodes} nodes, ${rep.files} regular files, ${rep.chunks} distinct chunks, ${rep.blobs.length} blobs verified`,
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- runs

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function fresh(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

interface Row {
  tool: string;
  samples: Sample[];
  note: string;
}

/** Runs the converter benchmark; returns the markdown section for bench/results.md. */
export function benchConvert(o: ConvertBenchOptions): string {
  const appFiles = Number(process.env.BENCH_CONVERT_APP_FILES ?? 15000);
  const src = sourceImage(o, appFiles);
  const blobs = src.layers.map((l) => path.join(src.dir, "blobs", "sha256", l.blob.digest.slice(7)));
  for (const b of blobs) execFileSync("cat", [b], { stdio: ["ignore", "ignore", "inherit"] }); // page cache, like main.ts's inputs

  const dst = path.join(o.work, "convert-dst");
  const wd = path.join(o.work, "convert-work");
  const convertArgv = (node: string[] = []) => ["node", ...node, o.cli, "convert", "--source", `oci:${src.dir}:${TAG}`, "--target", `oci:${dst}:${TAG}`, "--json", "--work-dir", wd];
  const pipeline = (level: number) => (blob: string) => ["bash", "-c", `set -euo pipefail; gzip -dc '${blob}' | zstd -${level} -T1 -q | b3sum >/dev/null`];
  const gunzip = (blob: string) => ["bash", "-c", `set -euo pipefail; gzip -dc '${blob}' >/dev/null`];
  const ours: Row = { tool: "**nydus-ts convert** (zstd, blake3, 1 MiB chunks)", samples: [], note: "one process, Node start-up included" };
  const floor: Row = { tool: "**floor: gzip -dc \\| zstd -1 -T1 \\| b3sum**", samples: [], note: "sum over the layers, one after the other" };
  const floor3: Row = { tool: "floor with zstd -3 (our chunk level)", samples: [], note: "as above with `zstd -3`" };
  const gz: Row = { tool: "gzip -dc alone", samples: [], note: "decompression only, sum over the layers" };

  const sumLayers = (argv: (blob: string) => string[]): Sample => {
    const s = blobs.map((b) => o.measure(argv(b)));
    return { wall: s.reduce((a, x) => a + x.wall, 0), user: s.reduce((a, x) => a + x.user, 0), sys: s.reduce((a, x) => a + x.sys, 0), rssKiB: Math.max(...s.map((x) => x.rssKiB)) };
  };

  for (let i = 0; i < o.runs; i++) {
    o.log(`convert: run ${i + 1}/${o.runs}`);
    fs.rmSync(dst, { recursive: true, force: true });
    fresh(wd);
    ours.samples.push(o.measure(convertArgv()));
    floor.samples.push(sumLayers(pipeline(1)));
    floor3.samples.push(sumLayers(pipeline(3)));
    gz.samples.push(sumLayers(gunzip));
  }
  o.log("convert: checking the converted image");
  const out = inspectConverted(o, dst);

  if (process.env.BENCH_CPU_PROF) {
    const profDir = path.join(process.env.BENCH_CPU_PROF, "convert");
    fs.rmSync(dst, { recursive: true, force: true });
    fresh(wd);
    o.measure(convertArgv(["--cpu-prof", `--cpu-prof-dir=${profDir}`]));
    o.log(`cpu profile: ${profDir}`);
  }
  fs.rmSync(dst, { recursive: true, force: true });
  fs.rmSync(wd, { recursive: true, force: true });

  // ---- report
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const srcTar = src.layers.reduce((a, l) => a + l.tarBytes, 0);
  const srcGz = src.layers.reduce((a, l) => a + l.blob.size, 0);
  const wall = (r: Row) => median(r.samples.map((s) => s.wall));
  const cpu = (r: Row) => median(r.samples.map((s) => s.user + s.sys));
  const rssMiB = (r: Row) => Math.max(...r.samples.map((s) => s.rssKiB)) / 1024;
  const lines = [
    "| tool | wall s (median) | best s | MB/s (tar/median) | CPU s (user+sys) | peak RSS MiB | note |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const r of [ours, floor, floor3, gz]) {
    const w = wall(r);
    const rss = r === ours ? rssMiB(r).toFixed(0) : `${rssMiB(r).toFixed(0)} (largest process)`;
    lines.push(`| ${r.tool} | ${w.toFixed(2)} | ${Math.min(...r.samples.map((s) => s.wall)).toFixed(2)} | ${(srcTar / 1e6 / w).toFixed(0)} | ${cpu(r).toFixed(2)} | ${rss} | ${r.note} |`);
  }
  const ratio = wall(ours) / wall(floor);
  const rss = rssMiB(ours);
  const layerRows = src.layers.map(
    (l, i) => `| ${i + 1} | ${l.name} | ${l.entries} | ${l.regularFiles} | ${mb(l.tarBytes)} | ${mb(l.blob.size)} | ${mb(out.layers[i]?.size ?? NaN)} |`,
  );
  return [
    "## nydus-ts convert benchmark",
    "",
    `- source: OCI image layout (tag \`${TAG}\`, cached in ${src.dir}), ${src.layers.length} layers compressed with \`gzip -6 -n\` (${src.gzip}),`,
    `  built by bench/convert.ts: layer 1 the ${o.rootfs.label} rootfs tar, layer 2 a node_modules-style tree (bench/gen_node_modules.ts ${appFiles} files, seed 2),`,
    "  layer 3 a small config layer with a file whiteout (etc/motd), an opaque directory (var/cache/apt/archives) and a whiteout of one layer-2 package",
    `- ours: \`bin/nydus-ts.js convert --source oci:SRC:${TAG} --target oci:DST:${TAG} --json --work-dir W\` (defaults: zstd level 3 per chunk, blake3,`,
    "  1 MiB chunks, --concurrency 2), fresh DST and W in the work dir each run, no --build-cache",
    "- floor: per layer `bash -c 'gzip -dc LAYER | zstd -1 -T1 -q | b3sum'` (the three processes of a pipeline run in parallel), layers one after",
    "  the other; its RSS is the largest process of the pipelines (GNU time on bash reports its largest reaped child)",
    `- runs: ${o.runs}, interleaved (ours, floor, floor -3, gzip -dc); median and best shown; RSS is the max over runs`,
    "",
    lines.join("\n"),
    "",
    "| layer | content | tar entries | regular files | tar MB | gzip MB (source) | Nydus blob MB |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ...layerRows,
    `| | **total** | ${src.layers.reduce((a, l) => a + l.entries, 0)} | ${src.layers.reduce((a, l) => a + l.regularFiles, 0)} | ${mb(srcTar)} | ${mb(srcGz)} | ${mb(out.dataBlobBytes)} data + ${mb(out.bootstrapLayerBytes)} bootstrap layer = ${mb(out.dataBlobBytes + out.bootstrapLayerBytes)} |`,
    "",
    `- converted image: ${out.layers.length} layers (${out.layers.length - 1} data blobs + the merged bootstrap layer); ${out.check}`,
    "",
    "Targets:",
    `- convert vs codec floor: ${wall(ours).toFixed(2)} s vs ${wall(floor).toFixed(2)} s → ${ratio.toFixed(2)}× ≤ 1.5× → ${ratio <= 1.5 ? "**met**" : "**NOT met**"}` +
      ` (CPU time, less sensitive to load: ${cpu(ours).toFixed(2)} s vs ${cpu(floor).toFixed(2)} s, ${(cpu(ours) / cpu(floor)).toFixed(2)}×)`,
    `- convert peak RSS: ${rss.toFixed(0)} MiB < 256 MiB → ${rss < 256 ? "**met**" : "**NOT met**"}`,
    "",
  ].join("\n");
}
