/**
 * Streaming tar reader: typed entries from ustar, GNU (long names/links, base-256 numbers),
 * PAX (local and global headers) and old v7 archives.
 *
 * The parser is our own: it pulls input pieces only as fast as entries and bodies are read
 * (see `input.ts`), hands body bytes out as views into those pieces, and discards what a
 * consumer leaves unread. PAX values are kept as raw bytes, so binary xattr values
 * (`SCHILY.xattr.security.capability`) and non-UTF-8 `path`/`linkpath` records survive;
 * header names are taken as bytes too.
 *
 * Not supported (rejected with {@link InvalidInputError}): GNU sparse files (typeflag `S`
 * and PAX `GNU.sparse.*`), GNU multi-volume/dump-dir entries and any other unknown
 * typeflag. Sockets cannot be stored in tar.
 */
import { Buffer } from "node:buffer";
import { InvalidInputError } from "../internal/errors.ts";
import { BLOCK_SIZE, copyBytes, headerChecksum, headerLinkname, headerName, parseNumeric } from "./header.ts";
import { PieceInput } from "./input.ts";
/** Entry types: the file kinds tar can hold, plus `hardlink` (a link to an earlier entry). */
export type TarEntryKind = "reg" | "dir" | "symlink" | "chr" | "blk" | "fifo" | "hardlink";

