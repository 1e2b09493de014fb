/**
 * Splits file data into chunks and stores each distinct chunk once.
 *
 * A chunk whose (digest, uncompressed size) is already known — stored earlier in this
 * build, present in the parent bootstrap, or in a chunk dictionary — is referenced, not
 * stored again (spec §4.2). New chunks go to the layer's {@link BlobWriter}.
 */
import type { BlobWriter } from "../blob/writer.ts";
import { createOneShotDigester, type DigesterName, type OneShotDigester } from "../digest/hasher.ts";
import { InvalidInputError } from "../internal/errors.ts";
import type { ChunkInfo, FileChunk, TreeInode } from "../rafs/model.ts";

/** Counters of one build. */
export interface ChunkStats {
  /** Regular files chunked. */
  files: number;
  /** File bytes read. */
  bytes: number;
  /** Chunks referenced by files (with repeats). */
  chunks: number;
  /** Chunks written to the new blob. */
  storedChunks: number;
  /** Chunks found in this build, the parent or a chunk dictionary. */
  dedupedChunks: number;
}

/**
 * Dedup key of a digest: its 32 bytes as a latin1 string (one char per byte, so exact).
 * A 32-char flat string instead of the 64-char hex plus ":size" cons string: about half the
 * key memory and no hex formatting per chunk.
 */
function digestKey(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("latin1");
}

/** Digests per {@link DigestSlab} block. */
const DIGESTS_PER_SLAB = 1024;

/**
 * Stores kept chunk digests back to back in 32 KiB blocks. A digest is then a view into a
 * shared ArrayBuffer instead of its own ArrayBuffer + backing store (about 130 bytes less
 * per stored chunk: ~6 MiB on a 45,000-file tar).
 */
class DigestSlab {
  private block = new Uint8Array(0);
  private used = 0;
  keep(digest: Uint8Array): Uint8Array {
    if (this.used === this.block.length) {
      this.block = new Uint8Array(32 * DIGESTS_PER_SLAB);
      this.used = 0;
    }
    const out = this.block.subarray(this.used, this.used + 32);
    out.set(digest);
    this.used += 32;
    return out;
  }
}

export class ChunkStore {
  /**
   * Known chunks by digest ({@link digestKey}). The dedup identity is (digest, size); a digest
   * seen with a second size (never for a sound digest, but possible in a crafted parent) goes
   * to {@link knownOtherSize} keyed by digest and size.
   */
  private readonly known = new Map<string, ChunkInfo>();
  private readonly knownOtherSize = new Map<string, ChunkInfo>();
  private readonly digests = new DigestSlab();
  private readonly digest: OneShotDigester;
  /**
   * The one chunk buffer, reused for every chunk of every file: the blob writer copies or
   * writes the bytes before `addChunk` returns and a deduplicated chunk keeps none. One
   * buffer per file instead cost 45,000 ArrayBuffer allocations (and their RSS churn) on
   * a 45,000-file tar. Hence also one {@link addFile} at a time.
   */
  private chunkBuf: Uint8Array | undefined;
  private busy = false;
  readonly stats: ChunkStats = { files: 0, bytes: 0, chunks: 0, storedChunks: 0, dedupedChunks: 0 };

  constructor(
    private readonly writer: BlobWriter,
    digester: DigesterName,
    private readonly chunkSize: number,
    private readonly onBytes?: (n: number) => void,
  ) {
    this.digest = createOneShotDigester(digester);
  }

  private lookup(key: string, size: number): ChunkInfo | undefined {
    const c = this.known.get(key);
    if (c === undefined || c.uncompressedSize === size) return c;
    return this.knownOtherSize.get(`${key}:${size}`);
  }

  private remember(key: string, chunk: ChunkInfo): void {
    const c = this.known.get(key);
    if (c === undefined) this.known.set(key, chunk);
    else if (c.uncompressedSize !== chunk.uncompressedSize) this.knownOtherSize.set(`${key}:${chunk.uncompressedSize}`, chunk);
  }

  /** Makes existing chunks (parent layers, chunk dictionaries) available for dedup. First one wins. */
  addKnown(chunks: Iterable<ChunkInfo>): void {
    for (const c of chunks) {
      const k = digestKey(c.digest);
      if (this.lookup(k, c.uncompressedSize) === undefined) this.remember(k, c);
    }
  }

  private store(plain: Uint8Array, fileOffset: number): FileChunk {
    const digest = this.digest.digest(plain);
    const k = digestKey(digest);
    let chunk = this.lookup(k, plain.length);
    if (chunk) {
      this.stats.dedupedChunks++;
    } else {
      chunk = this.writer.addChunk(plain, this.digests.keep(digest));
      this.remember(k, chunk);
      this.stats.storedChunks++;
    }
    this.stats.chunks++;
    return { chunk, fileOffset };
  }

  /**
   * Reads `body` (exactly `size` bytes) and sets `inode.chunks` and `inode.size`.
   * Holds at most one chunk in memory.
   * @throws InvalidInputError when the body is shorter or longer than `size`
   */
  async addFile(inode: TreeInode, body: AsyncIterable<Uint8Array>, size: number, what: string): Promise<void> {
    if (this.busy) throw new InvalidInputError(`Cannot add "${what}": another file is still being added (one at a time)`);
    this.busy = true;
    try {
      await this.addFileBody(inode, body, size, what);
    } finally {
      this.busy = false;
    }
  }

  private async addFileBody(inode: TreeInode, body: AsyncIterable<Uint8Array>, size: number, what: string): Promise<void> {
    const chunks: FileChunk[] = [];
    const shared = (this.chunkBuf ??= new Uint8Array(this.chunkSize));
    // The chunk being filled: the shared buffer cut to this chunk's length.
    let buf = shared.subarray(0, Math.min(this.chunkSize, Math.max(size, 1)));
    let fill = 0;
    let offset = 0;
    for await (const piece of body) {
      let p = 0;
      while (p < piece.length) {
        if (offset + fill + (piece.length - p) > size) {
          throw new InvalidInputError(`Cannot read "${what}": more data than its declared size ${size}`);
        }
        const n = Math.min(buf.length - fill, piece.length - p);
        buf.set(piece.subarray(p, p + n), fill);
        fill += n;
        p += n;
        if (fill === buf.length) {
          chunks.push(this.store(buf, offset));
          offset += fill;
          this.onBytes?.(fill);
          fill = 0;
          buf = shared.subarray(0, Math.min(this.chunkSize, Math.max(size - offset, 1)));
        }
      }
    }
    if (fill > 0) {
      chunks.push(this.store(buf.subarray(0, fill), offset));
      offset += fill;
      this.onBytes?.(fill);
    }
    if (offset !== size) throw new InvalidInputError(`Cannot read "${what}": got ${offset} bytes, expected ${size}`);
    inode.size = size;
    inode.chunks = chunks;
    this.stats.files++;
    this.stats.bytes += size;
  }
}
