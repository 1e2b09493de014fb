/**
 * Splits file data into chunks and stores each distinct chunk once.
 *
 * A chunk whose (digest, uncompressed size) is already known — stored earlier in this
 * build, present in the parent bootstrap, or in a chunk dictionary — is referenced, not
 * stored again (spec §4.2). New chunks go to the layer's {@link BlobWriter}.
 */
import type { BlobWriter } from "../blob/writer.ts";
import { createHasher, type DigesterName } from "../digest/hasher.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { toHex } from "../internal/bytes.ts";
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

const keyOf = (digest: Uint8Array, size: number) => `${toHex(digest)}:${size}`;

export class ChunkStore {
  private readonly known = new Map<string, ChunkInfo>();
  readonly stats: ChunkStats = { files: 0, bytes: 0, chunks: 0, storedChunks: 0, dedupedChunks: 0 };

  constructor(
    private readonly writer: BlobWriter,
    private readonly digester: DigesterName,
    private readonly chunkSize: number,
    private readonly onBytes?: (n: number) => void,
  ) {}

  /** Makes existing chunks (parent layers, chunk dictionaries) available for dedup. First one wins. */
  addKnown(chunks: Iterable<ChunkInfo>): void {
    for (const c of chunks) {
      const k = keyOf(c.digest, c.uncompressedSize);
      if (!this.known.has(k)) this.known.set(k, c);
    }
  }

  private store(plain: Uint8Array, fileOffset: number): FileChunk {
    const digest = createHasher(this.digester).update(plain).digest();
    const k = keyOf(digest, plain.length);
    let chunk = this.known.get(k);
    if (chunk) {
      this.stats.dedupedChunks++;
    } else {
      chunk = this.writer.addChunk(plain, digest);
      this.known.set(k, chunk);
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
    const chunks: FileChunk[] = [];
    let buf = new Uint8Array(Math.min(this.chunkSize, Math.max(size, 1)));
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
          // The writer may keep no reference, but a deduplicated chunk never does: a new
          // buffer per chunk keeps the code obviously correct at 1 allocation per MiB.
          buf = new Uint8Array(Math.min(this.chunkSize, Math.max(size - offset, 1)));
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
