/**
 * `check --target`: what `nydusify check` verifies (nydus-image.md §5), without nydusd:
 *
 * 1. manifest rule: the last layer is a gzip bootstrap layer marked `nydus-bootstrap`,
 *    every other layer a Nydus blob marked `nydus-blob`; one diff id per layer, each blob
 *    layer its own diff id, the bootstrap's the SHA-256 of its uncompressed tar;
 * 2. bootstrap rule: the merged bootstrap decodes, and every blob it names is a layer;
 * 3. blob rule: every blob layer downloads with the right digest, carries its own bootstrap,
 *    and every chunk the bootstrap references decompresses to its digest;
 * 4. with a source image (or the OCI twin in a merged index): the configs' `config`
 *    objects agree, and the two final trees agree file by file (type, mode, owners, size,
 *    content digest, symlink target, device numbers, xattrs).
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { hasToc, readInlineBootstrap } from "../blob/reader.ts";
import { buildTreeFromTar, walk } from "../builder/tree.ts";
import { mergeLayers } from "../builder/overlay.ts";
import { extractBootstrap } from "../convert/bootstrap_layer.ts";
import { decompressLayer } from "../convert/decompress.ts";
import { EMPTY_TAR_DIFF_ID } from "../convert/empty_layer.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { fileReaderAt } from "../io/reader_at.ts";
import { checkImage, type CheckReport } from "../local/check.ts";
import { ChunkSource } from "../local/chunk_source.ts";
import { Annotation, MediaType, isIndexMediaType, isNydusIndexEntry, layerCompression } from "../oci/media_type.ts";
import { formatPlatform, hostPlatform, platformMatches } from "../oci/platform.ts";
import type { ImageSource } from "../oci/store.ts";
import { parseConfig, parseIndex, parseManifest, type Descriptor, type ImageConfig, type Manifest, type Platform } from "../oci/types.ts";
import type { RafsImage, TreeEntry, TreeInode } from "../rafs/model.ts";
import { openRafs, walkRafs } from "../rafs/open.ts";
import { readTar } from "../tar/reader.ts";

export interface ImageCheckOptions {
  /** Scratch directory for downloaded blobs (created; the caller removes it). */
  workDir: string;
  /** Platform to check in an index. @default the host's */
  platform?: Platform;
  /** The image the target was converted from, for the config and file-tree comparison. */
  source?: ImageSource;
  signal?: AbortSignal;
  onProgress?: (event: { phase: "download" | "compare"; id: string; done: number; total: number }) => void;
}

export interface ImageCheckReport {
  target: string;
  manifest: string;
  platform?: Platform;
  layers: number;
  bootstrap: CheckReport;
  /** Present when a source tree was compared. */
  compared?: { source: string; entries: number; files: number; bytes: number };
}

/** Thrown when a rule fails; `problems` lists what differs. */
export class ImageCheckError extends InvalidInputError {
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    const shown = problems.slice(0, 20).join("; ");
    super(`Cannot verify ${what}: ${shown}${problems.length > 20 ? `; and ${problems.length - 20} more` : ""}`);
    this.problems = problems;
  }
}

const isGzipLayerType = (mt: string) => mt === MediaType.OciLayerGzip || mt === MediaType.DockerLayerGzip;

function isNydusManifest(m: Manifest): boolean {
  const last = m.layers.at(-1);
  return last !== undefined && isGzipLayerType(last.mediaType) && last.annotations?.[Annotation.NydusBootstrap] === "true";
}

interface Picked {
  desc: Descriptor;
  manifest: Manifest;
  platform?: Platform;
  /** The OCI twin of a merged index, when there is one. */
  twin?: Descriptor;
}

