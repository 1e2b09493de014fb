/**
 * OCI/Docker image → Nydus image (nydus-image.md §2–§4): every source layer becomes one
 * Nydus blob layer (built in a bounded pool, or reused from the layer cache), the layer
 * bootstraps are merged into one bootstrap layer, the config gets the new diff ids, and
 * manifests/indexes get the Nydus media types and annotations. Nothing is stored at the
 * target here: the result lists what {@link pushImage} must store, in order.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Worker } from "node:worker_threads";
import { readInlineBootstrap } from "../blob/reader.ts";
import type { BuildCompressor } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { fileReaderAt } from "../io/reader_at.ts";
import { Annotation, MediaType, isDockerMediaType, isIndexMediaType, isManifestMediaType, layerCompression } from "../oci/media_type.ts";
import { configPlatform, formatPlatform, hostPlatform, platformMatches } from "../oci/platform.ts";
import type { ImageSource } from "../oci/store.ts";
import { jsonBytes, parseConfig, parseIndex, parseManifest, sniffMediaType, type Descriptor, type ImageConfig, type Index, type Manifest, type Platform } from "../oci/types.ts";
import { describeBytes } from "../oci/verify.ts";
import { DEFAULT_CHUNK_SIZE } from "../rafs/format.ts";
import type { BlobInfo, RafsImage } from "../rafs/model.ts";
import { buildLayerHere, buildLayerInWorker, type LayerBuild } from "./layer_runner.ts";
import { mergeHere, mergeInLayerWorker, type MergeOutcome } from "./merge_runner.ts";
import { prependEmptyLayer } from "./empty_layer.ts";
import { LayerCache } from "./layer_cache.ts";
import { prewarmConvertWorkers } from "./worker_pool.ts";
import type { BlobProvider, ConvertResult, ConvertedLayerReport, ConvertedManifest, ProgressEvent } from "./types.ts";

/** A chunk dictionary: a Nydus image whose chunks new blobs reference instead of storing. */
export interface ChunkDict {
  name: string;
  image: RafsImage;
  /** The dictionary bootstrap's bytes (layer workers open their own copy). */
  bootstrap: Uint8Array;
  /** `sha256:` of the dictionary bootstrap (part of the layer cache key). */
  bootstrapDigest: string;
  /** The dictionary's blobs by blob id, for the ones the result references. */
  blobs: ReadonlyMap<string, BlobProvider>;
}

export interface ConvertOptions {
  /** Directory for built blobs (created if needed; the caller removes it after pushing). */
  workDir: string;
  /** @default "zstd" */
  compressor?: BuildCompressor;
  /** @default "blake3" */
  digester?: DigesterName;
  /** @default 0x100000 */
  chunkSize?: number;
  /** Docker media types become OCI ones (`--oci`). @default false */
  oci?: boolean;
  /**
   * Media-type family of the output: "source" keeps the source's, "oci" converts Docker
   * types to OCI (same as `oci: true`), "docker" writes Docker schema 2 manifests, configs
   * and lists (BuildKit `oci-mediatypes=false`). @default "source" ("oci" when `oci` is set)
   */
  mediaTypes?: "source" | "oci" | "docker";
  /** Platforms to convert from an index; "all" for every one. @default the host platform */
  platforms?: readonly Platform[] | "all";
  /** One index holding the original manifests and the Nydus ones (`--merge-platform`). @default false */
  mergePlatform?: boolean;
  chunkDict?: ChunkDict;
  /** Absolute paths whose files go into the prefetch table. */
  prefetchPatterns?: readonly string[];
  /** Reuse (and record) converted layers. */
  cache?: LayerCache;
  /** Layers converted at once. @default 2 */
  concurrency?: number;
  /**
   * Build each layer on a worker thread, so that layers build on separate cores (the blobs
   * are the same either way). @default true
   */
  workers?: boolean;
  /**
   * With workers, layers of fewer (compressed) bytes build on this thread: a worker costs more
   * to start than such a build. @default {@link SMALL_LAYER} (1 MiB)
   */
  smallLayerSize?: number;
  /** Normalised source reference for the `nydus-source-reference` annotation. */
  sourceReference?: string;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

/** Version of the layer format this converter writes; part of the cache key. */
const LAYER_FORMAT = "nydus-ts/inline-v6/1";

/**
 * Layers smaller than this (compressed) build on the main thread: a worker costs ~60 ms of CPU
 * to start and runs its code cold, more than such a layer's whole build. On the benchmark image
 * (its third layer is 483 bytes) this saved ~0.15 s of CPU and ~85 ms of wall time.
 */
export const SMALL_LAYER = 1 << 20;

const short = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12);

