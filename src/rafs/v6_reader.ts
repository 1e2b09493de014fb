/**
 * RAFS v6 bootstrap reader: a {@link RafsImage} over a whole bootstrap held in memory
 * (spec §3, reading rules §3.16, acceptance rules §8.1).
 *
 * Everything the superblock, extended superblock, device table, blob table, prefetch
 * table and chunk table say is decoded and validated once in {@link openRafsV6}; inodes,
 * directories, chunk addresses and symlink targets are decoded and validated on demand.
 * Every offset read is checked against the file size first, so a corrupt or hostile
 * bootstrap yields a {@link FormatError} (struct, field, absolute offset), never a
 * DataView RangeError, a huge allocation or an endless loop.
 */
import { FormatError } from "../internal/errors.ts";
import { alignUp, ceilDiv, compareBytes } from "../internal/bytes.ts";
import {
  DataLayout,
  FileType,
  EROFS_CHUNK_ADDR_SIZE,
  EROFS_DEVICE_SLOT_SIZE,
  EROFS_DIRENT_SIZE,
  EROFS_INODE_SLOT,
  EROFS_SUPER_OFFSET,
  EROFS_SUPER_SIZE,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  decodeChunkAddr,
  decodeDeviceSlot,
  decodeDirentBlock,
  decodeInode,
  decodeRdev,
  decodeSuperBlock,
  decodeXattrArea,
  kindFromFileType,
  validateRafsSuperBlock,
  type ChunkAddr,
  type DeviceSlot,
  type InodeRecord,
  type NamedDirent,
  type SuperBlock,
} from "../erofs/format.ts";
import {
  RAFS_BLOB_ENTRY_SIZE,
  RAFS_CHUNK_RECORD_SIZE,
  RAFS_DEVICE_TABLE_OFFSET,
  RAFS_EXT_SUPER_OFFSET,
  RAFS_EXT_SUPER_SIZE,
  RafsFlags,
  decodeBlobEntry,
  decodeExtSuperBlock,
  decodePrefetchTable,
  flagsAlgorithms,
  validateExtSuperBlock,
  type BlobEntry,
  type ExtSuperBlock,
} from "./format.ts";
import { chunkInfoFromRecord, decodeChunkRecord, type ChunkRecord } from "./chunk_record.ts";
import { kindFromMode, type FileChunk, type FileKind, type RafsDirEntry, type RafsImage, type RafsInode, type RafsSuperInfo } from "./model.ts";

/** BlobFeatures bits the reader checks (spec §2.6). */
const BLOB_ALIGNED = 0x1;
const BLOB_CHUNK_INFO_V2 = 0x4;
const BLOB_ZRAN = 0x8;
const BLOB_TARFS = 0x40;
const BLOB_BATCH = 0x80;
const BLOB_ENCRYPTED = 0x100;
const BLOB_IS_CHUNKDICT_GENERATED = 0x200;
const BLOB_RESERVED_BITS = 0x0000_f000;
const BLOB_V5_NO_EXT_BLOB_TABLE = 0x8000_0000;
/** Most chunks one blob may hold (24-bit ci_index). §3.5 */
const MAX_BLOB_CHUNKS = 0x100_0000;
/** Blob size limits of the v6 reader. §2.9 */
const MAX_BLOB_UNCOMPRESSED = 2 ** 44;
const MAX_BLOB_COMPRESSED = 2 ** 40;
/** Longest symlink target this reader returns (builder limit; nydusd itself stops at 4096). §2.9 */
const MAX_SYMLINK = 0xffff;

