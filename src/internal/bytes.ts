/**
 * Bounds-checked little-endian field access for on-disk structs.
 *
 * Every decoder reads through {@link StructReader}, which knows the struct name and the
 * absolute offset of its first byte, so any failure becomes a {@link FormatError} that
 * names struct, field and offset.
 */
import { FormatError } from "./errors.ts";

/** Reads LE fields of one struct from `bytes`, reporting errors with absolute offsets. */
export class StructReader {
  readonly view: DataView;
  /**
   * @param struct name used in errors, e.g. "RafsV6SuperBlock"
   * @param bytes the struct's bytes (at least `minSize`)
   * @param baseOffset absolute offset of `bytes[0]` in its file, for error messages
   * @param minSize required length; shorter input throws FormatError
   */
  constructor(
    readonly struct: string,
    readonly bytes: Uint8Array,
    readonly baseOffset = 0,
    minSize = 0,
  ) {
    if (bytes.length < minSize) {
      throw new FormatError(struct, "(size)", baseOffset, `need ${minSize} bytes, have ${bytes.length}`);
    }
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private check(field: string, off: number, size: number): void {
    if (off < 0 || off + size > this.bytes.length) {
      throw new FormatError(this.struct, field, this.baseOffset + off, `truncated: need ${size} bytes`);
    }
  }
  u8(field: string, off: number): number {
    this.check(field, off, 1);
    return this.view.getUint8(off);
  }
  u16(field: string, off: number): number {
    this.check(field, off, 2);
    return this.view.getUint16(off, true);
  }
  u32(field: string, off: number): number {
    this.check(field, off, 4);
    return this.view.getUint32(off, true);
  }
  /** u64 as bigint. */
  u64big(field: string, off: number): bigint {
    this.check(field, off, 8);
    return this.view.getBigUint64(off, true);
  }
  /** u64 as a safe integer number; throws FormatError when above 2^53-1. */
  u64(field: string, off: number): number {
    const v = this.u64big(field, off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(this.struct, field, this.baseOffset + off, `value ${v} exceeds the safe integer range`);
    }
    return Number(v);
  }
  slice(field: string, off: number, len: number): Uint8Array {
    this.check(field, off, len);
    return this.bytes.subarray(off, off + len);
  }
  /** Throws a FormatError for `field` at relative offset `off`. */
  fail(field: string, off: number, detail: string): never {
    throw new FormatError(this.struct, field, this.baseOffset + off, detail);
  }
}

/** Writes LE fields into a fixed-size zeroed buffer. */
export class StructWriter {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(size: number, into?: Uint8Array) {
    this.bytes = into ?? new Uint8Array(size);
    if (this.bytes.length < size) throw new RangeError(`Cannot encode: target buffer has ${this.bytes.length} bytes, need ${size}`);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
  }
  u8(off: number, v: number): this {
    this.view.setUint8(off, v);
    return this;
  }
  u16(off: number, v: number): this {
    this.view.setUint16(off, v, true);
    return this;
  }
  u32(off: number, v: number): this {
    this.view.setUint32(off, v >>> 0, true);
    return this;
  }
  u64(off: number, v: number | bigint): this {
    this.view.setBigUint64(off, BigInt(v), true);
    return this;
  }
  set(off: number, data: Uint8Array): this {
    this.bytes.set(data, off);
    return this;
  }
}

/** Smallest multiple of `a` that is >= x (a must be a power of two or any positive int). */
export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
/** Largest multiple of `a` that is <= x. */
export function alignDown(x: number, a: number): number {
  return Math.floor(x / a) * a;
}
/** ceil(a / b) for non-negative integers. */
export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
/** Bytes of a hex string; throws SyntaxError on bad input. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new SyntaxError(`Cannot parse hex: "${hex}"`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}
/** ASCII/UTF-8 bytes up to the first NUL. */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(end < 0 ? bytes : bytes.subarray(0, end)).toString("utf8");
}
/** Byte-wise lexicographic compare (memcmp, shorter prefix first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}