/** Runs `fn` over `items` with at most `limit` in flight; rejects with the first error after all settle. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
  return results;
}

/** One converted manifest with what the index step needs. */
interface ManifestOutcome {
  converted: ConvertedManifest;
  sourceManifest: Manifest;
  sourceConfig: ImageConfig;
  /** The Nydus manifest's bytes. */
  outBytes: Uint8Array;
}

interface BuiltLayer {
  report: ConvertedLayerReport;
  /** The Nydus blob file. */
  file: string;
  /** The layer's own bootstrap (from the build, or read back from the cached blob). */
  bootstrap: Uint8Array;
  blob?: BlobInfo;
  /** The worker that built it, until a merge takes it (`MergeRunner.add`): taken once. */
  worker?: Worker;
}

/** One conversion run: shared state across the manifests of an index. */
class Converter {
  private readonly layers = new Map<string, Promise<BuiltLayer>>();
  private readonly blobDir: string;
  /** Everything but the root, which the index step decides (see {@link withRoot}). */
  readonly result: Omit<ConvertResult, "root"> = { documents: new Map(), blobs: [], configs: [], children: [], manifests: [] };
  private readonly blobSeen = new Set<string>();

  constructor(
    private readonly source: ImageSource,
    private readonly options: ConvertOptions,
  ) {
    this.blobDir = path.join(options.workDir, "blobs");
  }

  private get params() {
    const o = this.options;
    return {
      format: LAYER_FORMAT,
      compressor: o.compressor ?? "zstd",
      digester: o.digester ?? "blake3",
      chunkSize: o.chunkSize ?? DEFAULT_CHUNK_SIZE,
      prefetch: o.prefetchPatterns ?? [],
      chunkDict: o.chunkDict?.bootstrapDigest ?? null,
    };
  }

  /** The result with an index document of these bytes as its root. */
  withRoot(mediaType: string, bytes: Uint8Array): ConvertResult {
    const root = describeBytes(mediaType, bytes);
    this.result.documents.set(root.digest, bytes);
    return { ...this.result, root };
  }

  addBlob(p: BlobProvider): void {
    if (this.blobSeen.has(p.desc.digest)) return;
    this.blobSeen.add(p.desc.digest);
    this.result.blobs.push(p);
  }

  addDocument(desc: Descriptor, bytes: Uint8Array, kind: "config" | "child"): void {
    if (this.result.documents.has(desc.digest)) return;
    this.result.documents.set(desc.digest, bytes);
    (kind === "config" ? this.result.configs : this.result.children).push(desc);
  }

  /**
   * Whether a layer builds on a worker thread: with workers on, all but small layers
   * ({@link ConvertOptions.smallLayerSize}), which build on this thread, one at a time,
   * outside the `concurrency` limit.
   */
  private inWorker(desc: Descriptor): boolean {
    return (this.options.workers ?? true) && desc.size >= (this.options.smallLayerSize ?? SMALL_LAYER);
  }

  /** Converts one source layer (memoized by digest: shared layers are built once). */
  layer(desc: Descriptor): Promise<BuiltLayer> {
    let p = this.layers.get(desc.digest);
    if (!p) {
      p = this.buildOne(desc);
      this.layers.set(desc.digest, p);
    }
    return p;
  }