/** A RAFS v6 image: the generic {@link RafsImage} plus the raw on-disk records. */
export interface RafsV6Image extends RafsImage {
  readonly superBlockRecord: SuperBlock;
  readonly extSuperBlock: ExtSuperBlock;
  /** Device slots in table order (slot i ↔ blob i ↔ EROFS device id i+1). */
  readonly devices: readonly DeviceSlot[];
  /** Blob-table entries (the same objects as {@link RafsImage.blobs}). */
  readonly blobEntries: readonly BlobEntry[];
  /** Chunk-table records in on-disk order. */
  readonly chunkRecords: readonly ChunkRecord[];
  /** Absolute offset of the meta area (`s_meta_blkaddr * block size`). */
  readonly metaAddr: number;
  readonly blockSize: number;
  /** Absolute file offset of inode `nid` (range-checked). */
  inodeOffset(nid: number): number;
  /** The raw inode record of `nid`. */
  inodeRecord(nid: number): InodeRecord;
  /** Every dirent of a directory in on-disk order, "." and ".." included. */
  dirents(dir: RafsInode): NamedDirent[];
  /** The raw chunk addresses of a regular file in file order. */
  chunkAddrs(file: RafsInode): ChunkAddr[];
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Opens a RAFS v6 bootstrap.
 *
 * @param bootstrap the whole bootstrap file
 * @returns the image; its methods validate what they read
 * @throws FormatError when the superblock, extended superblock, device table, blob table,
 *   prefetch table, chunk table or root inode is malformed
 * @example
 * const img = openRafsV6(fs.readFileSync("rafs-v6-2.2.boot"));
 * img.readdir(img.inode(img.superBlock.rootIno)).map((e) => Buffer.from(e.name).toString());
 */
export function openRafsV6(bootstrap: Uint8Array): RafsV6Image {
  return new V6Image(bootstrap);
}

class V6Image implements RafsV6Image {
  readonly superBlock: RafsSuperInfo;
  readonly superBlockRecord: SuperBlock;
  readonly extSuperBlock: ExtSuperBlock;
  readonly devices: DeviceSlot[];
  readonly blobEntries: BlobEntry[];
  readonly blobs: BlobEntry[];
  readonly prefetch: number[];
  readonly metaAddr: number;
  readonly blockSize: number;
  /** End (exclusive) of the region inodes and their inline data may occupy. */
  private readonly metaEnd: number;
  private readonly chunkTable: LazyChunkTable;
  private readonly inodeRecords = new Map<number, InodeRecord>();
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    const size = bytes.length;
    const sb = decodeSuperBlock(bytes.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + EROFS_SUPER_SIZE));
    validateRafsSuperBlock(sb, size);
    const ext = decodeExtSuperBlock(bytes.subarray(RAFS_EXT_SUPER_OFFSET, RAFS_EXT_SUPER_OFFSET + RAFS_EXT_SUPER_SIZE));
    validateExtSuperBlock(ext, size);
    this.superBlockRecord = sb;
    this.extSuperBlock = ext;
    this.blockSize = 2 ** sb.blkszbits;
    this.metaAddr = sb.metaBlkaddr * this.blockSize;
    this.metaEnd = ext.chunkTableSize > 0 && ext.chunkTableOffset > this.metaAddr ? ext.chunkTableOffset : size;
    const tarfs = (ext.flags & RafsFlags.TarfsMode) !== 0n;

    // Blob table (§3.5).
    const nblobs = ext.blobTableSize / RAFS_BLOB_ENTRY_SIZE;
    this.blobEntries = [];
    for (let i = 0; i < nblobs; i++) {
      const off = ext.blobTableOffset + i * RAFS_BLOB_ENTRY_SIZE;
      const b = decodeBlobEntry(bytes.subarray(off, off + RAFS_BLOB_ENTRY_SIZE), off);
      validateBlobEntry(b, i, off, ext.chunkSize, tarfs);
      this.blobEntries.push(b);
    }
    this.blobs = this.blobEntries;

    // Device table (§3.4): one slot per blob, same ids, blocks != 0, no duplicates.
    if (sb.extraDevices !== nblobs) {
      throw new FormatError("RafsV6SuperBlock", "s_extra_devices", EROFS_SUPER_OFFSET + 86, `${sb.extraDevices} devices but ${nblobs} blob-table entries`);
    }
    this.devices = [];
    const seen = new Set<string>();
    for (let i = 0; i < sb.extraDevices; i++) {
      const off = RAFS_DEVICE_TABLE_OFFSET + i * EROFS_DEVICE_SLOT_SIZE;
      const d = decodeDeviceSlot(bytes.subarray(off, off + EROFS_DEVICE_SLOT_SIZE), off);
      if (d.blocks === 0) throw new FormatError("RafsV6Device", "blocks", off + 64, `device ${i} has 0 blocks`);
      if (seen.has(d.blobId)) throw new FormatError("RafsV6Device", "blob_id", off, `duplicate device "${d.blobId}"`);
      if (d.blobId !== this.blobEntries[i].blobId) {
        throw new FormatError("RafsV6Device", "blob_id", off, `device ${i} is "${d.blobId}" but blob ${i} is "${this.blobEntries[i].blobId}"`);
      }
      seen.add(d.blobId);
      this.devices.push(d);
    }

