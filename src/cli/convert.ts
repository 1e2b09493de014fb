/**
 * `nydus-ts convert`: an OCI/Docker image (registry, OCI layout, archive, stdin) → a Nydus
 * image in a registry or an OCI layout. Flag names follow nydusify; `--output` takes
 * BuildKit's exporter syntax.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { BuildCompressor } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import { convertImage, pushImage, LayerCache, type ConvertOptions, type ConvertResult } from "../convert/index.ts";
import { loadChunkDict, mergeIntoExisting, openSink, openSource, parseBuildkitOutput, parseSource, parseTarget, probeScheme, targetName, targetTag, type TargetSpec } from "../export/index.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { configPlatform, hostPlatform, parsePlatform } from "../oci/platform.ts";
import { parseManifest, parseConfig, type Platform } from "../oci/types.ts";
import { formatReference } from "../reference/reference.ts";
import { readPathList, writeFileAtomic } from "./files.ts";
import { emit, multiProgress } from "./output.ts";
import { registryOptions, type RegistryFlags } from "./registry_flags.ts";

export interface ConvertFlags extends RegistryFlags {
  source: string;
  target?: string;
  output?: string;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  sourceCreds?: string;
  targetCreds?: string;
  oci?: boolean;
  mergePlatform?: boolean;
  platform?: string;
  allPlatforms?: boolean;
  compressor: BuildCompressor;
  digester: DigesterName;
  chunkSize: number;
  fsVersion: string;
  chunkDict?: string;
  buildCache?: string;
  prefetchPatterns?: string | boolean;
  outputJson?: string;
  workDir?: string;
  concurrency?: number;
  json?: boolean;
}

interface Target {
  spec: TargetSpec;
  insecure: boolean;
  plainHttp: boolean;
  mergeManifest: boolean;
}

async function readPatterns(flag: string | boolean | undefined, sourceIsStdin: boolean): Promise<string[] | undefined> {
  if (flag === undefined || flag === false) return undefined;
  if (flag === true || flag === "-") {
    if (sourceIsStdin) throw new InvalidInputError("Cannot read prefetch patterns from stdin: stdin carries the image (--source -); give --prefetch-patterns FILE");
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8").split("\n").map((s) => s.trim()).filter((s) => s.startsWith("/"));
  }
  return readPathList(flag);
}

function platforms(flags: ConvertFlags): readonly Platform[] | "all" {
  if (flags.allPlatforms) return "all";
  if (flags.platform) {
    try {
      return flags.platform.split(",").map((p) => parsePlatform(p));
    } catch (err) {
      throw new InvalidInputError((err as Error).message);
    }
  }
  return [hostPlatform()];
}

function targets(flags: ConvertFlags): { list: Target[]; mediaTypes?: ConvertOptions["mediaTypes"] } {
  if (flags.target && flags.output) throw new InvalidInputError("Cannot use both --target and --output");
  if (flags.target) {
    return { list: [{ spec: parseTarget(flags.target), insecure: flags.targetInsecure ?? false, plainHttp: flags.plainHttp ?? false, mergeManifest: false }] };
  }
  if (!flags.output) throw new InvalidInputError("Cannot convert: give --target REF|oci:DIR[:TAG] or --output type=nydus,name=REF");
  const out = parseBuildkitOutput(flags.output);
  const specs: TargetSpec[] = out.dest ? [parseTarget(`oci:${out.dest}`)] : out.names.map((n) => parseTarget(n));
  return {
    list: specs.map((spec) => ({ spec, insecure: out.insecure || (flags.targetInsecure ?? false), plainHttp: flags.plainHttp ?? false, mergeManifest: out.mergeManifest })),
    mediaTypes: out.ociMediaTypes === undefined ? undefined : out.ociMediaTypes ? "oci" : "docker",
  };
}

export async function runConvert(flags: ConvertFlags): Promise<void> {
  const started = Date.now();
  if (flags.fsVersion !== "6") throw new InvalidInputError(`Cannot write RAFS v${flags.fsVersion}: only --fs-version 6 is supported for writing (v5 images can be read)`);
  const { list, mediaTypes } = targets(flags);
  const sourceSpec = parseSource(flags.source);
  const patterns = await readPatterns(flags.prefetchPatterns, sourceSpec.kind === "archive" && sourceSpec.file === "-");
  const controller = new AbortController();
  const workDir = flags.workDir ? path.resolve(flags.workDir) : await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-ts-convert-"));
  const ownWorkDir = !flags.workDir;
  await fsp.mkdir(workDir, { recursive: true });
  const onSignal = () => {
    controller.abort(new InvalidInputError("Cannot finish: interrupted"));
    if (ownWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const bars = multiProgress(flags);
  const closers: (() => Promise<void>)[] = [];
  try {
    const srcOptions = registryOptions(flags, { insecure: flags.sourceInsecure, creds: flags.sourceCreds, flag: "--source-creds" }, controller.signal);
    const source = await openSource(sourceSpec, { registry: srcOptions, stdin: process.stdin, spoolDir: workDir, signal: controller.signal });
    closers.push(async () => source.close?.());
    const wanted = platforms(flags);
    let chunkDict;
    if (flags.chunkDict) {
      const d = await loadChunkDict(flags.chunkDict, wanted === "all" ? hostPlatform() : wanted[0]!, { registry: srcOptions, spoolDir: workDir, signal: controller.signal });
      closers.push(d.close);
      chunkDict = d.dict;
    }
    const result = await convertImage(source, {
      workDir,
      compressor: flags.compressor,
      digester: flags.digester,
      chunkSize: flags.chunkSize,
      oci: flags.oci,
      mediaTypes: mediaTypes ?? (flags.oci ? "oci" : "source"),
      platforms: wanted,
      mergePlatform: flags.mergePlatform,
      chunkDict,
      prefetchPatterns: patterns,
      cache: flags.buildCache ? new LayerCache(flags.buildCache) : undefined,
      concurrency: flags.concurrency,
      sourceReference: sourceSpec.kind === "registry" ? formatReference(sourceSpec.ref) : undefined,
      onProgress: (e) => bars.update(e),
      signal: controller.signal,
    });
    const pushed: Awaited<ReturnType<typeof pushTo>>[] = [];
    for (const t of list) pushed.push(await pushTo(t, result, flags, sourceSpec, controller.signal, (e) => bars.update(e)));
    bars.stop();
    const out = {
      source: source.name,
      targets: pushed,
      manifests: result.manifests.map((m) => ({
        platform: m.platform,
        digest: m.desc.digest,
        sourceDigest: m.source.digest,
        bootstrap: { digest: m.bootstrap.digest, size: m.bootstrap.size },
        layers: m.layers,
        chunkDictBlobs: m.dictBlobs,
      })),
      seconds: (Date.now() - started) / 1000,
    };
    if (flags.outputJson) await writeFileAtomic(flags.outputJson, new TextEncoder().encode(JSON.stringify(out, null, 2) + "\n"));
    emit(flags, out, () =>
      [
        ...result.manifests.map(
          (m) =>
            `${m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ""}` : "image"}: ${m.layers.length} layers → ${m.desc.digest} (${m.layers.filter((l) => l.cached).length} from cache)`,
        ),
        ...pushed.map((p) => `${p.name}: ${p.digest} (${p.mediaType}), ${p.pushed} blobs stored, ${p.skipped} already there`),
        `done in ${out.seconds.toFixed(2)} s`,
      ].join("\n"),
    );
  } finally {
    bars.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const c of closers.reverse()) await c().catch(() => undefined);
    if (ownWorkDir) await fsp.rm(workDir, { recursive: true, force: true });
  }
}

async function pushTo(t: Target, converted: ConvertResult, flags: ConvertFlags, sourceSpec: ReturnType<typeof parseSource>, signal: AbortSignal, onProgress: (e: { phase: string; id: string; done: number; total: number }) => void) {
  let plainHttp = t.plainHttp;
  if (t.spec.kind === "registry" && t.insecure && !plainHttp) {
    // registry.insecure / --target-insecure: plain HTTP when the registry speaks it, else unverified TLS.
    plainHttp = (await probeScheme(t.spec.ref.registry)) === "http";
  }
  const opts = registryOptions({ ...flags, plainHttp }, { insecure: t.insecure, creds: flags.targetCreds, flag: "--target-creds" }, signal);
  const sink = openSink(t.spec, { registry: opts });
  let result = converted;
  if (t.mergeManifest) {
    const existing = sink.existing ? await sink.existing({ signal }) : undefined;
    let existingPlatform: Platform | undefined;
    if (existing && sink.fetchBytes) {
      try {
        const m = parseManifest(existing.bytes);
        const cfg = parseConfig(await sink.fetchBytes(m.config, { signal }));
        existingPlatform = configPlatform(cfg);
      } catch {
        // Not a manifest, or its config is not fetchable as a document: the default platform applies.
      }
    }
    const ociIndex = converted.root.mediaType.startsWith("application/vnd.oci.") || (existing?.desc.mediaType.startsWith("application/vnd.oci.") ?? true);
    result = mergeIntoExisting(converted, existing, { ociIndex, existingPlatform });
  }
  const mountFrom = sourceSpec.kind === "registry" && t.spec.kind === "registry" && sourceSpec.ref.registry === t.spec.ref.registry ? sourceSpec.ref.repository : undefined;
  const report = await pushImage(result, sink, { tag: targetTag(t.spec), mountFrom, onProgress, signal });
  await sink.close?.();
  return { name: targetName(t.spec), digest: result.root.digest, mediaType: result.root.mediaType, size: result.root.size, ...report };
}