  private async buildOne(desc: Descriptor): Promise<BuiltLayer> {
    const started = Date.now();
    const o = this.options;
    const compression = layerCompression(desc.mediaType);
    if (!compression) {
      if (desc.mediaType === MediaType.NydusBlob) throw new InvalidInputError(`Cannot convert ${this.source.name}: it is already a Nydus image (layer ${desc.digest})`);
      throw new InvalidInputError(`Cannot convert layer ${desc.digest} of ${this.source.name}: media type "${desc.mediaType}" is not a tar layer`);
    }
    const key = LayerCache.key(desc.digest, this.params);
    const cached = await o.cache?.get(key);
    const id = short(desc.digest);
    if (cached) {
      const file = o.cache!.blobPath(cached.digest);
      const reader = await fileReaderAt(file);
      let bootstrap: Uint8Array;
      try {
        bootstrap = await readInlineBootstrap(reader, cached.digest);
      } finally {
        await reader.close();
      }
      o.onProgress?.({ phase: "convert", id, done: desc.size, total: desc.size, finished: true });
      return {
        report: { source: desc.digest, blob: `sha256:${cached.digest}`, size: cached.size, cached: true, chunks: cached.blob?.chunkCount ?? 0, dedupedChunks: 0, seconds: (Date.now() - started) / 1000 },
        file,
        bootstrap,
        blob: cached.blob,
      };
    }
    const inWorker = this.inWorker(desc);
    const raw = await this.source.fetchBlob(desc, {
      signal: o.signal,
      transferable: inWorker, // its pieces move to the layer worker without a copy
      onProgress: (pulled) => o.onProgress?.({ phase: "convert", id, done: pulled, total: desc.size }),
    });
    const build = {
      blobDir: this.blobDir,
      compression,
      what: `layer ${desc.digest}`,
      compressor: o.compressor,
      digester: o.digester,
      chunkSize: o.chunkSize,
      chunkDict: o.chunkDict?.bootstrap,
      prefetchPaths: o.prefetchPatterns,
    };
    const r: LayerBuild & { worker?: Worker } = inWorker ? await buildLayerInWorker(raw, build, { keep: true }) : await buildLayerHere(raw, build);
    const lb = r.layerBlob!;
    const file = path.join(this.blobDir, lb.digest);
    if (o.cache) await o.cache.put(key, file, { digest: lb.digest, size: lb.size, blob: r.blob });
    o.onProgress?.({ phase: "convert", id, done: desc.size, total: desc.size, finished: true });
    return {
      report: { source: desc.digest, blob: `sha256:${lb.digest}`, size: lb.size, cached: false, chunks: r.stats.chunks, dedupedChunks: r.stats.dedupedChunks, seconds: (Date.now() - started) / 1000 },
      file,
      bootstrap: r.bootstrap,
      blob: r.blob,
      worker: r.worker,
    };
  }

  /** Converts one source manifest into a Nydus manifest. */
  async manifest(desc: Descriptor, platformHint?: Platform): Promise<ManifestOutcome> {
    const o = this.options;
    const bytes = await this.source.fetchBytes(desc, { signal: o.signal });
    const manifest = parseManifest(bytes, `manifest ${desc.digest} of ${this.source.name}`);
    const last = manifest.layers.at(-1);
    if (last?.annotations?.[Annotation.NydusBootstrap] === "true") {
      throw new InvalidInputError(`Cannot convert ${this.source.name}: manifest ${desc.digest} is already a Nydus image`);
    }
    const configBytes = await this.source.fetchBytes(manifest.config, { signal: o.signal });
    const config = parseConfig(configBytes, `config ${manifest.config.digest} of ${this.source.name}`);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new InvalidInputError(`Cannot convert manifest ${desc.digest}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff ids in its config`);
    }
    // Each layer's bootstrap is read into a tree as soon as the layer is built, while later
    // layers still build (on the first finished layer's worker, so this thread keeps feeding
    // the others), and upper layers are combined as they come; its own blob is named by its digest.
    const merger = (o.workers ?? true) ? mergeInLayerWorker({ whiteoutSpec: "oci" }) : mergeHere({ whiteoutSpec: "oci" });
    let built: BuiltLayer[];
    let merged: MergeOutcome;
    try {
      built = new Array<BuiltLayer>(manifest.layers.length);
      const build = async (i: number) => {
        const l = manifest.layers[i]!;
        const b = await this.layer(l);
        const worker = b.worker;
        b.worker = undefined; // a layer shared by several manifests hands its worker to one merge
        merger.add(i, b.bootstrap, b.blob, `layer ${i} (${l.digest})`, worker);
        built[i] = b;
      };
      // Small layers build here, one at a time, while the others take the worker slots, largest
      // first: the largest layer is the longest build, and started last it would run on alone.
      const pooled: number[] = [];
      const here: number[] = [];
      manifest.layers.forEach((l, i) => (this.inWorker(l) ? pooled : here).push(i));
      pooled.sort((a, b) => manifest.layers[b]!.size - manifest.layers[a]!.size);
      const settled = await Promise.allSettled([
        pool(pooled, o.concurrency ?? 2, build),
        pool(here, (o.workers ?? true) ? 1 : (o.concurrency ?? 2), build),
      ]);
      for (const s of settled) if (s.status === "rejected") throw s.reason;
      merged = await merger.merge(built.length, { prefetchPaths: o.prefetchPatterns });
    } finally {
      await merger.close();
    }
    const boot = merged.layer;