    // Chunk table (§3.13): records keyed by (blob index, ci_index, uncompressed block), decoded
    // when first used (a big image has tens of thousands, and a lazy reader needs few).
    this.chunkTable = new LazyChunkTable(bytes, ext.chunkTableOffset, ext.chunkTableSize / RAFS_CHUNK_RECORD_SIZE, this.blockSize, this.blobEntries.map((b) => b.chunkCount));

    const { compressor, digester } = flagsAlgorithms(ext.flags);
    this.superBlock = {
      version: 6,
      flags: ext.flags,
      chunkSize: ext.chunkSize,
      compressor,
      digester,
      explicitUidGid: (ext.flags & RafsFlags.ExplicitUidGid) !== 0n,
      rootIno: sb.rootNid,
      inodeCount: sb.inos,
    };

    // Prefetch table (§3.6): nids, a 0 ends it.
    this.prefetch = [];
    if (ext.prefetchTableSize > 0 && ext.prefetchTableOffset !== 0) {
      const off = ext.prefetchTableOffset;
      const nids = decodePrefetchTable(bytes.subarray(off, off + ext.prefetchTableSize), off);
      nids.forEach((nid, i) => {
        if (!this.nidInRange(nid)) throw new FormatError("RafsV6PrefetchTable", "nid", off + 4 * i, `nid ${nid} is outside the meta area`);
      });
      this.prefetch = nids;
    }

