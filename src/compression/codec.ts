/**
 * Chunk compressors behind one {@link Codec} interface.
 *
 * | name       | RAFS id | framing                                                   |
 * |------------|---------|-----------------------------------------------------------|
 * | none       | 0       | plain bytes                                               |
 * | lz4_block  | 1       | raw LZ4 block, no size prefix (liblz4 LZ4_compress_default) |
 * | gzip       | 2       | gzip member (read-only legacy)                            |
 * | zstd       | 3       | one zstd frame, level 3, content size, no checksum        |
 *
 * zstd and lz4 use the system libzstd/liblz4 through our addon so output equals upstream's.
 */
import zlib from "node:zlib";
import { native } from "../internal/native.ts";

/** Compressor names accepted on the CLI and in options. */
export type CompressorName = "none" | "lz4_block" | "gzip" | "zstd";
/** Compressors a builder may write. */
export type BuildCompressor = "none" | "lz4_block" | "zstd";

export interface Codec {
  readonly name: CompressorName;
  /** RAFS algorithm id (spec §2.1). */
  readonly id: number;
  compress(plain: Uint8Array): Uint8Array;
  /**
   * The same bytes as {@link compress}, written into `out` (which must hold
   * {@link compressBound} of the input); returns their count. zstd and lz4_block only.
   */
  compressInto?(plain: Uint8Array, out: Uint8Array): number;
  /** Decompresses to exactly `size` bytes or throws. */
  decompress(stored: Uint8Array, size: number): Uint8Array;
}

const none: Codec = {
  name: "none",
  id: 0,
  compress: (p) => p,
  decompress(s, size) {
    if (s.length !== size) throw new RangeError(`Cannot decode uncompressed data: have ${s.length} bytes, expected ${size}`);
    return s;
  },
};
const lz4: Codec = {
  name: "lz4_block",
  id: 1,
  compress: (p) => native.lz4Compress(p),
  compressInto: (p, out) => native.compressInto(1, p, out, 0),
  decompress: (s, size) => native.lz4Decompress(s, size),
};
const gzip: Codec = {
  name: "gzip",
  id: 2,
  compress: (p) => zlib.gzipSync(p),
  decompress(s, size) {
    const out = zlib.gunzipSync(s, { maxOutputLength: Math.max(size, 1) });
    if (out.length !== size) throw new RangeError(`Cannot decode gzip data: got ${out.length} bytes, expected ${size}`);
    return out;
  },
};
const zstd: Codec = {
  name: "zstd",
  id: 3,
  compress: (p) => native.zstdCompress(p, 3),
  compressInto: (p, out) => native.compressInto(0, p, out, 3),
  decompress: (s, size) => native.zstdDecompress(s, size),
};

const byName = new Map<string, Codec>([none, lz4, gzip, zstd].map((c) => [c.name, c]));
const byId = new Map<number, Codec>([none, lz4, gzip, zstd].map((c) => [c.id, c]));

/** Codec for a compressor name; throws TypeError for an unknown name. */
export function codecByName(name: string): Codec {
  const c = byName.get(name);
  if (!c) throw new TypeError(`Cannot use compressor "${name}": expected one of none, lz4_block, zstd`);
  return c;
}
/** Codec for a RAFS algorithm id, or undefined when the id is unknown. */
export function codecById(id: number): Codec | undefined {
  return byId.get(id);
}

/**
 * An output size that holds the zstd and LZ4 compress bounds of `size` input bytes
 * (zstd: size + size/256 + up to 64 bytes; LZ4: size + size/255 + 16).
 */
export function compressBound(size: number): number {
  return size + Math.ceil(size / 128) + 1024;
}

/**
 * Compresses and applies upstream's keep-or-discard rule: compressed bytes are kept
 * only when strictly smaller than the input.
 * @returns the stored bytes and whether they are compressed
 */
export function compressChunk(codec: Codec, plain: Uint8Array): { stored: Uint8Array; compressed: boolean } {
  if (codec.id === 0 || plain.length === 0) return { stored: plain, compressed: false };
  const c = codec.compress(plain);
  return c.length < plain.length ? { stored: c, compressed: true } : { stored: plain, compressed: false };
}
