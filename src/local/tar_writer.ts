/**
 * Writing tar member headers (POSIX ustar + PAX extended headers), binary safe.
 *
 * A PAX `x` header precedes a member whenever ustar cannot hold a field exactly: names or link
 * targets longer than 100 bytes or not valid UTF-8 (`hdrcharset=BINARY`), ids above 0o7777777,
 * sizes or times that do not fit the octal fields, nanosecond mtimes, and xattrs
 * (`SCHILY.xattr.<name>`, value bytes verbatim, as GNU tar and star write them).
 */
import { InvalidInputError } from "../internal/errors.ts";

export const TAR_BLOCK = 512;

/** ustar type flags used here. */
export type TarType = "0" | "1" | "2" | "3" | "4" | "5" | "6";

/** One member's header fields. */
export interface TarMember {
  /** Member name bytes ("a/b", directories with a trailing "/"). */
  name: Uint8Array;
  type: TarType;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow (regular files only). */
  size: number;
  mtime: number;
  mtimeNsec: number;
  /** Hardlink target (a member name) or symlink target. */
  linkname?: Uint8Array;
  devMajor?: number;
  devMinor?: number;
  xattrs?: ReadonlyMap<string, Uint8Array>;
}

const enc = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function isUtf8(b: Uint8Array): boolean {
  try {
    strictUtf8.decode(b);
    return true;
  } catch (err) {
    void err; // not valid UTF-8
    return false;
  }
}

function fits(value: number, digits: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value < 8 ** digits;
}

function putOctal(h: Uint8Array, off: number, width: number, value: number): void {
  h.set(enc.encode(value.toString(8).padStart(width - 1, "0")), off);
}

/** One PAX record "LEN key=value\n" (the length counts itself). */
export function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const v = typeof value === "string" ? enc.encode(value) : value;
  const k = enc.encode(` ${key}=`);
  const body = k.length + v.length + 1;
  let len = body + 1;
  while (String(len).length + body !== len) len = String(len).length + body;
  const out = new Uint8Array(len);
  const digits = enc.encode(String(len));
  out.set(digits, 0);
  out.set(k, digits.length);
  out.set(v, digits.length + k.length);
  out[len - 1] = 0x0a;
  return out;
}

interface UstarFields {
  type: TarType | "x";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  devMajor?: number;
  devMinor?: number;
}

function ustar(name: Uint8Array, m: UstarFields, linkname: Uint8Array | undefined): Uint8Array {
  const h = new Uint8Array(TAR_BLOCK);
  h.set(name.subarray(0, 100), 0);
  putOctal(h, 100, 8, m.mode & 0o7777);
  putOctal(h, 108, 8, fits(m.uid, 7) ? m.uid : 0);
  putOctal(h, 116, 8, fits(m.gid, 7) ? m.gid : 0);
  putOctal(h, 124, 12, fits(m.size, 11) ? m.size : 0);
  putOctal(h, 136, 12, fits(m.mtime, 11) ? m.mtime : 0);
  h.fill(0x20, 148, 156);
  h[156] = m.type.charCodeAt(0);
  if (linkname) h.set(linkname.subarray(0, 100), 157);
  h.set(enc.encode("ustar\0" + "00"), 257);
  putOctal(h, 329, 8, m.devMajor ?? 0);
  putOctal(h, 337, 8, m.devMinor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return h;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Zero bytes that pad `n` data bytes to the next 512-byte boundary. */
export function tarPadding(n: number): number {
  return (TAR_BLOCK - (n % TAR_BLOCK)) % TAR_BLOCK;
}

/**
 * The header block(s) of a member: an optional PAX `x` header (with its padded records) and the
 * ustar header. The caller writes `size` data bytes and {@link tarPadding} zeros after it.
 * @throws InvalidInputError for device numbers ustar cannot hold
 */
export function tarHeader(m: TarMember): Uint8Array {
  const recs: Uint8Array[] = [];
  let binary = false;
  if (m.name.length > 100 || !isUtf8(m.name)) {
    recs.push(paxRecord("path", m.name));
    binary ||= !isUtf8(m.name);
  }
  if (m.linkname && (m.linkname.length > 100 || !isUtf8(m.linkname))) {
    recs.push(paxRecord("linkpath", m.linkname));
    binary ||= !isUtf8(m.linkname);
  }
  if (!fits(m.uid, 7)) recs.push(paxRecord("uid", String(m.uid)));
  if (!fits(m.gid, 7)) recs.push(paxRecord("gid", String(m.gid)));
  if (!fits(m.size, 11)) recs.push(paxRecord("size", String(m.size)));
  if (m.mtimeNsec !== 0 || !fits(m.mtime, 11)) {
    recs.push(paxRecord("mtime", m.mtimeNsec !== 0 ? `${m.mtime}.${String(m.mtimeNsec).padStart(9, "0")}` : String(m.mtime)));
  }
  for (const [k, v] of m.xattrs ?? []) recs.push(paxRecord(`SCHILY.xattr.${k}`, v));
  if (!fits(m.devMajor ?? 0, 7) || !fits(m.devMinor ?? 0, 7)) {
    throw new InvalidInputError(`Cannot write tar member "${Buffer.from(m.name).toString()}": device ${m.devMajor}:${m.devMinor} does not fit ustar`);
  }
  const main = ustar(m.name, m, m.linkname);
  if (recs.length === 0) return main;
  if (binary) recs.unshift(paxRecord("hdrcharset", "BINARY"));
  const data = concat(recs);
  // The x header's own name: like GNU tar's "PaxHeaders.N/<base>", kept short and ASCII.
  const base = Buffer.from(m.name).toString("latin1").replace(/\/$/, "").split("/").pop()!.replace(/[^\x20-\x7e]/g, "_").slice(0, 80);
  const xh = ustar(enc.encode(`PaxHeaders/${base}`), { type: "x", mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: fits(m.mtime, 11) ? m.mtime : 0 }, undefined);
  return concat([xh, data, new Uint8Array(tarPadding(data.length)), main]);
}

/** The end-of-archive marker: two zero blocks. */
export function tarTrailer(): Uint8Array {
  return new Uint8Array(2 * TAR_BLOCK);
}