async function pickNydusManifest(target: ImageSource, platform: Platform, signal?: AbortSignal): Promise<Picked> {
  const root = await target.resolve({ signal });
  const bytes = await target.fetchBytes(root, { signal });
  if (!isIndexMediaType(root.mediaType)) {
    const manifest = parseManifest(bytes, `manifest of ${target.name}`);
    if (!isNydusManifest(manifest)) throw new ImageCheckError(target.name, ["it is not a Nydus image: its last layer is not a gzip layer annotated nydus-bootstrap"]);
    return { desc: root, manifest };
  }
  const index = parseIndex(bytes, `index of ${target.name}`);
  const forPlatform = index.manifests.filter((m) => platformMatches(platform, m.platform));
  if (forPlatform.length === 0) {
    throw new ImageCheckError(target.name, [`no manifest for ${formatPlatform(platform)} (the index has ${index.manifests.map((m) => formatPlatform(m.platform)).join(", ")})`]);
  }
  let nydus = forPlatform.find(isNydusIndexEntry);
  let manifest: Manifest | undefined;
  if (nydus) {
    manifest = parseManifest(await target.fetchBytes(nydus, { signal }), `manifest ${nydus.digest}`);
  } else {
    for (const d of forPlatform) {
      const m = parseManifest(await target.fetchBytes(d, { signal }), `manifest ${d.digest}`);
      if (isNydusManifest(m)) {
        nydus = d;
        manifest = m;
        break;
      }
    }
  }
  if (!nydus || !manifest) throw new ImageCheckError(target.name, [`no Nydus manifest for ${formatPlatform(platform)}`]);
  const twin = forPlatform.find((d) => d !== nydus && !isNydusIndexEntry(d));
  return { desc: nydus, manifest, platform: nydus.platform, twin };
}

function manifestRule(m: Manifest, config: ImageConfig, bootDiffId: string): string[] {
  const problems: string[] = [];
  const layers = m.layers;
  const last = layers.at(-1)!;
  if (last.annotations?.[Annotation.NydusBootstrap] !== "true") problems.push("the last layer is not annotated nydus-bootstrap=true");
  layers.slice(0, -1).forEach((l, i) => {
    if (l.mediaType !== MediaType.NydusBlob) problems.push(`layer ${i} has media type "${l.mediaType}", expected "${MediaType.NydusBlob}"`);
    if (l.annotations?.[Annotation.NydusBlob] !== "true") problems.push(`layer ${i} is not annotated nydus-blob=true`);
  });
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layers.length) problems.push(`${layers.length} layers but ${diffIds.length} diff ids`);
  layers.slice(0, -1).forEach((l, i) => {
    if (diffIds[i] !== undefined && diffIds[i] !== l.digest) problems.push(`diff id ${i} is ${diffIds[i]}, expected the blob's digest ${l.digest}`);
  });
  if (diffIds.at(-1) !== bootDiffId) problems.push(`the last diff id is ${diffIds.at(-1)}, but the bootstrap layer's uncompressed tar hashes to ${bootDiffId}`);
  return problems;
}