    const docker = wantDocker(manifest.mediaType ?? desc.mediaType, o);
    const layers: Descriptor[] = [];
    const diffIds: string[] = [];
    for (const b of built) {
      layers.push({ mediaType: MediaType.NydusBlob, digest: b.report.blob, size: b.report.size, annotations: { [Annotation.NydusBlob]: "true" } });
      diffIds.push(b.report.blob);
      this.addBlob({ desc: layers.at(-1)!, file: b.file, built: !b.report.cached, open: () => fs.createReadStream(b.file, { highWaterMark: 1 << 20 }) });
    }
    // Chunk-dictionary blobs the merged bootstrap references go after the layer blobs.
    const ours = new Set(built.map((b) => b.report.blob.slice(7)));
    const dictBlobs: string[] = [];
    for (const info of merged.blobs) {
      if (ours.has(info.blobId)) continue;
      const p = o.chunkDict?.blobs.get(info.blobId);
      if (!p) throw new InvalidInputError(`Cannot convert manifest ${desc.digest}: the merged bootstrap references blob ${info.blobId}, which is neither a layer nor in the chunk dictionary`);
      const d: Descriptor = { mediaType: MediaType.NydusBlob, digest: p.desc.digest, size: p.desc.size, annotations: { [Annotation.NydusBlob]: "true" } };
      layers.push(d);
      diffIds.push(d.digest);
      dictBlobs.push(info.blobId);
      this.addBlob({ ...p, desc: d });
    }
    const bootDesc: Descriptor = {
      mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip,
      digest: boot.digest,
      size: boot.gzip.length,
      annotations: { [Annotation.NydusBootstrap]: "true", [Annotation.NydusFsVersion]: "6" },
    };
    layers.push(bootDesc);
    diffIds.push(boot.diffId);
    this.addBlob({ desc: bootDesc, open: () => oneShot(boot.gzip) });

    const nydusConfig: ImageConfig = {
      ...config,
      rootfs: { type: "layers", diff_ids: diffIds },
      history: [...(config.history ?? []), { created_by: "Nydus Converter", comment: "Nydus Bootstrap Layer" }],
    };
    const configBytesOut = jsonBytes(nydusConfig);
    const configMediaType = o.mergePlatform ? MediaType.NydusConfig : docker ? MediaType.DockerConfig : MediaType.OciConfig;
    const configDesc = describeBytes(configMediaType, configBytesOut);
    this.addDocument(configDesc, configBytesOut, "config");

    const annotations: Record<string, string> = { [Annotation.NydusSourceDigest]: desc.digest, [Annotation.NydusFsVersion]: "6" };
    if (o.sourceReference) annotations[Annotation.NydusSourceReference] = o.sourceReference;
    const out: Manifest = {
      schemaVersion: 2,
      mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
      config: configDesc,
      layers,
      annotations,
    };
    const outBytes = jsonBytes(out);
    const outDesc = describeBytes(out.mediaType!, outBytes);
    const platform = platformHint ?? configPlatform(config);
    const converted: ConvertedManifest = {
      platform,
      source: desc,
      desc: outDesc,
      config: configDesc,
      bootstrap: bootDesc,
      layers: built.map((b) => b.report),
      dictBlobs,
    };
    this.result.manifests.push(converted);
    return { converted, sourceManifest: manifest, sourceConfig: config, outBytes };
  }
}

/** Whether output documents use Docker media types, given the source's type. */
function wantDocker(sourceType: string | undefined, o: ConvertOptions): boolean {
  const family = o.mediaTypes ?? (o.oci ? "oci" : "source");
  if (family === "source") return isDockerMediaType(sourceType);
  return family === "docker";
}

