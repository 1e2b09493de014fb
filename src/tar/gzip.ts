/**
 * gzip'ed tar streams: OCI layers arrive as `tar+gzip`; `create` accepts either. Inflation
 * runs in the native codec (ISA-L igzip) on libuv's thread pool, about 1.6x node:zlib on
 * layer tars and without node:zlib's per-piece stream overhead.
 */
import { InvalidInputError } from "../internal/errors.ts";
import { native } from "../internal/native.ts";

/** Size of the pieces {@link gunzip} yields. */
const PIECE = 1 << 20;

/**
 * Gunzips a stream. Each yielded piece is a fresh buffer of its own. Members may follow one
 * another (multi-member files); zero bytes after the last member are ignored, as node:zlib
 * does; anything else after it must be another member.
 * @param what names the stream in errors
 * @throws InvalidInputError for corrupt or truncated data, or a trailer whose CRC-32 or size is wrong
 */
export async function* gunzip(source: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  const handle = native.gunzipCreate();
  let out = new Uint8Array(PIECE);
  let made = 0;
  let ended = false;
  for await (const piece of source) {
    let off = 0;
    while (off < piece.length) {
      if (ended) {
        while (off < piece.length && piece[off] === 0) off++; // padding after the last member
        if (off === piece.length) break;
        native.gunzipReset(handle);
        ended = false;
      }
      let step: [number, number, boolean];
      try {
        step = await native.gunzipRun(handle, off === 0 ? piece : piece.subarray(off), made === 0 ? out : out.subarray(made));
      } catch (err) {
        if ((err as { code?: string }).code !== "ERR_NYDUS_GZIP") throw err;
        throw new InvalidInputError(`Cannot decompress ${what}: not valid gzip (${(err as Error).message})`, { cause: err });
      }
      off += step[0];
      made += step[1];
      ended = step[2];
      if (made === out.length) {
        yield out;
        out = new Uint8Array(PIECE);
        made = 0;
      } else if (!ended && step[0] === 0 && step[1] === 0) {
        throw new Error(`Cannot decompress ${what}: the inflater made no progress`); // not reached: `out` has room
      }
    }
  }
  if (made > 0) yield out.subarray(0, made);
  if (!ended) throw new InvalidInputError(`Cannot decompress ${what}: the gzip stream is truncated`);
}

/**
 * Yields the decompressed bytes when `source` starts with the gzip magic (1f 8b),
 * else the bytes unchanged. Streams; nothing is buffered beyond one piece.
 */
export async function* maybeGunzip(source: AsyncIterable<Uint8Array>, what = "the input"): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.length < 2) {
    const next = await it.next();
    if (next.done) break;
    first = { done: false, value: Buffer.concat([first.value, next.value]) };
  }
  if (first.done) return;
  const head = first.value;
  const rest: AsyncIterable<Uint8Array> = {
    async *[Symbol.asyncIterator]() {
      yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    },
  };
  if (head[0] === 0x1f && head[1] === 0x8b) yield* gunzip(rest, what);
  else yield* rest;
}
