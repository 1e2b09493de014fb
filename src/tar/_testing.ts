/**
 * Test-only: a tiny ustar/PAX writer for hand-built (including hostile) archives. Not used
 * by library code; exists so tests can state every header byte they depend on.
 */
import { Buffer } from "node:buffer";

/** One hand-built tar member. */
export interface RawTarEntry {
  /** Name bytes; if longer than 100 bytes it is also put in a PAX `path` record. */
  name: string | Uint8Array;
  /** Typeflag character ("0" file, "1" hardlink, "2" symlink, "3" chr, "4" blk, "5" dir, "6" fifo, "S", …). @default "0" */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string | Uint8Array;
  devmajor?: number;
  devminor?: number;
  data?: Uint8Array | string;
  /** Size field override (defaults to the data length). */
  size?: number;
  /** PAX records written in a preceding `x` header, values as given (bytes are kept verbatim). */
  pax?: [string, string | Uint8Array][];
  /** Corrupt the checksum. */
  badChecksum?: boolean;
}

const bytes = (v: string | Uint8Array): Buffer => (typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v));

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, "0") + "\0", off, len, "latin1");
}

/** One 512-byte ustar header block. */
export function tarHeader(e: RawTarEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  bytes(e.name).subarray(0, 100).copy(h, 0);
  octal(h, 100, 8, e.mode ?? 0o644);
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, e.mtime ?? 0);
  h.write(e.type ?? "0", 156, 1, "latin1");
  if (e.linkname !== undefined) bytes(e.linkname).subarray(0, 100).copy(h, 157);
  h.write("ustar\0" + "00", 257, 8, "latin1");
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  if (e.badChecksum) sum += 1;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return h;
}

/** PAX record bytes `"%d %s=%s\n"`. */
export function paxRecord(key: string, value: string | Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), bytes(value), Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function padded(data: Buffer): Buffer {
  const rem = data.length % 512;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)]);
}

/** A complete archive (members + two zero blocks). */
export function buildTar(entries: RawTarEntry[]): Uint8Array {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const pax = [...(e.pax ?? [])];
    if (bytes(e.name).length > 100 && !pax.some(([k]) => k === "path")) pax.push(["path", e.name]);
    if (pax.length > 0) {
      const data = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
      parts.push(tarHeader({ name: "PaxHeaders/entry", type: "x" }, data.length), padded(data));
    }
    const data = e.data === undefined ? Buffer.alloc(0) : bytes(e.data);
    parts.push(tarHeader(e, e.size ?? data.length), padded(data));
  }
  parts.push(Buffer.alloc(1024));
  return new Uint8Array(Buffer.concat(parts));
}

/** An async iterable yielding `data` in pieces of `chunk` bytes. */
export async function* chunked(data: Uint8Array, chunk = 4096): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, Math.min(data.length, i + chunk));
}
