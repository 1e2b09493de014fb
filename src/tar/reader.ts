/**
 * Streaming tar reader: typed entries over `tar-stream` (ustar, GNU long names/links,
 * PAX, old v7 headers).
 *
 * `tar-stream` decodes PAX values as UTF-8 strings, which corrupts binary xattr values
 * (`SCHILY.xattr.security.capability`) and non-UTF-8 `path`/`linkpath` records. We
 * therefore read every PAX header's raw bytes ourselves (one hook on the extractor, see
 * {@link hookPaxHeaders}) and take path, linkpath, uid, gid, mtime and xattrs from them;
 * header names are decoded as latin1 so their bytes survive unchanged.
 *
 * Not supported (rejected with {@link InvalidInputError}): GNU sparse files (typeflag `S`
 * and PAX `GNU.sparse.*`), GNU multi-volume/dump-dir entries and any other unknown
 * typeflag. Sockets cannot be stored in tar.
 */
import { Buffer } from "node:buffer";
import * as tarStream from "tar-stream";
import { InvalidInputError, NydusError } from "../internal/errors.ts";

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

/** The header object tar-stream gives each entry stream. */
interface StreamHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  type: string | null;
  linkname: string | null;
  devmajor: number;
  devminor: number;
}

/** tar-stream's entry stream (a streamx Readable). */
interface EntryStream extends AsyncIterable<Uint8Array> {
  header: StreamHeader;
}

/** The private parts of tar-stream's Extract that {@link hookPaxHeaders} wraps (tar-stream 3.x). */
interface ExtractInternals {
  _header: { type: string | null } | null;
  _decodeLongHeader(buf: Uint8Array): void;
}

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

/**
 * Wraps the extractor's long-header decoder to see the raw bytes of every PAX header
 * (local `x` and global `g`). tar-stream has no public hook for this; the method exists in
 * tar-stream 3.x and its absence is reported instead of silently losing xattrs.
 */
function hookPaxHeaders(extract: object, state: { global: PaxRecords; pending: PaxRecords | null }): void {
  const ex = extract as unknown as ExtractInternals;
  const original = ex._decodeLongHeader;
  if (typeof original !== "function") {
    throw new Error('Cannot read tar PAX headers: tar-stream has no "_decodeLongHeader" (unsupported tar-stream version)');
  }
  ex._decodeLongHeader = function (this: ExtractInternals, buf: Uint8Array): void {
    const type = this._header?.type;
    if (type === "pax-header") {
      const local = parsePaxRecords(buf);
      state.pending = state.pending ? new Map([...state.pending, ...local]) : local;
    } else if (type === "pax-global-header") {
      for (const [k, v] of parsePaxRecords(buf)) {
        if (v.length === 0) state.global.delete(k);
        else state.global.set(k, v);
      }
    }
    original.call(this, buf);
  };
}

function latin1(s: string | null | undefined): Uint8Array {
  return s ? new Uint8Array(Buffer.from(s, "latin1")) : EMPTY.slice();
}

function paxText(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("latin1");
}

function paxInt(key: string, v: Uint8Array, entry: string): number {
  const text = paxText(v);
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new InvalidInputError(`Cannot read tar entry "${entry}": PAX ${key} "${text}" is not a non-negative integer`);
  }
  return n;
}

/** PAX `mtime` ("-?sec[.frac]") → [seconds (floored), nanoseconds]. */
function paxTime(v: Uint8Array, entry: string): [number, number] {
  const text = paxText(v);
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[2]))) {
    throw new InvalidInputError(`Cannot read tar entry "${entry}": PAX mtime "${text}" is not a decimal time`);
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

const KIND_OF_TYPE: Record<string, TarEntryKind> = {
  file: "reg",
  "contiguous-file": "reg",
  link: "hardlink",
  symlink: "symlink",
  "character-device": "chr",
  "block-device": "blk",
  directory: "dir",
  fifo: "fifo",
};

/** Single-use body over the entry stream's iterator; drains what the caller left. */
class EntryBody implements AsyncIterable<Uint8Array> {
  readonly #it: AsyncIterator<Uint8Array>;
  readonly #wrap: (error: unknown) => unknown;
  #started = false;
  #done = false;
  constructor(stream: AsyncIterable<Uint8Array>, wrap: (error: unknown) => unknown) {
    this.#it = stream[Symbol.asyncIterator]();
    this.#wrap = wrap;
  }
  async #next(): Promise<IteratorResult<Uint8Array>> {
    try {
      return await this.#it.next();
    } catch (error) {
      throw this.#wrap(error);
    }
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#started) throw new TypeError("Cannot read tar entry body: it was already read");
    this.#started = true;
    // Pull manually: breaking out of a for-await over the tar-stream entry would destroy
    // the whole extractor; the remainder is drained by the reader instead.
    while (!this.#done) {
      const r = await this.#next();
      if (r.done) {
        this.#done = true;
        return;
      }
      yield r.value;
    }
  }
  async drain(): Promise<void> {
    this.#started = true;
    while (!this.#done) {
      const r = await this.#next();
      if (r.done) this.#done = true;
    }
  }
}

