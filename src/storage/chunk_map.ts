/**
 * The persisted chunk-readiness map of one cached blob: one bit per chunk index
 * (`ChunkInfo.index`), set only after the chunk's verified bytes are durable in the data file.
 *
 * File: `NYDCMAP1` (8 bytes), u32 LE capacity in bits, u32 LE 0, then the bits (bit i of byte
 * i>>3 is chunk i, LSB first). Every {@link ChunkMap.persist} rewrites the file in place and
 * fsyncs it; persists are serialized and coalesced, so no write can overtake a newer state.
 * Bits are only ever set, except by {@link ChunkMap.clear}, whose callers persist the cleared
 * state before they rewrite the chunk's data.
 */
import { constants as fsConstants } from "node:fs";
import fs from "node:fs/promises";

const MAGIC = Buffer.from("NYDCMAP1");
const HEADER = 16;

export class ChunkMap {
  #bits: Uint8Array;
  #queued: Promise<void> | undefined;
  #chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly fh: fs.FileHandle,
    bits: Uint8Array,
  ) {
    this.#bits = bits;
  }

  /**
   * Opens (or creates) the map file. A missing, foreign or `reset` map starts empty, and the
   * empty state is persisted before this returns.
   */
  static async open(file: string, capacity: number, reset: boolean): Promise<ChunkMap> {
    const fh = await fs.open(file, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    try {
      const bits = new Uint8Array(Math.ceil(Math.max(capacity, 1) / 8));
      if (!reset) {
        const { size } = await fh.stat();
        if (size >= HEADER) {
          const head = Buffer.alloc(HEADER);
          await fh.read(head, 0, HEADER, 0);
          const stored = head.readUInt32LE(8);
          if (head.subarray(0, 8).equals(MAGIC) && size === HEADER + Math.ceil(Math.max(stored, 1) / 8)) {
            const onDisk = Buffer.alloc(size - HEADER);
            await fh.read(onDisk, 0, onDisk.length, HEADER);
            const merged = new Uint8Array(Math.max(bits.length, onDisk.length));
            merged.set(onDisk);
            return new ChunkMap(fh, merged);
          }
        }
      }
      const map = new ChunkMap(fh, bits);
      await fh.truncate(0);
      await map.persist();
      return map;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  has(index: number): boolean {
    return index >> 3 < this.#bits.length && (this.#bits[index >> 3]! & (1 << (index & 7))) !== 0;
  }

  /** Sets bits in memory (call {@link persist} to make them durable). */
  set(indices: Iterable<number>): void {
    for (const i of indices) {
      if (i >> 3 >= this.#bits.length) {
        const grown = new Uint8Array(Math.max((i >> 3) + 1, this.#bits.length * 2));
        grown.set(this.#bits);
        this.#bits = grown;
      }
      this.#bits[i >> 3]! |= 1 << (i & 7);
    }
  }

  /** Clears a bit in memory. */
  clear(index: number): void {
    if (index >> 3 < this.#bits.length) this.#bits[index >> 3]! &= ~(1 << (index & 7));
  }

  /** Indices of the set bits. */
  *ready(): Generator<number> {
    for (let i = 0; i < this.#bits.length * 8; i++) if (this.has(i)) yield i;
  }

  /** Writes the current bits and fsyncs; resolves when a state at least as new as now is durable. */
  persist(): Promise<void> {
    if (this.#queued) return this.#queued;
    const p = this.#chain.then(async () => {
      this.#queued = undefined; // bits set from here on need another persist
      const bits = this.#bits.slice();
      const head = Buffer.alloc(HEADER);
      MAGIC.copy(head, 0);
      head.writeUInt32LE(bits.length * 8, 8);
      await this.fh.writev([head, bits], 0);
      await this.fh.sync();
    });
    this.#queued = p;
    this.#chain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await this.#chain;
    await this.fh.close();
  }
}