    const root = this.inode(sb.rootNid);
    if (root.kind !== "dir") throw new FormatError("RafsV6SuperBlock", "s_root_nid", EROFS_SUPER_OFFSET + 14, `root nid ${sb.rootNid} is a ${root.kind}, not a directory`);
  }

  /** Chunk-table records in on-disk order (all decoded on first use). */
  get chunkRecords(): readonly ChunkRecord[] {
    return this.chunkTable.all();
  }

  private nidInRange(nid: number): boolean {
    return Number.isSafeInteger(nid) && nid >= 0 && nid <= (this.metaEnd - this.metaAddr - 2) / EROFS_INODE_SLOT;
  }

  inodeOffset(nid: number): number {
    if (!Number.isSafeInteger(nid) || nid < 0) throw new RangeError(`Cannot read inode: nid ${nid} is not a non-negative integer`);
    if (!this.nidInRange(nid)) {
      throw new FormatError("RafsV6Inode", "nid", this.metaAddr, `nid ${nid} is outside the meta area ${this.metaAddr}..${this.metaEnd}`);
    }
    return this.metaAddr + nid * EROFS_INODE_SLOT;
  }

  inodeRecord(nid: number): InodeRecord {
    // Decoded once: a walk asks for each inode several times (its parent's listing, the inode,
    // its chunks or target).
    let rec = this.inodeRecords.get(nid);
    if (!rec) {
      rec = this.decodeInodeRecord(nid);
      this.inodeRecords.set(nid, rec);
    }
    return rec;
  }

  private decodeInodeRecord(nid: number): InodeRecord {
    const off = this.inodeOffset(nid);
    const rec = decodeInode(this.bytes.subarray(off, this.metaEnd), off);
    const fail = (field: string, rel: number, detail: string): never => {
      throw new FormatError(rec.extended ? "RafsV6InodeExtended" : "RafsV6InodeCompact", field, off + rel, `nid ${nid}: ${detail}`);
    };
    const kind = kindFromMode(rec.mode);
    if (!kind) fail("i_mode", 4, `unknown file type in mode 0o${rec.mode.toString(8)}`);
    const layout = rec.layout;
    if (layout !== DataLayout.FlatPlain && layout !== DataLayout.FlatInline && layout !== DataLayout.ChunkBased) {
      fail("i_format", 0, `unsupported data layout ${layout}`);
    }
    if (kind === "reg" ? layout !== DataLayout.ChunkBased : layout === DataLayout.ChunkBased) {
      fail("i_format", 0, `data layout ${layout} is invalid for a ${kind}`);
    }
    if (off + rec.inodeSize + xattrAreaBytes(rec.xattrIcount) > this.metaEnd) {
      fail("i_xattr_icount", 2, `inode and ${xattrAreaBytes(rec.xattrIcount)} xattr bytes run past the meta area end ${this.metaEnd}`);
    }
    return rec;
  }

  inode(nid: number): RafsInode {
    const rec = this.inodeRecord(nid);
    const off = this.metaAddr + nid * EROFS_INODE_SLOT;
    const kind = kindFromMode(rec.mode)!;
    const xoff = off + rec.inodeSize;
    const xattrs = decodeXattrArea(this.bytes.subarray(xoff, this.metaEnd), rec.xattrIcount, xoff);
    const rdev = kind === "chr" || kind === "blk" ? decodeRdev(rec.u) : { major: 0, minor: 0 };
    return {
      ino: nid,
      kind,
      mode: rec.mode,
      uid: rec.uid,
      gid: rec.gid,
      mtime: rec.mtime,
      mtimeNsec: rec.mtimeNsec,
      rdevMajor: rdev.major,
      rdevMinor: rdev.minor,
      xattrs,
      size: rec.size,
      nlink: rec.nlink,
    };
  }

  /**
   * Locations of the data blocks of a FLAT_PLAIN / FLAT_INLINE inode (§3.16 step 4): block i
   * at (i_u + i) * bs, except the last block of an inline inode, right after inode + xattrs.
   */
  private flatBlocks(nid: number, rec: InodeRecord, what: string): { offset: number; length: number }[] {
    const off = this.metaAddr + nid * EROFS_INODE_SLOT;
    const bs = this.blockSize;
    const struct = rec.extended ? "RafsV6InodeExtended" : "RafsV6InodeCompact";
    if (rec.size === 0) return [];
    const n = ceilDiv(rec.size, bs);
    const inline = rec.layout === DataLayout.FlatInline;
    const plainBlocks = inline ? n - 1 : n;
    if (plainBlocks > 0 && (rec.u + plainBlocks) * bs > this.bytes.length) {
      throw new FormatError(struct, "i_u", off + 16, `nid ${nid}: ${what} blocks ${rec.u}..${rec.u + plainBlocks} lie beyond the ${this.bytes.length}-byte image`);
    }
    const out: { offset: number; length: number }[] = [];
    for (let i = 0; i < n; i++) {
      const length = i + 1 < n ? bs : rec.size - (n - 1) * bs;
      if (inline && i + 1 === n) {
        const tail = off + rec.inodeSize + xattrAreaBytes(rec.xattrIcount);
        if (tail + length > this.metaEnd) {
          throw new FormatError(struct, "i_size", off + 8, `nid ${nid}: inline ${what} tail of ${length} bytes at ${tail} runs past the meta area end ${this.metaEnd}`);
        }
        out.push({ offset: tail, length });
      } else {
        out.push({ offset: (rec.u + i) * bs, length });
      }
    }
    return out;
  }

  private requireKind(ino: RafsInode, kind: FileKind, op: string): InodeRecord {
    if (ino.kind !== kind) throw new TypeError(`Cannot ${op} inode ${ino.ino}: it is a ${ino.kind}, not a ${kind}`);
    return this.inodeRecord(ino.ino);
  }

  dirents(dir: RafsInode): NamedDirent[] {
    return this.direntsAt(dir).map((d) => d.entry);
  }

  /** All dirents with the absolute offset of each 12-byte header, validated (§3.9). */
  private direntsAt(dir: RafsInode): { entry: NamedDirent; at: number }[] {
    const nid = dir.ino;
    const rec = this.requireKind(dir, "dir", "list");
    const blocks = this.flatBlocks(nid, rec, "directory");
    const all: { entry: NamedDirent; at: number }[] = [];
    for (const b of blocks) {
      const ents = decodeDirentBlock(this.bytes.subarray(b.offset, b.offset + b.length), b.length, b.offset);
      ents.forEach((entry, i) => all.push({ entry, at: b.offset + i * EROFS_DIRENT_SIZE }));
    }
    let hasDot = false;
    let hasDotDot = false;
    for (let i = 0; i < all.length; i++) {
      const { entry: e, at } = all[i];
      if (i > 0 && compareBytes(all[i - 1].entry.name, e.name) >= 0) {
        throw new FormatError("RafsV6Dirent", "e_nameoff", at + 8, `directory nid ${nid}: "${str(e.name)}" is not sorted after "${str(all[i - 1].entry.name)}"`);
      }
      if (e.name.includes(0x2f) || e.name.includes(0)) {
        throw new FormatError("RafsV6Dirent", "e_nameoff", at + 8, `directory nid ${nid}: name "${str(e.name)}" contains "/" or NUL`);
      }
      const dot = dotKind(e.name);
      if (dot === ".") {
        hasDot = true;
        if (e.nid !== nid) throw new FormatError("RafsV6Dirent", "e_nid", at, `directory nid ${nid}: "." points at nid ${e.nid}`);
      } else if (dot === "..") {
        hasDotDot = true;
        if (nid === this.superBlock.rootIno && e.nid !== nid) {
          throw new FormatError("RafsV6Dirent", "e_nid", at, `root directory: ".." points at nid ${e.nid}, not the root`);
        }
      }
      if (dot && e.fileType !== FileType.dir) {
        throw new FormatError("RafsV6Dirent", "e_file_type", at + 10, `directory nid ${nid}: "${dot}" has file type ${e.fileType}, not a directory`);
      }
    }
    if (!hasDot || !hasDotDot) {
      throw new FormatError("RafsV6Dirent", "e_nid", blocks[0]?.offset ?? this.inodeOffset(nid), `directory nid ${nid} lacks the "${hasDot ? ".." : "."}" entry`);
    }
    return all;
  }

  readdir(dir: RafsInode): RafsDirEntry[] {
    const out: RafsDirEntry[] = [];
    for (const { entry: e, at } of this.direntsAt(dir)) {
      const dot = dotKind(e.name);
      if (dot) {
        if (dot === "..") this.checkChildType(e, at, "dir", dir.ino);
        continue;
      }
      const kind = kindFromFileType(e.fileType);
      if (!kind) throw new FormatError("RafsV6Dirent", "e_file_type", at + 10, `directory nid ${dir.ino}: "${str(e.name)}" has unknown file type ${e.fileType}`);
      this.checkChildType(e, at, kind, dir.ino);
      out.push({ name: e.name, ino: e.nid, kind });
    }
    return out;
  }

  private checkChildType(e: NamedDirent, at: number, kind: FileKind, dirNid: number): void {
    if (!this.nidInRange(e.nid)) {
      throw new FormatError("RafsV6Dirent", "e_nid", at, `directory nid ${dirNid}: "${str(e.name)}" points at nid ${e.nid} outside the meta area`);
    }
    const child = this.inodeRecord(e.nid);
    const childKind = kindFromMode(child.mode);
    if (childKind !== kind) {
      throw new FormatError("RafsV6Dirent", "e_file_type", at + 10, `directory nid ${dirNid}: "${str(e.name)}" is a ${kind} entry but nid ${e.nid} is a ${childKind}`);
    }
  }

  lookup(path: string): RafsInode | undefined {
    let cur = this.inode(this.superBlock.rootIno);
    const enc = new TextEncoder();
    for (const part of path.split("/")) {
      if (part === "" || part === ".") continue;
      if (cur.kind !== "dir") return undefined;
      const name = enc.encode(part);
      const entries = this.readdir(cur);
      let lo = 0;
      let hi = entries.length - 1;
      let found: RafsDirEntry | undefined;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const c = compareBytes(entries[mid].name, name);
        if (c === 0) {
          found = entries[mid];
          break;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
      }
      if (!found) return undefined;
      cur = this.inode(found.ino);
    }
    return cur;
  }

  chunkAddrs(file: RafsInode): ChunkAddr[] {
    const nid = file.ino;
    const rec = this.requireKind(file, "reg", "read chunks of");
    const off = this.inodeOffset(nid);
    const struct = rec.extended ? "RafsV6InodeExtended" : "RafsV6InodeCompact";
    const n = ceilDiv(rec.size, this.extSuperBlock.chunkSize);
    const start = alignUp(off + rec.inodeSize + xattrAreaBytes(rec.xattrIcount), 8);
    if (start + n * EROFS_CHUNK_ADDR_SIZE > this.metaEnd) {
      throw new FormatError(struct, "i_size", off + 8, `nid ${nid}: ${n} chunk addresses at ${start} for ${rec.size} bytes run past the meta area end ${this.metaEnd}`);
    }
    const out: ChunkAddr[] = [];
    for (let k = 0; k < n; k++) {
      const a = start + k * EROFS_CHUNK_ADDR_SIZE;
      const addr = decodeChunkAddr(this.bytes.subarray(a, a + EROFS_CHUNK_ADDR_SIZE), a);
      if (addr.blobIndex >= this.blobs.length) {
        throw new FormatError("RafsV6InodeChunkAddr", "c_blob_addr_hi", a + 2, `nid ${nid} chunk ${k}: blob index ${addr.blobIndex} of ${this.blobs.length}`);
      }
      out.push(addr);
    }
    return out;
  }

  chunks(file: RafsInode): FileChunk[] {
    const addrs = this.chunkAddrs(file);
    const rec = this.inodeRecord(file.ino);
    const cs = this.extSuperBlock.chunkSize;
    const start = alignUp(this.inodeOffset(file.ino) + rec.inodeSize + xattrAreaBytes(rec.xattrIcount), 8);
    return addrs.map((addr, k) => {
      const at = start + k * EROFS_CHUNK_ADDR_SIZE;
      const r = this.chunkTable.find(addr.blobIndex, addr.chunkIndex, addr.blkAddr);
      if (!r) {
        throw new FormatError("RafsV6InodeChunkAddr", "c_blk_addr", at, `nid ${file.ino} chunk ${k}: no chunk-table record for blob ${addr.blobIndex} index ${addr.chunkIndex} block ${addr.blkAddr}`);
      }
      const expected = Math.min(cs, rec.size - k * cs);
      if (r.uncompressedSize !== expected) {
        throw new FormatError("RafsV5ChunkInfo", "uncompressed_size", at, `nid ${file.ino} chunk ${k}: record holds ${r.uncompressedSize} bytes, the file needs ${expected}`);
      }
      return { chunk: chunkInfoFromRecord(r), fileOffset: k * cs };
    });
  }

  readlink(link: RafsInode): Uint8Array {
    const rec = this.requireKind(link, "symlink", "read the target of");
    if (rec.size > MAX_SYMLINK) {
      throw new FormatError(rec.extended ? "RafsV6InodeExtended" : "RafsV6InodeCompact", "i_size", this.inodeOffset(link.ino) + 8, `nid ${link.ino}: symlink target of ${rec.size} bytes exceeds ${MAX_SYMLINK}`);
    }
    const parts = this.flatBlocks(link.ino, rec, "symlink");
    const out = new Uint8Array(rec.size);
    let pos = 0;
    for (const p of parts) {
      out.set(this.bytes.subarray(p.offset, p.offset + p.length), pos);
      pos += p.length;
    }
    return out;
  }
}

