/**
 * RAFS v5 bootstrap reader: {@link openRafsV5} decodes a whole v5 bootstrap held in memory
 * into a {@link RafsImage} (spec §5).
 *
 * Inode numbers are the on-disk `i_ino`; `inode(ino)` is the record at inode-table entry
 * `ino - 1`, as in nydusd. Every record is checked when first used, with nydusd's
 * `validate()` rules (§8.2 item 3) plus the rules that make a hostile bootstrap unable to
 * produce cycles or exponential walks:
 *
 * - a child's `i_parent` is the directory's inode number;
 * - a child directory's `i_ino` equals its own table index and is larger than its parent's;
 * - names in a directory are non-empty, contain no "/" nor NUL, are not "." or "..", and are
 *   strictly increasing (byte order), as the binary search of nydusd requires.
 *
 * With these, the directories form a tree and a full walk reads each index at most once.
 */
import { compareBytes } from "../internal/bytes.ts";
import { FormatError } from "../internal/errors.ts";
import { type ChunkRecord, chunkInfoFromRecord, decodeChunkRecord, CHUNK_RECORD_SIZE } from "./chunk_record.ts";
import { RafsFlags } from "./format.ts";
import {
  kindFromMode,
  type BlobInfo,
  type FileChunk,
  type FileKind,
  type RafsDirEntry,
  type RafsImage,
  type RafsInode,
  type RafsSuperInfo,
} from "./model.ts";
import {
  RAFSV5_INODE_FLAG_HAS_HOLE,
  RAFSV5_MAX_NAME_SIZE,
  RAFSV5_ROOT_INODE,
  type RafsV5BlobEntry,
  type RafsV5ExtBlobEntry,
  type RafsV5InodeRecord,
  type RafsV5SuperBlock,
  compressorFromSuperFlags,
  decodeBlobTable,
  decodeExtBlobEntry,
  decodeInodeTable,
  decodePrefetchTable,
  decodeRafsV5InodeRecord,
  decodeRafsV5SuperBlock,
  digesterFromSuperFlags,
  validateRafsV5SuperBlock,
  RAFSV5_EXT_BLOB_ENTRY_SIZE,
} from "./v5_format.ts";

/** A validated inode record together with its inode-table index and kind. */
export interface RafsV5Entry {
  /** 1-based inode-table index (a directory child slot). */
  readonly index: number;
  readonly kind: FileKind;
  readonly record: RafsV5InodeRecord;
}

/** A v5 image: the {@link RafsImage} view plus access to the raw v5 structures. */
export interface RafsV5Image extends RafsImage {
  /** The bootstrap the image was opened from (not copied). */
  readonly bootstrap: Uint8Array;
  readonly v5SuperBlock: RafsV5SuperBlock;
  readonly blobTable: readonly RafsV5BlobEntry[];
  /** Empty for very old images without an extended blob table. */
  readonly extBlobTable: readonly RafsV5ExtBlobEntry[];
  /** Number of inode-table entries (indexes). */
  readonly indexCount: number;
  /** The validated record at a 1-based inode-table index. */
  entry(index: number): RafsV5Entry;
  /** The canonical entry of an inode number (table entry `ino - 1`, whose `i_ino` must be `ino`). */
  entryOfIno(ino: number): RafsV5Entry;
  /** Children of a directory entry in on-disk (index) order, each validated against it. */
  children(dir: RafsV5Entry): RafsV5Entry[];
  /** Chunk records of a regular-file entry, in file order, validated. */
  chunkRecords(file: RafsV5Entry): ChunkRecord[];
}

const ZERO_DIGEST = new Uint8Array(32);

/**
 * Opens a RAFS v5 bootstrap.
 *
 * Checks the superblock and table layout, every inode-table entry's offset, the blob tables
 * and the root inode up front; other records are checked when first used.
 *
 * @param bootstrap the whole bootstrap file (kept by reference, not copied)
 * @returns the image; all its methods throw {@link FormatError} on malformed metadata
 * @throws FormatError naming struct, field and absolute offset
 * @example
 * const image = openRafsV5(new Uint8Array(fs.readFileSync("bootstrap")));
 * const f = image.lookup("/etc/passwd");
 * if (f) for (const { chunk, fileOffset } of image.chunks(f)) console.log(fileOffset, chunk.compressedSize);
 */
