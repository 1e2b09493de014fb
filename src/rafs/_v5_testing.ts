/**
 * Test-only helpers for the RAFS v5 tests: the upstream fixtures, file extraction from the
 * raw blob, the `.result` file parser and a `tree -v` model (GNU strverscmp order).
 */
import fs from "node:fs";
import { codecByName } from "../compression/codec.ts";
import { fixture } from "../../test/support/paths.ts";
import type { ChunkInfo, RafsImage, RafsInode } from "./model.ts";

export const V5_FIXTURES = ["sha256-nocompress-repeatable", "blake3-lz4_block-non_repeatable"] as const;
export const V5_BLOB_ID = "7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00";

export function readBootstrap(name: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(fixture(name)));
}
export function readBlob(blobId: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(fixture(`blobs/${blobId}`)));
}

/** Uncompressed bytes of a chunk from its blob (bounds-checked). */
export function readChunk(image: RafsImage, blob: Uint8Array, chunk: ChunkInfo): Uint8Array {
  const end = chunk.compressedOffset + chunk.compressedSize;
  if (end > blob.length) throw new RangeError(`chunk [${chunk.compressedOffset}, ${end}) is outside the blob (${blob.length} bytes)`);
  const stored = blob.subarray(chunk.compressedOffset, end);
  return chunk.compressed ? codecByName(image.blobs[chunk.blobIndex].compressor).decompress(stored, chunk.uncompressedSize) : stored;
}

/** File contents: each chunk at its file offset, gaps zero. */
export function extractFile(image: RafsImage, file: RafsInode, blobs: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(file.size);
  for (const { chunk, fileOffset } of image.chunks(file)) out.set(readChunk(image, blobs[chunk.blobIndex], chunk), fileOffset);
  return out;
}

/** The two parts of a `.result` file. */
export interface ParsedResult {
  /** `tree -a -J -v` JSON: [root directory, report]. */
  readonly tree: unknown[];
  /** `md5sum` lines ("<md5>  <path>"), in file order. */
  readonly md5Lines: string[];
}

export function parseResult(text: string): ParsedResult {
  const lines = text.split("\n");
  const end = lines.indexOf("]");
  if (end < 0) throw new SyntaxError("no closing ] line in .result");
  return { tree: JSON.parse(lines.slice(0, end + 1).join("\n")), md5Lines: lines.slice(end + 1).filter((l) => l !== "") };
}

/** glibc `strverscmp` (the order of `tree -v`), over bytes. */
export function strverscmp(a: Uint8Array, b: Uint8Array): number {
  const S_N = 0, S_I = 3, S_F = 6, S_Z = 9, CMP = 2, LEN = 3;
  const next = [S_N, S_I, S_Z, S_N, S_I, S_I, S_N, S_F, S_F, S_N, S_F, S_Z];
  const result = [
    CMP, CMP, CMP, CMP, LEN, CMP, CMP, CMP, CMP,
    CMP, -1, -1, +1, LEN, LEN, +1, LEN, LEN,
    CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP,
    CMP, +1, +1, -1, CMP, CMP, -1, CMP, CMP,
  ];
  const at = (s: Uint8Array, i: number) => (i < s.length ? s[i] : 0);
  const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
  const cls = (c: number) => (c === 0x30 ? 1 : 0) + (isDigit(c) ? 1 : 0);
  let i = 0;
  let c1 = at(a, i);
  let c2 = at(b, i);
  i++;
  let state = S_N + cls(c1);
  let diff: number;
  while ((diff = c1 - c2) === 0) {
    if (c1 === 0) return 0;
    state = next[state];
    c1 = at(a, i);
    c2 = at(b, i);
    i++;
    state += cls(c1);
  }
  const r = result[state * 3 + cls(c2)];
  if (r === CMP) return diff;
  if (r === LEN) {
    let j = i;
    while (isDigit(at(a, j))) {
      if (!isDigit(at(b, j))) return 1;
      j++;
    }
    return isDigit(at(b, j)) ? -1 : diff;
  }
  return r;
}

const dec = (b: Uint8Array) => Buffer.from(b).toString("utf8");

/**
 * Real path (components) a symlink target resolves to inside the image: absolute targets
 * start at the image root, ".." stops at the root, at most 40 links; undefined when dangling.
 */
function resolvePath(image: RafsImage, base: readonly string[], target: string, depth: number): string[] | undefined {
  if (depth > 40) return undefined;
  let parts = target.startsWith("/") ? [] : [...base];
  for (const p of target.split("/")) {
    if (p === "" || p === ".") continue;
    if (image.lookup("/" + parts.join("/"))?.kind !== "dir") return undefined;
    if (p === "..") {
      parts.pop();
      continue;
    }
    const child = image.lookup("/" + [...parts, p].join("/"));
    if (!child) return undefined;
    if (child.kind === "symlink") {
      const r = resolvePath(image, parts, dec(image.readlink(child)), depth + 1);
      if (!r) return undefined;
      parts = r;
    } else parts.push(p);
  }
  return parts;
}

/** Kind of what a symlink in `dirPath` with `target` resolves to (following links), or undefined. */
export function resolveKind(image: RafsImage, dirPath: string, target: string): RafsInode["kind"] | undefined {
  const parts = resolvePath(image, dirPath.split("/").filter(Boolean), target, 0);
  return parts ? image.lookup("/" + parts.join("/"))?.kind : undefined;
}

/** What `tree -a -J -v` prints for the image (root name ""), with tree's report counts. */
export function treeJson(image: RafsImage): unknown[] {
  let dirs = 0;
  let files = 0;
  const node = (path: string, name: string, ino: number): Record<string, unknown> => {
    const inode = image.inode(ino);
    if (inode.kind === "dir") {
      const kids = image.readdir(inode).sort((x, y) => strverscmp(x.name, y.name));
      return {
        type: "directory",
        name,
        contents: kids.map((k) => {
          const childPath = `${path}/${dec(k.name)}`;
          const n = node(childPath, dec(k.name), k.ino);
          if (k.kind === "symlink") {
            if (resolveKind(image, path || "/", n.target as string) === "dir") dirs++;
            else files++;
          } else if (k.kind === "dir") dirs++;
          else files++;
          return n;
        }),
      };
    }
    if (inode.kind === "symlink") return { type: "link", name, target: dec(image.readlink(inode)), contents: [] };
    const types: Record<string, string> = { reg: "file", chr: "char", blk: "block", fifo: "fifo", sock: "socket" };
    return { type: types[inode.kind], name };
  };
  const root = node("", "", image.superBlock.rootIno);
  return [root, { type: "report", directories: dirs, files }];
}

/** Every path of the image with its inode, depth-first in readdir order. */
export function allPaths(image: RafsImage): Array<[string, RafsInode]> {
  const out: Array<[string, RafsInode]> = [];
  const visit = (path: string, inode: RafsInode) => {
    out.push([path || "/", inode]);
    if (inode.kind === "dir") for (const e of image.readdir(inode)) visit(`${path}/${dec(e.name)}`, image.inode(e.ino));
  };
  visit("", image.inode(image.superBlock.rootIno));
  return out;
}