async function* oneShot(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** A stream over a source blob, opened lazily (so it can be retried by re-calling). */
function sourceBlob(source: ImageSource, desc: Descriptor, signal?: AbortSignal): BlobProvider {
  return {
    desc,
    fromSource: true,
    open: () =>
      (async function* () {
        yield* await source.fetchBlob(desc, { signal });
      })(),
  };
}

/**
 * Converts the image `source` points at.
 * @throws InvalidInputError for unsupported or inconsistent input (no matching platform,
 *   already a Nydus image, non-tar layers); errors of the source (DigestMismatchError, RegistryError)
 */
export async function convertImage(source: ImageSource, options: ConvertOptions): Promise<ConvertResult> {
  if (options.workers ?? true) prewarmConvertWorkers(options.concurrency ?? 2); // they load while the source resolves
  await fsp.mkdir(path.join(options.workDir, "blobs"), { recursive: true });
  const c = new Converter(source, options);
  const root = await source.resolve({ signal: options.signal });
  const rootBytes = await source.fetchBytes(root, { signal: options.signal });
  const rootType = isIndexMediaType(root.mediaType) || isManifestMediaType(root.mediaType) ? root.mediaType : sniffMediaType(rootBytes);

  type Picked = { desc: Descriptor; platform?: Platform };
  let picked: Picked[];
  let sourceIndex: Index | undefined;
  if (isIndexMediaType(rootType)) {
    sourceIndex = parseIndex(rootBytes, `index ${root.digest} of ${source.name}`);
    const entries = sourceIndex.manifests.filter((m) => isManifestMediaType(m.mediaType) && !m.artifactType && !(m.platform?.architecture === "unknown" && m.platform?.os === "unknown"));
    const wanted = options.platforms ?? [hostPlatform()];
    const matching = wanted === "all" ? entries : entries.filter((m) => wanted.some((w) => platformMatches(w, m.platform)));
    if (matching.length === 0) {
      const have = entries.map((m) => formatPlatform(m.platform)).join(", ") || "none";
      const want = wanted === "all" ? "any" : wanted.map(formatPlatform).join(", ");
      throw new InvalidInputError(`Cannot convert ${source.name}: no manifest for platform ${want} (the index has ${have})`);
    }
    picked = matching.map((m) => ({ desc: m, platform: m.platform }));
  } else if (isManifestMediaType(rootType)) {
    picked = [{ desc: { ...root, mediaType: rootType! } }];
  } else {
    throw new InvalidInputError(`Cannot convert ${source.name}: its root document has media type "${rootType ?? "unknown"}", expected a manifest or an index`);
  }

  const converted: ManifestOutcome[] = [];
  for (const p of picked) converted.push(await c.manifest(p.desc, p.platform));

  // Manifest bytes: recompute from the descriptors kept in documents.
  const nydusEntries: Descriptor[] = [];
  for (const m of converted) {
    c.addDocument(m.converted.desc, m.outBytes, "child");
    nydusEntries.push({ ...m.converted.desc, ...(m.converted.platform ? { platform: m.converted.platform } : {}) });
  }

  if (options.mergePlatform) {
    // OCI entries first (each re-issued with an empty layer in front), Nydus entries after (§3.2).
    const ociEntries: Descriptor[] = [];
    for (const m of converted) {
      const src = m.converted.source;
      const re = prependEmptyLayer(m.sourceManifest, src, m.sourceConfig);
      for (const l of m.sourceManifest.layers) c.addBlob(sourceBlob(source, l, options.signal));
      c.addBlob({ desc: re.emptyLayer, open: () => oneShot(re.emptyLayerBytes) });
      c.addDocument(re.config, re.configBytes, "config");
      c.addDocument(re.manifest, re.manifestBytes, "child");
      ociEntries.push({ ...re.manifest, annotations: { [Annotation.NydusSourceDigest]: src.digest }, platform: m.converted.platform });
    }
    const index = {
      schemaVersion: 2,
      manifests: [...ociEntries, ...nydusEntries.map((e) => ({ ...e, platform: e.platform ?? { architecture: "", os: "" }, artifactType: MediaType.NydusManifestArtifact }))],
    };
    return c.withRoot(MediaType.OciIndex, jsonBytes(index));
  }

  if (!sourceIndex || nydusEntries.length === 1) {
    // A single manifest stays a single manifest (§3.1).
    const only = converted[0]!.converted.desc;
    return { ...c.result, root: only, children: c.result.children.filter((d) => d.digest !== only.digest) };
  }
  const indexType = wantDocker(sourceIndex.mediaType ?? root.mediaType, options) ? MediaType.DockerManifestList : MediaType.OciIndex;
  const index: Index = { schemaVersion: 2, mediaType: indexType, manifests: nydusEntries };
  if (sourceIndex.annotations) index.annotations = sourceIndex.annotations;
  return c.withRoot(indexType, jsonBytes(index));
}