/** Validates one blob-table entry (spec §3.5, reader rules of `layout/v6.rs`). */
function validateBlobEntry(b: BlobEntry, i: number, off: number, chunkSize: number, tarfs: boolean): void {
  const fail = (field: string, rel: number, detail: string): never => {
    throw new FormatError("RafsV6Blob", field, off + rel, `blob ${i}: ${detail}`);
  };
  if (b.blobIndex !== i) fail("blob_index", 64, `index ${b.blobIndex} at position ${i}`);
  if (b.chunkSize !== chunkSize) fail("chunk_size", 68, `chunk size ${b.chunkSize} differs from the superblock's ${chunkSize}`);
  if (b.chunkCount > MAX_BLOB_CHUNKS) fail("chunk_count", 72, `${b.chunkCount} chunks exceed ${MAX_BLOB_CHUNKS}`);
  if (b.compressedSize > MAX_BLOB_COMPRESSED) fail("compressed_size", 88, `${b.compressedSize} exceeds 2^40`);
  if (b.uncompressedSize > MAX_BLOB_UNCOMPRESSED) fail("uncompressed_size", 96, `${b.uncompressedSize} exceeds 2^44`);
  const f = b.features >>> 0;
  if (f & (BLOB_RESERVED_BITS | BLOB_V5_NO_EXT_BLOB_TABLE)) fail("features", 84, `reserved bits set in 0x${f.toString(16)}`);
  if (tarfs ? (f & BLOB_ALIGNED) !== 0 : (f & BLOB_ALIGNED) === 0) {
    fail("features", 84, `ALIGNED must be ${tarfs ? "clear in tarfs mode" : "set"}, features 0x${f.toString(16)}`);
  }
  if (b.cipherAlgo > 1) fail("cipher_algo", 216, `unsupported cipher ${b.cipherAlgo}`);
  if (b.ciOffset + b.ciCompressedSize > Number.MAX_SAFE_INTEGER) fail("ci_compressed_size", 120, "ci_offset + ci_compressed_size overflows");
  if (b.ciCompressedSize > b.ciUncompressedSize) fail("ci_compressed_size", 120, `${b.ciCompressedSize} exceeds ci_uncompressed_size ${b.ciUncompressedSize}`);
  const special = (f & (BLOB_BATCH | BLOB_ZRAN | BLOB_ENCRYPTED)) !== 0;
  if (f & BLOB_CHUNK_INFO_V2) {
    const need = 24 * b.chunkCount;
    if (special ? b.ciUncompressedSize < need : b.ciUncompressedSize !== need) {
      fail("ci_uncompressed_size", 128, `${b.ciUncompressedSize} does not fit ${b.chunkCount} V2 entries`);
    }
  } else if (special) {
    fail("features", 84, `batch/zran/encrypted blobs need CHUNK_INFO_V2, features 0x${f.toString(16)}`);
  } else if ((f & (BLOB_IS_CHUNKDICT_GENERATED | BLOB_TARFS)) === 0 && b.ciUncompressedSize !== 16 * b.chunkCount) {
    fail("ci_uncompressed_size", 128, `${b.ciUncompressedSize} is not 16 * ${b.chunkCount} V1 entries`);
  }
  if (!isPow2(b.chunkSize)) fail("chunk_size", 68, `${b.chunkSize} is not a power of two`);
}