/** Downloads a blob (verified while it streams) into `dir/<hex>`, written atomically. */
async function download(source: ImageSource, desc: Descriptor, dir: string, options: ImageCheckOptions): Promise<string> {
  const file = path.join(dir, desc.digest.slice(7));
  if (fs.existsSync(file)) return file;
  const tmp = `${file}.tmp`;
  const out = fs.createWriteStream(tmp);
  let done = 0;
  try {
    for await (const piece of await source.fetchBlob(desc, { signal: options.signal })) {
      done += piece.length;
      options.onProgress?.({ phase: "download", id: desc.digest.slice(7, 19), done, total: desc.size });
      if (!out.write(piece)) await new Promise<void>((r) => out.once("drain", () => r()));
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await fsp.rename(tmp, file);
    return file;
  } catch (err) {
    out.destroy();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

type HashedInode = TreeInode & { sha256?: string };

interface Node {
  kind: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: string;
  xattrs: string;
}

const xattrText = (m: ReadonlyMap<string, Uint8Array>) =>
  [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${Buffer.from(v).toString("hex")}`).join(",");

/** The final tree of an OCI image: its layers applied with OCI whiteouts, file contents hashed. */
async function sourceTree(source: ImageSource, manifest: Manifest, skip: number, options: ImageCheckOptions): Promise<Map<string, Node>> {
  const trees: TreeEntry[] = [];
  for (const l of manifest.layers.slice(skip)) {
    const compression = layerCompression(l.mediaType);
    if (!compression) throw new InvalidInputError(`Cannot compare with ${source.name}: layer ${l.digest} has media type "${l.mediaType}", not a tar layer`);
    const stream = decompressLayer(await source.fetchBlob(l, { signal: options.signal }), compression, `layer ${l.digest}`);
    trees.push(
      await buildTreeFromTar(readTar(stream), {
        signal: options.signal,
        onFileData: async (inode, body) => {
          const h = crypto.createHash("sha256");
          for await (const p of body) h.update(p);
          (inode as HashedInode).sha256 = h.digest("hex");
        },
      }),
    );
  }
  const merged = mergeLayers(trees, { whiteoutSpec: "oci" });
  const nodes = new Map<string, Node>();
  for (const { path: p, entry } of walk(merged)) {
    const i = entry.inode as HashedInode;
    nodes.set(p, {
      kind: i.kind,
      mode: i.mode,
      uid: i.uid,
      gid: i.gid,
      size: i.kind === "reg" ? i.size : undefined,
      sha256: i.kind === "reg" ? i.sha256 : undefined,
      link: i.kind === "symlink" ? Buffer.from(i.symlinkTarget ?? new Uint8Array()).toString("latin1") : undefined,
      rdev: i.kind === "chr" || i.kind === "blk" ? `${i.rdevMajor}:${i.rdevMinor}` : undefined,
      xattrs: xattrText(i.xattrs),
    });
  }
  return nodes;
}

async function targetTree(image: RafsImage, blobDir: string): Promise<{ nodes: Map<string, Node>; files: number; bytes: number }> {
  const chunks = new ChunkSource(image, { blobDir });
  const nodes = new Map<string, Node>();
  let files = 0;
  let bytes = 0;
  try {
    for (const { path: p, inode } of walkRafs(image)) {
      const node: Node = { kind: inode.kind, mode: inode.mode, uid: inode.uid, gid: inode.gid, xattrs: xattrText(inode.xattrs) };
      if (inode.kind === "reg") {
        const h = crypto.createHash("sha256");
        for (const fc of image.chunks(inode)) h.update(await chunks.read(fc.chunk, { path: p, fileOffset: fc.fileOffset }));
        node.size = inode.size;
        node.sha256 = h.digest("hex");
        files++;
        bytes += inode.size;
      } else if (inode.kind === "symlink") {
        node.link = Buffer.from(image.readlink(inode)).toString("latin1");
      } else if (inode.kind === "chr" || inode.kind === "blk") {
        node.rdev = `${inode.rdevMajor}:${inode.rdevMinor}`;
      }
      nodes.set(p, node);
    }
  } finally {
    await chunks.close();
  }
  return { nodes, files, bytes };
}

function compareTrees(source: Map<string, Node>, target: Map<string, Node>): string[] {
  const problems: string[] = [];
  for (const [p, s] of source) {
    if (p === "/") continue; // the root's attributes are not carried by layers (nydusify skips it too)
    const t = target.get(p);
    if (!t) {
      problems.push(`"${p}" is missing from the Nydus image`);
      continue;
    }
    for (const k of ["kind", "mode", "uid", "gid", "size", "sha256", "link", "rdev", "xattrs"] as const) {
      if (s[k] !== t[k]) problems.push(`"${p}" ${k} differs: source ${JSON.stringify(s[k])}, Nydus ${JSON.stringify(t[k])}`);
    }
  }
  for (const p of target.keys()) if (!source.has(p)) problems.push(`"${p}" is in the Nydus image but not in the source`);
  return problems;
}

function argsEscapedFree(config: Record<string, unknown> | undefined): string {
  const c = { ...(config ?? {}) };
  delete c.ArgsEscaped;
  return JSON.stringify(c, Object.keys(c).sort());
}

/**
 * Checks a Nydus image; resolves with a report or rejects with an {@link ImageCheckError}
 * listing what is wrong (DigestMismatchError / FormatError for damaged blobs and chunks).
 */
export async function checkNydusImage(target: ImageSource, options: ImageCheckOptions): Promise<ImageCheckReport> {
  const { signal } = options;
  const platform = options.platform ?? hostPlatform();
  const picked = await pickNydusManifest(target, platform, signal);
  const { manifest } = picked;
  const what = `${target.name} (manifest ${picked.desc.digest})`;
  const config = parseConfig(await target.fetchBytes(manifest.config, { signal }), `config of ${what}`);

  const blobDir = path.join(options.workDir, "blobs");
  await fsp.mkdir(blobDir, { recursive: true });
  const bootLayer = manifest.layers.at(-1)!;
  const bootFile = await download(target, bootLayer, blobDir, options);
  const { bootstrap, diffId } = await extractBootstrap(fs.createReadStream(bootFile), `bootstrap layer ${bootLayer.digest}`);
  const problems = manifestRule(manifest, config, diffId);
  if (problems.length > 0) throw new ImageCheckError(what, problems);

  const image = openRafs(bootstrap);
  const layerIds = new Set(manifest.layers.slice(0, -1).filter((l) => !l.annotations?.[Annotation.NydusRef]).map((l) => l.digest.slice(7)));
  const missing = image.blobs.filter((b) => !layerIds.has(b.blobId)).map((b) => `the bootstrap references blob ${b.blobId}, which is not a layer of the manifest`);
  if (missing.length > 0) throw new ImageCheckError(what, missing);

  for (const l of manifest.layers.slice(0, -1)) {
    const file = await download(target, l, blobDir, options);
    const reader = await fileReaderAt(file);
    try {
      // A layer blob made by a converter carries its layer bootstrap, found through its ToC:
      // it must read back and verify. (Chunk-dictionary blobs may be plain blobs without one.)
      if (await hasToc(reader)) openRafs(await readInlineBootstrap(reader, l.digest));
    } finally {
      await reader.close();
    }
  }
  const bootReport = await checkImage(image, { blobDir });
  const report: ImageCheckReport = { target: target.name, manifest: picked.desc.digest, platform: picked.platform, layers: manifest.layers.length, bootstrap: bootReport };

  // The tree comparison: against --source, else against the OCI twin of a merged index.
  let source = options.source;
  let sourceManifest: Manifest | undefined;
  let skip = 0;
  if (source) {
    const root = await source.resolve({ signal });
    let desc = root;
    if (isIndexMediaType(root.mediaType)) {
      const index = parseIndex(await source.fetchBytes(root, { signal }), `index of ${source.name}`);
      const entry = index.manifests.find((m) => !isNydusIndexEntry(m) && platformMatches(platform, m.platform));
      if (!entry) throw new ImageCheckError(source.name, [`no manifest for ${formatPlatform(platform)}`]);
      desc = entry;
    }
    sourceManifest = parseManifest(await source.fetchBytes(desc, { signal }), `manifest of ${source.name}`);
  } else if (picked.twin) {
    source = target;
    sourceManifest = parseManifest(await target.fetchBytes(picked.twin, { signal }), `manifest ${picked.twin.digest}`);
  }
  if (source && sourceManifest) {
    const sourceConfig = parseConfig(await source.fetchBytes(sourceManifest.config, { signal }), `config of ${source.name}`);
    // A merged index's OCI twin starts with the empty layer the converter prepends.
    if (sourceManifest.layers[0]?.annotations?.[Annotation.NydusEmptyLayer] === "true" && sourceConfig.rootfs.diff_ids[0] === EMPTY_TAR_DIFF_ID) skip = 1;
    const cfgProblems = argsEscapedFree(sourceConfig.config) === argsEscapedFree(config.config) ? [] : ["the image config's `config` object differs from the source's"];
    const src = await sourceTree(source, sourceManifest, skip, options);
    const tgt = await targetTree(image, blobDir);
    const diffs = [...cfgProblems, ...compareTrees(src, tgt.nodes)];
    if (diffs.length > 0) throw new ImageCheckError(`${what} against ${source.name}`, diffs);
    report.compared = { source: source === target ? `${target.name} (OCI manifest ${picked.twin!.digest})` : source.name, entries: src.size, files: tgt.files, bytes: tgt.bytes };
  }
  return report;
}
