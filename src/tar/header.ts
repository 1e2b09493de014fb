/**
 * Decoding of one 512-byte tar header block: checksum, numeric fields (octal and GNU
 * base-256) and name fields (ustar prefix + name). Pure functions over the block's bytes;
 * the entry logic (long names, PAX, typeflags) lives in `reader.ts`.
 */

/** Size of a tar block (headers and body padding are in these units). */
export const BLOCK_SIZE = 512;

/** Checksum of a header block, as stored and as computed both ways GNU tar accepts. */
export interface HeaderChecksum {
  /** The stored field (octal), NaN when it is not a number. */
  readonly stored: number;
  /** Sum of the bytes as unsigned chars, the checksum field counted as 8 spaces (POSIX). */
  readonly unsigned: number;
  /** Same with bytes as signed chars (written by some old tars; GNU tar accepts it). */
  readonly signed: number;
}

/**
 * Computes a header block's checksums.
 *
 * @param block a 512-byte header block
 * @returns stored and computed sums; `unsigned === 256` means every byte outside the
 *   checksum field is zero (an end-of-archive block)
 * @example
 * const c = headerChecksum(block);
 * const ok = c.stored === c.unsigned || c.stored === c.signed;
 */
export function headerChecksum(block: Uint8Array): HeaderChecksum {
  let unsigned = 8 * 0x20;
  let high = 0;
  if ((block.byteOffset & 3) === 0) {
    // Four bytes at a time (blocks sit at multiples of 512 in the input, so usually aligned):
    // two 16-bit lanes of byte sums and four 8-bit lanes of high-bit counts never overflow
    // over 128 words. Words 37 and 38 are the checksum field. Byte order does not matter.
    const words = new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE / 4);
    let lanes = 0;
    let highLanes = 0;
    for (let i = 0; i < BLOCK_SIZE / 4; i++) {
      if (i === 37) i = 39;
      const w = words[i];
      lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
      highLanes += (w >>> 7) & 0x01010101;
    }
    unsigned += (lanes & 0xffff) + (lanes >>> 16);
    high = (highLanes & 0xff) + ((highLanes >>> 8) & 0xff) + ((highLanes >>> 16) & 0xff) + (highLanes >>> 24);
  } else {
    for (let i = 0; i < BLOCK_SIZE; i++) {
      if (i === 148) i = 156;
      const c = block[i];
      unsigned += c;
      high += c >>> 7;
    }
  }
  return { stored: parseNumeric(block, 148, 8), unsigned, signed: unsigned - 256 * high };
}

/**
 * Parses a numeric header field: octal digits (optionally led by spaces or NULs and ended by
 * a space, a NUL or the field's end), or GNU base-256 (first byte 0x80 positive, 0xff
 * negative two's complement) for values that do not fit in octal.
 *
 * @param block the header block
 * @param off field offset
 * @param len field length
 * @returns the value; 0 for an empty field; NaN when the field is not a number or the value
 *   is not a safe integer
 * @example
 * parseNumeric(block, 124, 12); // size
 */
export function parseNumeric(block: Uint8Array, off: number, len: number): number {
  const end = off + len;
  const first = block[off];
  if (first & 0x80) {
    if (first !== 0x80 && first !== 0xff) return Number.NaN;
    // Positive: the remaining bytes, big-endian. Negative: two's complement over the whole
    // field, computed as -(ones' complement of the rest + 1).
    const flip = first === 0xff ? 0xff : 0;
    let v = 0;
    for (let i = off + 1; i < end; i++) {
      v = v * 256 + (block[i] ^ flip);
      if (v > Number.MAX_SAFE_INTEGER) return Number.NaN;
    }
    return flip ? -(v + 1) : v;
  }
  let i = off;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = block[i];
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
  }
  if (i < end && block[i] !== 0x20 && block[i] !== 0) return Number.NaN;
  return v;
}

/** Index of the first NUL in `block[off, off + len)`, or `off + len`. */
function nulEnd(block: Uint8Array, off: number, len: number): number {
  const end = off + len;
  for (let i = off; i < end; i++) if (block[i] === 0) return i;
  return end;
}

/** Copies `src[start, end)` into a new, unshared array (never a view into an input piece). */
export function copyBytes(src: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(src.subarray(start, end));
  return out;
}

/** True when the block carries the POSIX ustar magic (`"ustar\0"`), whose prefix field extends the name. */
function isPosixUstar(block: Uint8Array): boolean {
  return (
    block[257] === 0x75 &&
    block[258] === 0x73 &&
    block[259] === 0x74 &&
    block[260] === 0x61 &&
    block[261] === 0x72 &&
    block[262] === 0
  );
}

/**
 * The entry name stored in the header itself: `prefix + "/" + name` for POSIX ustar with a
 * non-empty prefix, else the 100-byte name field, up to the first NUL. GNU and v7 headers
 * have no prefix field.
 *
 * @param block the header block
 * @returns a fresh copy of the name bytes
 * @example
 * headerName(block); // Uint8Array "dir/file"
 */
export function headerName(block: Uint8Array): Uint8Array {
  const nameEnd = nulEnd(block, 0, 100);
  if (block[345] === 0 || !isPosixUstar(block)) return copyBytes(block, 0, nameEnd);
  const prefixEnd = nulEnd(block, 345, 155);
  const out = new Uint8Array(prefixEnd - 345 + 1 + nameEnd);
  out.set(block.subarray(345, prefixEnd));
  out[prefixEnd - 345] = 0x2f;
  out.set(block.subarray(0, nameEnd), prefixEnd - 345 + 1);
  return out;
}

/**
 * The header's link name field (100 bytes, up to the first NUL).
 *
 * @param block the header block
 * @returns a fresh copy, or null when the field is empty
 * @example
 * headerLinkname(block); // Uint8Array "target" or null
 */
export function headerLinkname(block: Uint8Array): Uint8Array | null {
  if (block[157] === 0) return null;
  return copyBytes(block, 157, nulEnd(block, 157, 100));
}