/** One tar entry, with its body to read before asking for the next entry. */
export interface TarEntry {
  /** Name as stored (PAX `path`, GNU long name or ustar prefix/name), decoded as UTF-8 (lossy). */
  readonly path: string;
  /** The exact name bytes as stored; not normalised (see `builder/path.ts`). */
  readonly pathBytes: Uint8Array;
  readonly kind: TarEntryKind;
  /** Permission bits with setuid/setgid/sticky (`mode & 0o7777`); no type bits. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Modification time, whole seconds since the epoch (floor for negative PAX times). */
  readonly mtime: number;
  /** Nanoseconds part of the PAX `mtime`, 0 when the header has only seconds. */
  readonly mtimeNsec: number;
  /** Body size in bytes (0 for everything except regular files, in practice). */
  readonly size: number;
  /** Symlink target or hardlink target, decoded as UTF-8 (lossy); "" when none. */
  readonly linkname: string;
  /** Exact link target bytes; empty when none. */
  readonly linknameBytes: Uint8Array;
  readonly devmajor: number;
  readonly devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.*` (and `LIBARCHIVE.xattr.*`), values as raw bytes. */
  readonly xattrs: ReadonlyMap<string, Uint8Array>;
  /**
   * The entry's data, read once. Whatever is not read when the next entry is requested is
   * drained (read and discarded) by the reader, so skipping a body is allowed.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** PAX keywords that carry extended attributes (GNU/star and libarchive spellings). */
function isXattrKey(key: string): boolean {
  return key.startsWith("SCHILY.xattr.") || key.startsWith("LIBARCHIVE.xattr.");
}

/** Options of {@link readTar}. */
export interface ReadTarOptions {
  /** Abort reading; the pending call rejects with the signal's reason. */
  signal?: AbortSignal;
}

const utf8 = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** PAX records of one header: keyword → raw value bytes. */
type PaxRecords = Map<string, Uint8Array>;

/**
 * Parses PAX extended-header records (`"%d %s=%s\n"`) keeping values as raw bytes.
 *
 * @param data the header's data (its `size` bytes)
 * @returns keyword → value; a later record of the same keyword wins
 * @throws {InvalidInputError} when a record is malformed
 * @example
 * parsePaxRecords(new TextEncoder().encode("11 path=ab\n")).get("path"); // Uint8Array "ab"
 */
export function parsePaxRecords(data: Uint8Array): PaxRecords {
  const out: PaxRecords = new Map();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // NUL padding after the last record (written by some tools)
    let sp = pos;
    while (sp < data.length && data[sp] >= 0x30 && data[sp] <= 0x39) sp++;
    const bad = (detail: string): never => {
      throw new InvalidInputError(`Cannot parse tar PAX header: record at byte ${pos} ${detail}`);
    };
    if (sp === pos || sp >= data.length || data[sp] !== 0x20) bad("has no decimal length followed by a space");
    const len = Number.parseInt(Buffer.from(data.buffer, data.byteOffset + pos, sp - pos).toString("latin1"), 10);
    const end = pos + len;
    if (!(len > sp - pos + 1) || end > data.length) bad(`has length ${len} beyond the header data (${data.length} bytes)`);
    if (data[end - 1] !== 0x0a) bad("does not end with a newline");
    const rec = data.subarray(sp + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) bad("has no keyword");
    out.set(utf8.decode(rec.subarray(0, eq)), new Uint8Array(rec.subarray(eq + 1)));
    pos = end;
  }
  return out;
}

function paxText(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("latin1");
}

/** A PAX decimal integer record; `entry` names the entry in errors. */
function paxInt(key: string, v: Uint8Array, entry: string): number {
  const text = paxText(v);
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new InvalidInputError(`Cannot read tar entry ${entry}: PAX ${key} "${text}" is not a non-negative integer`);
  }
  return n;
}

/** PAX `mtime` ("-?sec[.frac]") → [seconds (floored), nanoseconds]. */
function paxTime(v: Uint8Array, entry: string): [number, number] {
  const text = paxText(v);
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[2]))) {
    throw new InvalidInputError(`Cannot read tar entry ${entry}: PAX mtime "${text}" is not a decimal time`);
  }
  let sec = Number(m[2]);
  let nsec = Number(((m[3] ?? "") + "000000000").slice(0, 9));
  if (m[1] === "-") {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1_000_000_000 - nsec;
    }
  }
  return [sec, nsec];
}

function xattrsFrom(pax: PaxRecords): Map<string, Uint8Array> {
  const xattrs = new Map<string, Uint8Array>();
  for (const [k, v] of pax) {
    if (k.startsWith("SCHILY.xattr.") && k.length > 13) xattrs.set(k.slice(13), v);
  }
  for (const [k, v] of pax) {
    // libarchive: %-encoded name, base64 value. SCHILY wins when both are present.
    if (!k.startsWith("LIBARCHIVE.xattr.") || k.length <= 17) continue;
    const name = decodeURIComponent(k.slice(17));
    if (!xattrs.has(name)) xattrs.set(name, new Uint8Array(Buffer.from(paxText(v), "base64")));
  }
  return xattrs;
}

/** A PAX header or GNU long name/link larger than this is rejected (real ones are a few KiB). */
const MAX_META_SIZE = 1 << 20;

const EMPTY_PAX: PaxRecords = new Map();
const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** Typeflag byte → entry kind (NUL is an old-style regular file, `7` contiguous is read as regular). */
function kindOf(typeflag: number): TarEntryKind | undefined {
  switch (typeflag) {
    case 0:
    case 0x30:
    case 0x37:
      return "reg";
    case 0x31:
      return "hardlink";
    case 0x32:
      return "symlink";
    case 0x33:
      return "chr";
    case 0x34:
      return "blk";
    case 0x35:
      return "dir";
    case 0x36:
      return "fifo";
    default:
      return undefined;
  }
}

/** Bytes of padding after `size` bytes of data, up to the next block boundary. */
function padding(size: number): number {
  const rem = size % BLOCK_SIZE;
  return rem === 0 ? 0 : BLOCK_SIZE - rem;
}

/** The global PAX records overlaid with an entry's own; an empty value deletes an ordinary keyword. */
function mergePax(global: PaxRecords, local: PaxRecords | null): PaxRecords {
  const merged = new Map(global);
  if (local) {
    for (const [k, v] of local) {
      // An empty value deletes a keyword (POSIX pax), except an xattr, where it is the value.
      if (v.length === 0 && !isXattrKey(k)) merged.delete(k);
      else merged.set(k, v);
    }
  }
  return merged;
}

/** `"path" at byte N`, naming an entry in error messages. */
function where(path: string, at: number): string {
  return `${JSON.stringify(path)} at byte ${at}`;
}

function entryError(path: string, at: number, detail: string): never {
  throw new InvalidInputError(`Cannot read tar entry ${where(path, at)}: ${detail}`);
}

/** A numeric header field of the entry `path` at `at`; throws when it is not a number. */
function headerField(block: Uint8Array, field: string, off: number, len: number, path: string, at: number): number {
  const v = parseNumeric(block, off, len);
  return Number.isNaN(v) ? entryError(path, at, `invalid ${field} field`) : v;
}

function truncated(input: PieceInput, what: string): InvalidInputError {
  return new InvalidInputError(`Cannot read tar stream: unexpected end of archive at byte ${input.offset} ${what}`);
}

/**
 * The body of one entry, read once: views into the input pieces, pulled on demand. When the
 * reader moves on to the next entry it detaches the body and discards what is left.
 */
class EntryBody implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array> {
  readonly #input: PieceInput;
  readonly #path: string;
  readonly #at: number;
  readonly #signal: AbortSignal | undefined;
  /** Data bytes not yet handed out. */
  remaining: number;
  #started = false;
  #stopped = false;

  constructor(input: PieceInput, size: number, path: string, at: number, signal: AbortSignal | undefined) {
    this.#input = input;
    this.remaining = size;
    this.#path = path;
    this.#at = at;
    this.#signal = signal;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#started) {
      return { next: () => Promise.reject(new TypeError("Cannot read tar entry body: it was already read")) };
    }
    this.#started = true;
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#stopped || this.remaining === 0) return DONE;
    this.#signal?.throwIfAborted();
    let piece = this.#input.take(this.remaining);
    if (piece === null) {
      if (!(await this.#input.pull())) throw truncated(this.#input, `in the body of entry ${this.where}`);
      piece = this.#input.take(this.remaining)!;
    }
    this.remaining -= piece.length;
    return { value: piece, done: false };
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    this.#stopped = true;
    return DONE;
  }

  /** The entry, for error messages. */
  get where(): string {
    return where(this.#path, this.#at);
  }

  /** Ends the body for its consumer (the reader discards the rest); returns the unread byte count. */
  detach(): number {
    this.#started = true;
    this.#stopped = true;
    return this.remaining;
  }
}

/**
 * Reads a tar stream entry by entry. Nothing is buffered beyond the current input piece (and
 * one header block or PAX header when it spans two pieces): the input is pulled only as fast
 * as headers and bodies are read, and body pieces are views into the input pieces.
 *
 * The archive ends at two zero blocks (a lone zero block is skipped) or at the end of the
 * input right after an entry; whatever follows the end blocks is read and discarded.
 *
 * @param source uncompressed tar bytes (a Node `Readable`, a Web `ReadableStream`, any async iterable)
 * @param options see {@link ReadTarOptions}
 * @returns entries in archive order; each `body` must be read (or left to be skipped) before the next `next()`
 * @throws {InvalidInputError} on a bad header checksum, a truncated archive, a malformed or oversized PAX
 *   header or long name, a GNU sparse file or an unsupported entry type; errors thrown by `source`
 *   itself are passed through unchanged
 * @example
 * import fs from "node:fs";
 * for await (const e of readTar(fs.createReadStream("layer.tar"))) {
 *   console.log(e.kind, e.path, e.size);
 * }
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const { signal } = options;
  signal?.throwIfAborted();
  let onAbort: (() => void) | undefined;
  let abort: Promise<never> | undefined;
  if (signal) {
    abort = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    // Only observed through the race in PieceInput.pull; outside a pull, throwIfAborted reports it.
    abort.catch(() => undefined);
  }
  const input = new PieceInput(source, abort);
  const global: PaxRecords = new Map();
  let pending: PaxRecords | null = null;
  let longName: Uint8Array | null = null;
  let longLink: Uint8Array | null = null;
  let body: EntryBody | undefined;
  let bodyPadding = 0;
  let finished = false;
  try {
    for (;;) {
      if (body) {
        const skip = body.detach() + bodyPadding;
        if ((await input.skip(skip)) < skip) throw truncated(input, `in the body of entry ${body.where}`);
        body = undefined;
      }
      signal?.throwIfAborted();
      let at = input.offset;
      let block = await input.read(BLOCK_SIZE);
      if (block.length === 0) break; // end of input right after an entry
      if (block.length < BLOCK_SIZE) throw truncated(input, `inside the header at byte ${at}`);
      let sum = headerChecksum(block);
      if (sum.unsigned === 8 * 0x20) {
        // A zero block: with a second one (or the end of input) it ends the archive; a lone one is skipped.
        at = input.offset;
        block = await input.read(BLOCK_SIZE);
        if (block.length < BLOCK_SIZE && block.every((b) => b === 0)) break;
        if (block.length < BLOCK_SIZE) throw truncated(input, `inside the header at byte ${at}`);
        sum = headerChecksum(block);
        if (sum.unsigned === 8 * 0x20) break;
      }
      if (sum.stored !== sum.unsigned && sum.stored !== sum.signed) {
        throw new InvalidInputError(
          `Cannot read tar stream: invalid header checksum at byte ${at} (stored ${sum.stored}, computed ${sum.unsigned}); ` +
            "the archive is corrupt, or not an uncompressed tar",
        );
      }
      const typeflag = block[156];
      const headerSize = parseNumeric(block, 124, 12);

      // Meta headers: PAX (x local, g global) and GNU long name (L, old N) / long link (K).
      if (typeflag === 0x78 || typeflag === 0x67 || typeflag === 0x4c || typeflag === 0x4e || typeflag === 0x4b) {
        const what = typeflag === 0x78 || typeflag === 0x67 ? "PAX header" : "GNU long name";
        if (!(headerSize >= 0)) throw new InvalidInputError(`Cannot read tar entry at byte ${at}: ${what} has an invalid size field`);
        if (headerSize > MAX_META_SIZE) {
          throw new InvalidInputError(
            `Cannot read tar entry at byte ${at}: ${what} of ${headerSize} bytes is larger than the ${MAX_META_SIZE}-byte limit`,
          );
        }
        const data = await input.read(headerSize);
        if (data.length < headerSize) throw truncated(input, `inside the ${what} at byte ${at}`);
        const pad = padding(headerSize);
        if ((await input.skip(pad)) < pad) throw truncated(input, `inside the ${what} at byte ${at}`);
        if (typeflag === 0x78 || typeflag === 0x67) {
          let records: PaxRecords;
          try {
            records = parsePaxRecords(data);
          } catch (error) {
            throw new InvalidInputError(`Cannot read tar entry at byte ${at}: ${(error as Error).message}`, { cause: error });
          }
          if (typeflag === 0x67) {
            for (const [k, v] of records) {
              if (v.length === 0) global.delete(k);
              else global.set(k, v);
            }
          } else {
            pending = pending ? new Map([...pending, ...records]) : records;
          }
        } else {
          const nul = data.indexOf(0);
          const name = copyBytes(data, 0, nul < 0 ? data.length : nul);
          if (typeflag === 0x4b) longLink = name;
          else longName = name;
        }
        continue;
      }

      // A real entry: header fields overridden by GNU long names and PAX records.
      const pax = pending === null && global.size === 0 ? EMPTY_PAX : mergePax(global, pending);
      pending = null;
      const name = headerName(block);
      const pathBytes = pax.get("path") ?? longName ?? name;
      const linkBytes = pax.get("linkpath") ?? longLink ?? headerLinkname(block) ?? EMPTY;
      longName = null;
      longLink = null;
      const path = utf8.decode(pathBytes);
      if (pax !== EMPTY_PAX) {
        for (const k of pax.keys()) if (k.startsWith("GNU.sparse.")) entryError(path, at, "GNU sparse files are not supported");
      }
      if (typeflag === 0x53) entryError(path, at, "GNU sparse files are not supported");
      let kind = kindOf(typeflag);
      if (kind === undefined) {
        return entryError(
          path,
          at,
          `unsupported entry type ${JSON.stringify(String.fromCharCode(typeflag))} ` +
            "(GNU sparse, multi-volume and dump-dir entries are not supported)",
        );
      }
      // v7 tars (no ustar magic) mark directories by a trailing slash on a NUL-typeflag header.
      if (typeflag === 0 && block[257] === 0 && name.length > 0 && name[name.length - 1] === 0x2f) kind = "dir";
      const paxSize = pax.get("size");
      const size = paxSize ? paxInt("size", paxSize, where(path, at)) : headerSize;
      if (!Number.isSafeInteger(size) || size < 0) entryError(path, at, `invalid size ${size}`);
      let mtime: number;
      let mtimeNsec = 0;
      const paxMtime = pax.get("mtime");
      if (paxMtime) [mtime, mtimeNsec] = paxTime(paxMtime, where(path, at));
      else mtime = headerField(block, "mtime", 136, 12, path, at);
      const paxUid = pax.get("uid");
      const paxGid = pax.get("gid");
      const isDevice = kind === "chr" || kind === "blk";
      const mode = headerField(block, "mode", 100, 8, path, at);
      const uid = paxUid ? paxInt("uid", paxUid, where(path, at)) : headerField(block, "uid", 108, 8, path, at);
      const gid = paxGid ? paxInt("gid", paxGid, where(path, at)) : headerField(block, "gid", 116, 8, path, at);
      // Device numbers matter only for devices; other tars may leave anything there.
      const devmajor = isDevice ? headerField(block, "devmajor", 329, 8, path, at) : parseNumeric(block, 329, 8) || 0;
      const devminor = isDevice ? headerField(block, "devminor", 337, 8, path, at) : parseNumeric(block, 337, 8) || 0;
      // Directories carry no data blocks whatever their size field says (as GNU tar reads them).
      const dataSize = kind === "dir" ? 0 : size;
      body = new EntryBody(input, dataSize, path, at, signal);
      bodyPadding = padding(dataSize);
      yield {
        path,
        pathBytes,
        kind,
        mode: mode & 0o7777,
        uid,
        gid,
        mtime,
        mtimeNsec,
        size,
        linkname: linkBytes.length === 0 ? "" : utf8.decode(linkBytes),
        linknameBytes: linkBytes,
        devmajor,
        devminor,
        xattrs: pax === EMPTY_PAX ? new Map() : xattrsFrom(pax),
        body,
      };
      signal?.throwIfAborted();
    }
    await input.drain();
    finished = true;
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
    // Consumer stopped early or an error is propagating: stop pulling the source.
    if (!finished) input.close();
  }
}