function xattrAreaBytes(icount: number): number {
  return icount === 0 ? 0 : EROFS_XATTR_IBODY_HEADER_SIZE + (icount - 1) * 4;
}

/**
 * The chunk table of a v6 bootstrap, indexed by (blob index, ci_index, uncompressed block) and
 * decoded record by record on first use. Opening checks every record's blob index and builds a
 * numeric index from the raw bytes (no objects per record); when two records share a blob and
 * ci_index but not a block, those go to an exact index by all three. As before, the last record
 * with a given key wins.
 */
class LazyChunkTable {
  /**
   * Per blob index: ci_index → record number, or AMBIGUOUS when the block must decide. A dense
   * array (NONE where no record) for blobs whose chunk count fits a budget proportional to the
   * records; a map otherwise, and for ci_indexes past a blob's chunk count.
   */
  readonly #dense: (Int32Array | undefined)[];
  readonly #sparse: Map<number, number>[];
  /** Exact `blob:ci:block` → record number, for ambiguous (blob, ci_index) pairs only. */
  readonly #exact = new Map<string, number>();
  readonly #decoded: (ChunkRecord | undefined)[];
  readonly #view: DataView;
  #all: ChunkRecord[] | undefined;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly offset: number,
    readonly count: number,
    private readonly blockSize: number,
    chunkCounts: readonly number[],
  ) {
    const nblobs = chunkCounts.length;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#decoded = new Array<ChunkRecord | undefined>(count);
    // Dense arrays while their total stays within a few entries per record (a hostile blob
    // table cannot make this allocate much more than the chunk table itself).
    let budget = 4 * count + 1024;
    this.#dense = chunkCounts.map((n) => {
      if (n > budget) return undefined;
      budget -= n;
      return new Int32Array(n).fill(NONE);
    });
    this.#sparse = Array.from({ length: nblobs }, () => new Map<number, number>());
    for (let i = 0; i < count; i++) {
      const off = offset + i * RAFS_CHUNK_RECORD_SIZE;
      const blobIndex = this.#view.getUint32(off + 32, true);
      if (blobIndex >= nblobs) throw new FormatError("RafsV5ChunkInfo", "blob_index", off + 32, `record ${i} names blob ${blobIndex} of ${nblobs}`);
      const ci = this.#view.getUint32(off + 72, true);
      const prev = this.#get(blobIndex, ci);
      if (prev === NONE || (prev !== AMBIGUOUS && this.#block(prev) === this.#block(i))) {
        this.#set(blobIndex, ci, i);
        continue;
      }
      if (prev !== AMBIGUOUS) {
        this.#exact.set(this.#tripleOf(prev), prev);
        this.#set(blobIndex, ci, AMBIGUOUS);
      }
      this.#exact.set(this.#tripleOf(i), i);
    }
  }

  #get(blobIndex: number, ci: number): number {
    const dense = this.#dense[blobIndex];
    if (dense && ci < dense.length) return dense[ci]!;
    return this.#sparse[blobIndex]?.get(ci) ?? NONE;
  }

  #set(blobIndex: number, ci: number, value: number): void {
    const dense = this.#dense[blobIndex];
    if (dense && ci < dense.length) dense[ci] = value;
    else this.#sparse[blobIndex]!.set(ci, value);
  }

  /** Uncompressed block of record `i`, from its raw u64 offset. */
  #block(i: number): number {
    const off = this.offset + i * RAFS_CHUNK_RECORD_SIZE + 56;
    return Math.floor((this.#view.getUint32(off, true) + this.#view.getUint32(off + 4, true) * 2 ** 32) / this.blockSize);
  }

  #tripleOf(i: number): string {
    const off = this.offset + i * RAFS_CHUNK_RECORD_SIZE;
    return `${this.#view.getUint32(off + 32, true)}:${this.#view.getUint32(off + 72, true)}:${this.#block(i)}`;
  }

  /** Record `i`, decoded (and validated) once. */
  record(i: number): ChunkRecord {
    return (this.#decoded[i] ??= decodeChunkRecord(this.bytes, this.offset + i * RAFS_CHUNK_RECORD_SIZE));
  }

  /** The record for a chunk address, or undefined when the table has none. */
  find(blobIndex: number, ciIndex: number, blk: number): ChunkRecord | undefined {
    if (blobIndex >= this.#dense.length) return undefined;
    const i = this.#get(blobIndex, ciIndex);
    if (i === NONE) return undefined;
    if (i === AMBIGUOUS) {
      const j = this.#exact.get(`${blobIndex}:${ciIndex}:${blk}`);
      return j === undefined ? undefined : this.record(j);
    }
    return this.#block(i) === blk ? this.record(i) : undefined;
  }

  all(): ChunkRecord[] {
    return (this.#all ??= Array.from({ length: this.count }, (_, i) => this.record(i)));
  }
}

/** Marks a (blob, ci_index) pair that several records share with different blocks. */
const AMBIGUOUS = -1;
/** No record for a (blob, ci_index) pair. */
const NONE = -2;

function dotKind(name: Uint8Array): "." | ".." | undefined {
  if (name.length === 1 && name[0] === 0x2e) return ".";
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return "..";
  return undefined;
}

function str(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString("utf8");
}
