/**
 * Loader for the project's N-API addon (native/codec.c, built by `npm ci` via node-gyp).
 * Only `compression/` and `digest/` import this; everything else goes through them.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

export interface NativeCodec {
  zstdCompress(input: Uint8Array, level: number): Uint8Array;
  /** zstd (0) or lz4_block (1) into `output` (at least the compress bound); returns the byte count. */
  compressInto(algorithm: 0 | 1, input: Uint8Array, output: Uint8Array, level: number): number;
  zstdDecompress(input: Uint8Array, size: number): Uint8Array;
  lz4Compress(input: Uint8Array): Uint8Array;
  lz4Decompress(input: Uint8Array, size: number): Uint8Array;
  /** CRC-32C; `portable` forces the table code instead of the SSE4.2 instruction (for tests). */
  crc32c(input: Uint8Array, previous?: number, portable?: boolean): number;
  /** NUL-separated xattr names of `path` (llistxattr, does not follow symlinks). */
  listXattrs(path: string): Uint8Array;
  /** Value of one xattr (lgetxattr). Errors carry `errno`. */
  getXattr(path: string, name: string): Uint8Array;
  /** Sets one xattr (lsetxattr). */
  setXattr(path: string, name: string, value: Uint8Array): void;
  versions(): { zstd: string; lz4: string };
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(import.meta.url);

/** The loaded addon; throws with a hint to run `npm ci` when it was not built. */
export const native: NativeCodec = (() => {
  const file = path.join(root, "build", "Release", "nydus_codec.node");
  try {
    return require(file) as NativeCodec;
  } catch (cause) {
    throw new Error(`Cannot load native codec "${file}": run "npm ci" (needs libzstd-dev and liblz4-dev)`, { cause });
  }
})();
