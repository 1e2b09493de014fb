/**
 * Test helpers shared by the local/ tests: building images of textures with our builder, and a
 * hand-made RafsImage for trees no valid bootstrap can hold.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { buildLayer } from "../builder/build.ts";
import type { BuildCompressor } from "../compression/codec.ts";
import { KIND_MODE, type FileChunk, type FileKind, type RafsDirEntry, type RafsImage, type RafsInode } from "../rafs/model.ts";
import { openRafs } from "../rafs/open.ts";
import { materializeDir, writeTar } from "../../test/textures/generate.ts";
import type { LayerSpec } from "../../test/textures/spec.ts";

export interface BuiltImage {
  bootstrapPath: string;
  bootstrap: Uint8Array;
  image: RafsImage;
  blobDir: string;
  blobId: string;
  /** The source tree (dir input) or the tar file (tar input). */
  source: string;
}

/**
 * Builds `layer` with our builder from a tar (`input: "tar"`) or a materialised directory
 * (`input: "dir"`, needs root for devices/owners) into `dir`.
 */
export async function buildTexture(
  layer: LayerSpec,
  dir: string,
  options: { input: "tar" | "dir"; chunkSize?: number; compressor?: BuildCompressor },
): Promise<BuiltImage> {
  const blobDir = path.join(dir, "blobs");
  await fsp.mkdir(blobDir, { recursive: true });
  let source: string;
  let result;
  const common = { blobDir, chunkSize: options.chunkSize ?? 0x10000, compressor: options.compressor ?? "zstd" } as const;
  if (options.input === "tar") {
    source = path.join(dir, "layer.tar");
    await writeTar(layer, source);
    result = await buildLayer({ type: "tar", stream: fs.createReadStream(source) }, common);
  } else {
    source = path.join(dir, "tree");
    await materializeDir(layer, source);
    result = await buildLayer({ type: "dir", path: source }, common);
  }
  const bootstrapPath = path.join(dir, "image.boot");
  await fsp.writeFile(bootstrapPath, result.bootstrap);
  return { bootstrapPath, bootstrap: result.bootstrap, image: openRafs(result.bootstrap), blobDir, blobId: result.blob!.blobId, source };
}

/** A node of a {@link fakeImage} tree. */
export interface FakeNode {
  name: string | Uint8Array;
  kind: FileKind;
  target?: string;
  children?: FakeNode[];
}

/**
 * A RafsImage over a hand-made tree, without any of a real reader's validation: lets tests feed
 * the unpacker names and shapes (duplicates, "..", "a/b") that a valid bootstrap cannot hold.
 * Regular files are empty.
 */
export function fakeImage(root: FakeNode[]): RafsImage {
  const inodes: { node: FakeNode; kids: RafsDirEntry[] }[] = [];
  const add = (node: FakeNode): number => {
    const ino = inodes.length + 1;
    const rec = { node, kids: [] as RafsDirEntry[] };
    inodes.push(rec);
    for (const c of node.children ?? []) {
      const cino = add(c);
      rec.kids.push({ name: typeof c.name === "string" ? new TextEncoder().encode(c.name) : c.name, ino: cino, kind: c.kind });
    }
    return ino;
  };
  add({ name: "", kind: "dir", children: root });
  const inode = (ino: number): RafsInode => {
    const { node } = inodes[ino - 1];
    const size = node.kind === "symlink" ? Buffer.byteLength(node.target ?? "") : 0;
    return { ino, kind: node.kind, mode: KIND_MODE[node.kind] | (node.kind === "dir" ? 0o755 : 0o644), uid: 0, gid: 0, mtime: 1_600_000_000, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map(), size, nlink: 1 };
  };
  return {
    superBlock: { version: 6, flags: 0n, chunkSize: 0x10000, compressor: "none", digester: "sha256", explicitUidGid: true, rootIno: 1, inodeCount: inodes.length },
    blobs: [],
    prefetch: [],
    inode,
    readdir: (dir) => inodes[dir.ino - 1].kids,
    lookup: () => undefined,
    chunks: (): FileChunk[] => [],
    readlink: (link) => new TextEncoder().encode(inodes[link.ino - 1].node.target ?? ""),
  };
}
