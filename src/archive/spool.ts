/**
 * Unpacking an archive stream into a private temporary directory, one member at a time,
 * so that no member (a layer may be gigabytes) is ever held in memory.
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { writeAll } from "../layout/write_atomic.ts";
import { readTar } from "../tar/reader.ts";
import { linkTargetName, normalizeMemberName } from "./member_name.ts";

/** A regular member written to the spool. */
export interface SpooledFile {
  /** Member name, normalized (`blobs/sha256/ab…`). */
  name: string;
  /** Absolute path of the spooled copy. */
  path: string;
  size: number;
  /** `sha256:<hex>` of the member's bytes, computed while spooling. */
  digest: string;
  /** The first (up to) 8 bytes, for sniffing compression. */
  head: Uint8Array;
}

/** A link member: not written (links are never created in the spool), only remembered. */
export interface SkippedLink {
  kind: "symlink" | "hardlink";
  target: string;
}

/** An unpacked archive. */
export interface Spool {
  /** The spool directory; holds only directories and regular files. */
  readonly dir: string;
  /** Regular members by normalized name. */
  readonly files: ReadonlyMap<string, SpooledFile>;
  /** Link members by normalized name. */
  readonly links: ReadonlyMap<string, SkippedLink>;
  /**
   * The regular member `name` refers to, following links inside the archive (docker's
   * legacy `<id>/layer.tar` symlinks) without ever leaving it.
   * @throws {NotFoundError} when there is no such member; UnsafePathError for a hostile name or link
   */
  file(name: string): SpooledFile;
  /** Deletes the spool directory. Idempotent. */
  remove(): Promise<void>;
}

/** Options of {@link spoolArchive}. */
export interface SpoolOptions {
  /** Parent of the spool directory. @default os.tmpdir() */
  spoolDir?: string;
  signal?: AbortSignal;
  /** Names the archive in errors. */
  what: string;
}

const MAX_LINK_HOPS = 16;
const HEAD = 8;

/**
 * Reads an uncompressed tar stream and writes its regular members and directories under a
 * fresh directory. Member names are checked first: absolute names and `..` components throw
 * {@link UnsafePathError}, so nothing is ever written outside the spool. Symlinks and
 * hardlinks are not created, only remembered (see {@link Spool.file}); devices and fifos
 * are skipped. On any error the spool directory is removed before the error is thrown.
 */
export async function spoolArchive(tar: AsyncIterable<Uint8Array>, options: SpoolOptions): Promise<Spool> {
  const dir = await fsp.mkdtemp(path.join(options.spoolDir ?? os.tmpdir(), "nydus-archive-"));
  const files = new Map<string, SpooledFile>();
  const links = new Map<string, SkippedLink>();
  const made = new Set<string>([""]);
  let removed: Promise<void> | undefined;
  const remove = (): Promise<void> => (removed ??= fsp.rm(dir, { recursive: true, force: true }));

  async function mkdirs(name: string): Promise<void> {
    if (made.has(name)) return;
    await fsp.mkdir(path.join(dir, name), { recursive: true });
    for (let n = name; n !== "." && n !== "" && !made.has(n); n = path.posix.dirname(n)) made.add(n);
  }

  try {
    for await (const entry of readTar(tar, { signal: options.signal })) {
      const name = normalizeMemberName(entry.path);
      if (name === "") continue;
      if (entry.kind === "dir") {
        await mkdirs(name);
      } else if (entry.kind === "symlink" || entry.kind === "hardlink") {
        files.delete(name);
        links.set(name, { kind: entry.kind, target: entry.linkname });
      } else if (entry.kind === "reg") {
        links.delete(name);
        await mkdirs(path.posix.dirname(name));
        files.set(name, await writeMember(path.join(dir, name), name, entry.body));
      }
      // chr, blk, fifo: nothing an image archive needs.
    }
  } catch (err) {
    await remove();
    throw err;
  }

  function file(name: string): SpooledFile {
    let current = normalizeMemberName(name);
    for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
      const f = files.get(current);
      if (f) return f;
      const link = links.get(current);
      if (!link) {
        const via = current === normalizeMemberName(name) ? "" : ` (reached through links from "${name}")`;
        throw new NotFoundError(`member "${current}" in ${options.what}`, `no such regular file in the archive${via}`);
      }
      current = linkTargetName(current, link.kind, link.target);
    }
    throw new InvalidInputError(`Cannot read member "${name}" of ${options.what}: more than ${MAX_LINK_HOPS} links to follow`);
  }

  return { dir, files, links, file, remove };
}

async function writeMember(file: string, name: string, body: AsyncIterable<Uint8Array>): Promise<SpooledFile> {
  const hash = crypto.createHash("sha256");
  const head = new Uint8Array(HEAD);
  let size = 0;
  // "w" would follow a symlink, but the spool never holds one: only directories and regular files.
  const fh = await fsp.open(file, "w", 0o600);
  try {
    for await (const piece of body) {
      if (size < HEAD) head.set(piece.subarray(0, HEAD - size), size);
      size += piece.length;
      hash.update(piece);
      await writeAll(fh, piece);
    }
  } finally {
    await fh.close();
  }
  return { name, path: file, size, digest: `sha256:${hash.digest("hex")}`, head: head.slice(0, Math.min(size, HEAD)) };
}