export function openRafsV5(bootstrap: Uint8Array): RafsV5Image {
  const sb = decodeRafsV5SuperBlock(bootstrap);
  validateRafsV5SuperBlock(sb, bootstrap.length);
  const offsets = decodeInodeTable(bootstrap, sb);

  const blobTable = decodeBlobTable(bootstrap, sb);
  const extBlobTable: RafsV5ExtBlobEntry[] = [];
  for (let i = 0; i < sb.extendedBlobTableEntries; i++) {
    extBlobTable.push(decodeExtBlobEntry(bootstrap, sb.extendedBlobTableOffset + i * RAFSV5_EXT_BLOB_ENTRY_SIZE));
  }
  if (extBlobTable.length > 0 && extBlobTable.length < blobTable.length) {
    throw new FormatError(
      "RafsV5SuperBlock",
      "s_extended_blob_table_entries",
      68,
      `${extBlobTable.length} extended entries for ${blobTable.length} blobs`,
    );
  }
  const compressor = compressorFromSuperFlags(sb.flags);
  const digester = digesterFromSuperFlags(sb.flags);
  const blobs: BlobInfo[] = blobTable.map((b, i) => {
    const ext = extBlobTable[i];
    return {
      blobId: b.blobId,
      chunkSize: sb.blockSize,
      chunkCount: ext?.chunkCount ?? 0,
      compressor,
      digester,
      features: ext?.features ?? 0,
      compressedSize: ext?.compressedSize ?? 0,
      uncompressedSize: ext?.uncompressedSize ?? 0,
      tocSize: 0,
      tocDigest: ZERO_DIGEST,
      ciCompressor: "none",
      ciOffset: 0,
      ciCompressedSize: 0,
      ciUncompressedSize: 0,
    };
  });
  const superBlock: RafsSuperInfo = {
    version: 5,
    flags: sb.flags,
    chunkSize: sb.blockSize,
    compressor,
    digester,
    explicitUidGid: (sb.flags & RafsFlags.ExplicitUidGid) !== 0n,
    rootIno: RAFSV5_ROOT_INODE,
    inodeCount: sb.inodesCount,
  };
  const prefetch = decodePrefetchTable(bootstrap, sb);

  const cache = new Map<number, RafsV5Entry>();

  function fail(rec: RafsV5InodeRecord, field: string, fieldOff: number, detail: string): never {
    throw new FormatError("RafsV5Inode", field, rec.offset + fieldOff, detail);
  }

  /** nydusd's `OndiskInodeWrapper::validate` plus a known file type. */
  function entry(index: number): RafsV5Entry {
    const hit = cache.get(index);
    if (hit) return hit;
    if (!Number.isInteger(index) || index < 1 || index > offsets.length) {
      throw new RangeError(`Cannot read inode-table index ${index}: expected 1..${offsets.length}`);
    }
    const record = decodeRafsV5InodeRecord(bootstrap, offsets[index - 1]);
    const i = record.inode;
    const kind = kindFromMode(i.mode);
    if (!kind) fail(record, "i_mode", 60, `unknown file type in mode 0o${i.mode.toString(8)}`);
    if (i.ino < 1 || i.ino > offsets.length) fail(record, "i_ino", 40, `inode number ${i.ino} is outside 1..${offsets.length}`);
    if (i.ino !== RAFSV5_ROOT_INODE && i.parent === 0) fail(record, "i_parent", 32, "non-root inode has parent 0");
    if (i.nlink === 0) fail(record, "i_nlink", 88, "link count is 0");
    if (i.nameSize < 1 || i.nameSize > RAFSV5_MAX_NAME_SIZE) fail(record, "i_name_size", 100, `name size ${i.nameSize} is outside 1..256`);
    if (i.nlink <= 1 && i.parent >= i.ino) fail(record, "i_parent", 32, `parent ${i.parent} is not below inode ${i.ino}`);
    if (kind === "reg") {
      const expected = Math.ceil(i.size / sb.blockSize);
      if ((i.flags & RAFSV5_INODE_FLAG_HAS_HOLE) === 0n && i.childCount !== expected) {
        fail(record, "i_child_count", 96, `${i.childCount} chunks for size ${i.size}, expected ${expected}`);
      }
    } else if (kind === "dir") {
      if (i.childCount > 0 && (i.childIndex <= i.ino || i.childIndex + i.childCount - 1 > offsets.length)) {
        fail(record, "i_child_index", 92, `children ${i.childIndex}..+${i.childCount} are not within ${i.ino + 1}..${offsets.length}`);
      }
    } else if (kind === "symlink" && i.symlinkSize === 0) {
      fail(record, "i_symlink_size", 102, "symlink has an empty target");
    }
    const e: RafsV5Entry = { index, kind, record };
    cache.set(index, e);
    return e;
  }

  function entryOfIno(ino: number): RafsV5Entry {
    const e = entry(ino);
    if (e.record.inode.ino !== ino) {
      fail(e.record, "i_ino", 40, `inode-table entry ${ino - 1} holds inode ${e.record.inode.ino}, expected ${ino}`);
    }
    return e;
  }

  function children(dir: RafsV5Entry): RafsV5Entry[] {
    if (dir.kind !== "dir") throw new TypeError(`Cannot list inode ${dir.record.inode.ino}: not a directory`);
    const d = dir.record.inode;
    const out: RafsV5Entry[] = [];
    for (let k = 0; k < d.childCount; k++) {
      const c = entry(d.childIndex + k);
      const ci = c.record.inode;
      const name = c.record.name;
      if (ci.parent !== d.ino) fail(c.record, "i_parent", 32, `child ${c.index} of inode ${d.ino} names parent ${ci.parent}`);
      if (name.includes(0x2f) || name.includes(0) || (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e)))) {
        fail(c.record, "name", 128, `invalid directory entry name "${Buffer.from(name).toString("latin1")}"`);
      }
      if (out.length > 0 && compareBytes(out[out.length - 1].record.name, name) >= 0) {
        fail(c.record, "name", 128, `name "${Buffer.from(name).toString("latin1")}" is not sorted after its predecessor`);
      }
      if (c.kind === "dir" && (ci.ino !== c.index || ci.ino <= d.ino)) {
        fail(c.record, "i_ino", 40, `directory at index ${c.index} has inode ${ci.ino} (parent ${d.ino})`);
      }
      if (ci.ino !== c.index) {
        // A hardlink: the inode's canonical record must exist and be of the same kind.
        const canon = entryOfIno(ci.ino);
        if (canon.kind !== c.kind) fail(c.record, "i_mode", 60, `hardlink kind ${c.kind} differs from inode ${ci.ino}'s ${canon.kind}`);
      }
      out.push(c);
    }
    return out;
  }

  function chunkRecords(file: RafsV5Entry): ChunkRecord[] {
    if (file.kind !== "reg") throw new TypeError(`Cannot read chunks of inode ${file.record.inode.ino}: not a regular file`);
    const rec = file.record;
    const i = rec.inode;
    const hole = (i.flags & RAFSV5_INODE_FLAG_HAS_HOLE) !== 0n;
    const out: ChunkRecord[] = [];
    let prevEnd = 0;
    for (let k = 0; k < rec.chunkCount; k++) {
      const off = rec.chunksOffset + k * CHUNK_RECORD_SIZE;
      const c = decodeChunkRecord(bootstrap, off);
      const bad = (field: string, fieldOff: number, detail: string): never => {
        throw new FormatError("RafsV5ChunkInfo", field, off + fieldOff, `chunk ${k} of inode ${i.ino}: ${detail}`);
      };
      if (c.blobIndex >= blobs.length) bad("blob_index", 32, `blob index ${c.blobIndex} is outside the ${blobs.length}-entry blob table`);
      if (c.uncompressedSize === 0 || c.uncompressedSize > sb.blockSize) {
        bad("uncompressed_size", 44, `size ${c.uncompressedSize} is outside 1..${sb.blockSize}`);
      }
      if (!hole && c.fileOffset !== k * sb.blockSize) bad("file_offset", 64, `offset ${c.fileOffset}, expected ${k * sb.blockSize}`);
      if (c.fileOffset < prevEnd) bad("file_offset", 64, `offset ${c.fileOffset} overlaps the previous chunk ending at ${prevEnd}`);
      prevEnd = c.fileOffset + c.uncompressedSize;
      if (prevEnd > i.size) bad("file_offset", 64, `chunk ends at ${prevEnd}, past the file size ${i.size}`);
      out.push(c);
    }
    return out;
  }

  function toInode(e: RafsV5Entry): RafsInode {
    const i = e.record.inode;
    const dev = e.kind === "chr" || e.kind === "blk";
    return {
      ino: i.ino,
      kind: e.kind,
      mode: i.mode,
      uid: i.uid,
      gid: i.gid,
      mtime: i.mtime,
      mtimeNsec: i.mtimeNsec,
      // Linux old/new dev_t encoding truncated to 32 bits (glibc gnu_dev_major/minor).
      rdevMajor: dev ? (i.rdev >>> 8) & 0xfff : 0,
      rdevMinor: dev ? (i.rdev & 0xff) | ((i.rdev >>> 12) & 0xfff00) : 0,
      xattrs: new Map([...e.record.xattrs].map(([k, v]) => [k, v.slice()])),
      size: i.size,
      nlink: i.nlink,
    };
  }

  const root = entryOfIno(RAFSV5_ROOT_INODE);
  if (root.kind !== "dir") fail(root.record, "i_mode", 60, "root inode is not a directory");
  if (root.record.inode.parent !== 0) fail(root.record, "i_parent", 32, `root has parent ${root.record.inode.parent}`);

  const image: RafsV5Image = {
    superBlock,
    blobs,
    prefetch,
    bootstrap,
    v5SuperBlock: sb,
    blobTable,
    extBlobTable,
    indexCount: offsets.length,
    entry,
    entryOfIno,
    children,
    chunkRecords,
    inode(ino) {
      if (!Number.isInteger(ino) || ino < 1 || ino > offsets.length) throw new RangeError(`Cannot read inode ${ino}: expected 1..${offsets.length}`);
      return toInode(entryOfIno(ino));
    },
    readdir(dir) {
      return children(entryOfIno(dir.ino)).map((c) => ({ name: c.record.name.slice(), ino: c.record.inode.ino, kind: c.kind }) satisfies RafsDirEntry);
    },
    lookup(path) {
      if (!path.startsWith("/")) throw new TypeError(`Cannot look up "${path}": not an absolute path`);
      const stack: RafsV5Entry[] = [root];
      const enc = new TextEncoder();
      const parts = path.split("/");
      for (const [n, part] of parts.entries()) {
        const cur = stack[stack.length - 1];
        // Like path resolution: only a directory may be followed by another component,
        // including "." and ".." ("/file/." does not exist). A trailing "/" is ignored.
        if (part === "" && (n === 0 || n === parts.length - 1)) continue;
        if (cur.kind !== "dir") return undefined;
        if (part === "" || part === ".") continue;
        if (part === "..") {
          if (stack.length > 1) stack.pop();
          continue;
        }
        const want = enc.encode(part);
        const kids = children(cur);
        let lo = 0;
        let hi = kids.length - 1;
        let found: RafsV5Entry | undefined;
        while (lo <= hi) {
          const mid = (lo + hi) >>> 1;
          const c = compareBytes(kids[mid].record.name, want);
          if (c === 0) {
            found = kids[mid];
            break;
          }
          if (c < 0) lo = mid + 1;
          else hi = mid - 1;
        }
        if (!found) return undefined;
        stack.push(found.record.inode.ino === found.index ? found : entryOfIno(found.record.inode.ino));
      }
      return toInode(stack[stack.length - 1]);
    },
    chunks(file) {
      const e = entryOfIno(file.ino);
      return chunkRecords(e).map((c) => ({ chunk: chunkInfoFromRecord(c), fileOffset: c.fileOffset }) satisfies FileChunk);
    },
    readlink(link) {
      const e = entryOfIno(link.ino);
      if (e.kind !== "symlink") throw new TypeError(`Cannot read link of inode ${link.ino}: not a symlink`);
      return e.record.symlink.slice();
    },
  };
  return image;
}