function toEntry(header: StreamHeader, pax: PaxRecords, body: EntryBody): TarEntry {
  const pathBytes = pax.get("path") ?? latin1(header.name);
  const path = utf8.decode(pathBytes);
  for (const k of pax.keys()) {
    if (k.startsWith("GNU.sparse.")) {
      throw new InvalidInputError(`Cannot read tar entry "${path}": GNU sparse files are not supported`);
    }
  }
  const kind = header.type === null ? undefined : KIND_OF_TYPE[header.type];
  if (kind === undefined) {
    throw new InvalidInputError(
      `Cannot read tar entry "${path}": unsupported entry type ${JSON.stringify(header.type)} ` +
        "(GNU sparse, multi-volume and dump-dir entries are not supported)",
    );
  }
  const size = header.size;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidInputError(`Cannot read tar entry "${path}": invalid size ${size}`);
  }
  let mtime = Math.floor(header.mtime.getTime() / 1000);
  let mtimeNsec = 0;
  const paxMtime = pax.get("mtime");
  if (paxMtime) [mtime, mtimeNsec] = paxTime(paxMtime, path);
  const paxUid = pax.get("uid");
  const paxGid = pax.get("gid");
  const linknameBytes = pax.get("linkpath") ?? latin1(header.linkname);
  return {
    path,
    pathBytes,
    kind,
    mode: header.mode & 0o7777,
    uid: paxUid ? paxInt("uid", paxUid, path) : header.uid,
    gid: paxGid ? paxInt("gid", paxGid, path) : header.gid,
    mtime,
    mtimeNsec,
    size,
    linkname: utf8.decode(linknameBytes),
    linknameBytes,
    devmajor: header.devmajor,
    devminor: header.devminor,
    xattrs: xattrsFrom(pax),
    body,
  };
}

/**
 * Reads a tar stream entry by entry. Nothing is buffered beyond one input chunk and the
 * entry body's small stream buffer: the input is pulled only as fast as bodies are read.
 *
 * @param source uncompressed tar bytes (a Node `Readable`, a Web `ReadableStream`, any async iterable)
 * @param options see {@link ReadTarOptions}
 * @returns entries in archive order; each `body` must be read (or left to be drained) before the next `next()`
 * @throws {InvalidInputError} on a corrupt or truncated archive, a malformed PAX header or an unsupported entry type;
 *   errors thrown by `source` itself are passed through unchanged
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
  // latin1 maps every header byte to one code unit, so names survive as bytes.
  const extractOptions = { filenameEncoding: "latin1", allowUnknownFormat: true };
  const extract = tarStream.extract(extractOptions as Parameters<typeof tarStream.extract>[0]);
  const state: { global: PaxRecords; pending: PaxRecords | null } = { global: new Map(), pending: null };
  hookPaxHeaders(extract, state);
  const paxOf = new WeakMap<object, PaxRecords>();
  // Runs synchronously right after the header (and its PAX headers) is decoded, before the
  // async iterator's own listener: pair the entry stream with the PAX records seen for it.
  extract.on("entry", (_header: unknown, stream: object) => {
    const merged = new Map(state.global);
    for (const [k, v] of state.pending ?? []) {
      // An empty value deletes a keyword (POSIX pax), except an xattr, where it is the value.
      if (v.length === 0 && !isXattrKey(k)) merged.delete(k);
      else merged.set(k, v);
    }
    state.pending = null;
    paxOf.set(stream, merged);
  });

  let stopped = false;
  let sourceError: { error: unknown } | undefined;
  const onAbort = () => extract.destroy(signal?.reason as Error);
  signal?.addEventListener("abort", onAbort, { once: true });

  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        if (stopped) break;
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (!extract.write(buf)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              extract.off("drain", done);
              extract.off("close", done);
              resolve();
            };
            extract.on("drain", done);
            extract.on("close", done);
          });
        }
        if (stopped || extract.destroyed) break;
      }
      if (!stopped && !extract.destroyed) (extract as unknown as { end(): void }).end();
    } catch (error) {
      sourceError = { error };
      extract.destroy(error as Error);
    }
  })();

  const wrap = (error: unknown): unknown => {
    if (signal?.aborted) return signal.reason;
    if (sourceError && error === sourceError.error) return error;
    if (error instanceof NydusError) return error;
    return new InvalidInputError(`Cannot read tar stream: ${(error as Error)?.message ?? String(error)}`, {
      cause: error,
    });
  };
  const entries = (extract as unknown as AsyncIterable<EntryStream>)[Symbol.asyncIterator]();
  let body: EntryBody | undefined;
  let finished = false;
  try {
    for (;;) {
      let r: IteratorResult<EntryStream>;
      if (body) await body.drain();
      try {
        r = await entries.next();
      } catch (error) {
        throw wrap(error);
      }
      if (r.done) break;
      const stream = r.value;
      body = new EntryBody(stream, wrap);
      yield toEntry(stream.header, paxOf.get(stream) ?? new Map(), body);
      signal?.throwIfAborted();
    }
    await feeding;
    if (sourceError) throw sourceError.error;
    finished = true;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!finished) {
      // Consumer stopped early or an error is propagating: stop pulling the source. The
      // feeder wakes up on "close", breaks out (which calls the source's return()), and
      // swallows nothing: its errors are recorded in sourceError, already irrelevant here.
      stopped = true;
      extract.destroy(undefined);
    }
  }
}
