/**
 * A plain-data description of a bootstrap (v5 or v6) for `inspect`: superblock,
 * blobs, prefetch table, and the tree with every attribute, or one path with its
 * chunks. Everything returned is JSON-ready (numbers, strings, arrays, objects).
 */
import { toHex } from "../internal/bytes.ts";
import { NotFoundError } from "../internal/errors.ts";
import { RafsFlags } from "../rafs/format.ts";
import type { RafsImage, RafsInode } from "../rafs/model.ts";
import { walkRafs } from "../rafs/open.ts";

export interface InspectedNode {
  path: string;
  ino: number;
  type: RafsInode["kind"];
  /** Permission bits and setuid/setgid/sticky, octal string ("0755"). */
  mode: string;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  nlink: number;
  rdev?: { major: number; minor: number };
  target?: string;
  /** xattr name → value as lowercase hex. */
  xattrs?: Record<string, string>;
  chunks?: InspectedChunk[];
}

export interface InspectedChunk {
  fileOffset: number;
  blobIndex: number;
  blobId: string;
  index: number;
  digest: string;
  compressed: boolean;
  compressedOffset: number;
  compressedSize: number;
  uncompressedOffset: number;
  uncompressedSize: number;
  crc32?: string;
}

export interface Inspection {
  superBlock: {
    version: 5 | 6;
    flags: string;
    flagNames: string[];
    chunkSize: number;
    compressor: string;
    digester: string;
    explicitUidGid: boolean;
    inodes: number;
    rootIno: number;
  };
  blobs: {
    index: number;
    blobId: string;
    compressedSize: number;
    uncompressedSize: number;
    chunkCount: number;
    compressor: string;
    digester: string;
    features: string;
  }[];
  prefetch: number[];
  nodes: InspectedNode[];
}

function flagNames(flags: bigint): string[] {
  return Object.entries(RafsFlags)
    .filter(([name, bit]) => name !== "PreservedMask" && (flags & bit) !== 0n)
    .map(([name]) => name);
}

function describeNode(image: RafsImage, path: string, inode: RafsInode, withChunks: boolean): InspectedNode {
  const node: InspectedNode = {
    path,
    ino: inode.ino,
    type: inode.kind,
    mode: (inode.mode & 0o7777).toString(8).padStart(4, "0"),
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    mtime: inode.mtime,
    mtimeNsec: inode.mtimeNsec,
    nlink: inode.nlink,
  };
  if (inode.kind === "chr" || inode.kind === "blk") node.rdev = { major: inode.rdevMajor, minor: inode.rdevMinor };
  if (inode.kind === "symlink") node.target = Buffer.from(image.readlink(inode)).toString("utf8");
  if (inode.xattrs.size > 0) node.xattrs = Object.fromEntries([...inode.xattrs].map(([k, v]) => [k, toHex(v)]));
  if (withChunks && inode.kind === "reg") {
    node.chunks = image.chunks(inode).map(({ chunk: c, fileOffset }) => ({
      fileOffset,
      blobIndex: c.blobIndex,
      blobId: image.blobs[c.blobIndex]?.blobId ?? "",
      index: c.index,
      digest: toHex(c.digest),
      compressed: c.compressed,
      compressedOffset: c.compressedOffset,
      compressedSize: c.compressedSize,
      uncompressedOffset: c.uncompressedOffset,
      uncompressedSize: c.uncompressedSize,
      ...(c.crc32 !== undefined ? { crc32: c.crc32.toString(16).padStart(8, "0") } : {}),
    }));
  }
  return node;
}

/**
 * Describes an image. With `path`, only that node (and, for a regular file, its chunks);
 * otherwise every node of the tree in walk order.
 * @throws NotFoundError when `path` does not exist; FormatError for a corrupt bootstrap
 */
export function inspectImage(image: RafsImage, options: { path?: string } = {}): Inspection {
  const sb = image.superBlock;
  const out: Inspection = {
    superBlock: {
      version: sb.version,
      flags: `0x${sb.flags.toString(16)}`,
      flagNames: flagNames(sb.flags),
      chunkSize: sb.chunkSize,
      compressor: sb.compressor,
      digester: sb.digester,
      explicitUidGid: sb.explicitUidGid,
      inodes: sb.inodeCount,
      rootIno: sb.rootIno,
    },
    blobs: image.blobs.map((b, index) => ({
      index,
      blobId: b.blobId,
      compressedSize: b.compressedSize,
      uncompressedSize: b.uncompressedSize,
      chunkCount: b.chunkCount,
      compressor: b.compressor,
      digester: b.digester,
      features: `0x${(b.features >>> 0).toString(16)}`,
    })),
    prefetch: [...image.prefetch],
    nodes: [],
  };
  if (options.path !== undefined) {
    const inode = image.lookup(options.path);
    if (!inode) throw new NotFoundError(`path "${options.path}" in the bootstrap`);
    out.nodes.push(describeNode(image, options.path, inode, true));
  } else {
    for (const { path, inode } of walkRafs(image)) out.nodes.push(describeNode(image, path, inode, false));
  }
  return out;
}

/** `ls -l`-style text of an inspection. */
export function formatInspection(r: Inspection): string {
  const sb = r.superBlock;
  const lines = [
    `RAFS v${sb.version}  flags ${sb.flags} (${sb.flagNames.join("|")})`,
    `chunk size 0x${sb.chunkSize.toString(16)}  compressor ${sb.compressor}  digester ${sb.digester}  inodes ${sb.inodes}  root ${sb.rootIno}`,
    ...r.blobs.map((b) => `blob ${b.index}: ${b.blobId}  ${b.compressedSize} bytes (${b.uncompressedSize} uncompressed)  ${b.chunkCount} chunks  ${b.compressor}  features ${b.features}`),
  ];
  if (r.prefetch.length) lines.push(`prefetch: ${r.prefetch.join(" ")}`);
  const typeChar: Record<string, string> = { dir: "d", reg: "-", symlink: "l", chr: "c", blk: "b", fifo: "p", sock: "s" };
  for (const n of r.nodes) {
    const extra = n.target !== undefined ? ` -> ${n.target}` : n.rdev ? ` (${n.rdev.major}:${n.rdev.minor})` : "";
    const x = n.xattrs ? `  xattrs: ${Object.keys(n.xattrs).join(",")}` : "";
    lines.push(`${typeChar[n.type]}${n.mode} ${String(n.nlink).padStart(3)} ${n.uid}:${n.gid} ${String(n.size).padStart(10)} ${n.mtime} ino=${n.ino} ${n.path}${extra}${x}`);
    for (const c of n.chunks ?? []) {
      lines.push(`    @${c.fileOffset} blob ${c.blobIndex} chunk ${c.index} ${c.digest} ${c.compressed ? "compressed" : "raw"} c[${c.compressedOffset}+${c.compressedSize}] u[${c.uncompressedOffset}+${c.uncompressedSize}]`);
    }
  }
  return lines.join("\n");
}
