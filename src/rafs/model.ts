/**
 * The format-level in-memory model shared by the RAFS readers (v5, v6), the v6 writer
 * and the builder. Nothing here knows about OCI, tar or registries.
 *
 * Write side: a tree of {@link TreeEntry}/{@link TreeInode}; hardlinks are several
 * entries that point at the *same* TreeInode object (regular files only).
 * Read side: {@link RafsImage}, implemented by the v5 and v6 readers over the whole
 * bootstrap held in memory (a bootstrap is metadata only; nydusd maps it whole too).
 */
import type { CompressorName } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";

/** File types. */
export type FileKind = "dir" | "reg" | "symlink" | "chr" | "blk" | "fifo" | "sock";

/** S_IFMT bits for each kind. */
export const S_IFMT = 0o170000;
export const KIND_MODE: Record<FileKind, number> = {
  sock: 0o140000,
  symlink: 0o120000,
  reg: 0o100000,
  blk: 0o060000,
  dir: 0o040000,
  chr: 0o020000,
  fifo: 0o010000,
};
/** Kind from st_mode, or undefined for an unknown type. */
export function kindFromMode(mode: number): FileKind | undefined {
  // A switch, not a search of KIND_MODE: readers call this for every inode and dirent.
  switch (mode & S_IFMT) {
    case 0o140000:
      return "sock";
    case 0o120000:
      return "symlink";
    case 0o100000:
      return "reg";
    case 0o060000:
      return "blk";
    case 0o040000:
      return "dir";
    case 0o020000:
      return "chr";
    case 0o010000:
      return "fifo";
    default:
      return undefined;
  }
}

/** One chunk stored in a blob: a v6 chunk-table record / ci entry, or a v5 chunk record. */
export interface ChunkInfo {
  /** Chunk digest (32 bytes) with the image's digester over the uncompressed bytes. */
  readonly digest: Uint8Array;
  /** 0-based index in the bootstrap's blob table. */
  readonly blobIndex: number;
  /** ci_index: position in its blob's chunk table. */
  readonly index: number;
  readonly compressedOffset: number;
  readonly compressedSize: number;
  /** Offset in the uncompressed blob-cache view (4096-aligned in v6). */
  readonly uncompressedOffset: number;
  readonly uncompressedSize: number;
  /** Stored bytes are compressed with the blob's compressor. */
  readonly compressed: boolean;
  /** CRC-32C of the uncompressed bytes; present means the HAS_CRC32 flag is set. */
  readonly crc32?: number;
}

/** A chunk as used by one file: where in the file it goes. */
export interface FileChunk {
  readonly chunk: ChunkInfo;
  readonly fileOffset: number;
}

/** A blob-table entry (v6 `RafsV6Blob` fields; v5 fills what it has). */
export interface BlobInfo {
  /** 64 lowercase hex chars normally (ASCII, ≤ 64 bytes). */
  readonly blobId: string;
  readonly chunkSize: number;
  readonly chunkCount: number;
  readonly compressor: CompressorName;
  readonly digester: DigesterName;
  /** BlobFeatures bits (spec §2.6). */
  readonly features: number;
  /** Size of the data blob file in bytes. */
  readonly compressedSize: number;
  /** Size of the uncompressed blob-cache view. */
  readonly uncompressedSize: number;
  /** ToC data + its tar header, 0 if none. */
  readonly tocSize: number;
  readonly tocDigest: Uint8Array;
  readonly ciCompressor: CompressorName;
  readonly ciOffset: number;
  readonly ciCompressedSize: number;
  readonly ciUncompressedSize: number;
}

/** Inode attributes common to all kinds. */
export interface InodeAttrs {
  kind: FileKind;
  /** Full st_mode including the type bits. */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  /** Device numbers (chr/blk only, else 0). */
  rdevMajor: number;
  rdevMinor: number;
  /** Full xattr names ("user.foo", "security.capability") to values. */
  xattrs: Map<string, Uint8Array>;
}

/** Write-side inode. */
export interface TreeInode extends InodeAttrs {
  /** Regular file size in bytes (ignored for other kinds). */
  size: number;
  /** Symlink target bytes. */
  symlinkTarget?: Uint8Array;
  /** Regular file chunks in file order, covering [0, size) exactly. */
  chunks?: FileChunk[];
  /** Directory children (any order; writers sort by name bytes). */
  children?: TreeEntry[];
}

/** Write-side directory entry: a name (raw bytes, no "/") and its inode. */
export interface TreeEntry {
  name: Uint8Array;
  inode: TreeInode;
}

/** Read-side inode. `ino` is the v6 nid or the v5 inode number. */
export interface RafsInode extends InodeAttrs {
  readonly ino: number;
  /** File size; directory: on-disk dirent size; symlink: target length. */
  readonly size: number;
  readonly nlink: number;
}

/** Read-side directory entry (never "." or ".."). */
export interface RafsDirEntry {
  readonly name: Uint8Array;
  readonly ino: number;
  readonly kind: FileKind;
}

/** Superblock facts common to v5 and v6. */
export interface RafsSuperInfo {
  readonly version: 5 | 6;
  /** RafsSuperFlags (spec §2.5). */
  readonly flags: bigint;
  readonly chunkSize: number;
  readonly compressor: CompressorName;
  readonly digester: DigesterName;
  readonly explicitUidGid: boolean;
  readonly rootIno: number;
  /** s_inos (v6) / s_inodes_count (v5). */
  readonly inodeCount: number;
}

/** A decoded bootstrap. All methods validate what they read and throw FormatError. */
export interface RafsImage {
  readonly superBlock: RafsSuperInfo;
  readonly blobs: readonly BlobInfo[];
  /** Prefetch table: inode numbers (nids for v6). */
  readonly prefetch: readonly number[];
  inode(ino: number): RafsInode;
  /** Children of a directory in on-disk (name-sorted) order, without "." and "..". */
  readdir(dir: RafsInode): RafsDirEntry[];
  /** Resolves an absolute path ("/a/b"); undefined when absent. */
  lookup(path: string): RafsInode | undefined;
  /** Chunks of a regular file in file order, fully resolved. */
  chunks(file: RafsInode): FileChunk[];
  readlink(link: RafsInode): Uint8Array;
}
