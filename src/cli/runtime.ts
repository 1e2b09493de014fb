/**
 * Composition of the lazy runtime for the `ls`/`cat`/`stat`/`cp`/`mount` commands: a source
 * word (registry `REF` or `oci:DIR[:TAG]`) and flags → an opened Nydus image, its blob backend
 * (registry with `--mirror`s, or the layout's blob directory), a blob cache and a file reader.
 * Also path resolution inside the image (symlinks followed within the image only) and the
 * `fetched` / metrics summary the commands print.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openSource, parseSource } from "../export/index.ts";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { parsePlatform } from "../oci/platform.ts";
import type { RafsImage, RafsInode } from "../rafs/model.ts";
import { BlobCache, FileReader, localBackend, openNydusImage, registryBackend, StorageMetrics, type BlobBackend, type Mirror, type NydusImage } from "../storage/index.ts";
import { registryOptions, type RegistryFlags } from "./registry_flags.ts";

export interface RuntimeFlags extends RegistryFlags {
  insecure?: boolean;
  platform?: string;
  cacheDir?: string;
  mirror?: string[];
  mirrorHeader?: string[];
  json?: boolean;
}

export interface Runtime {
  source: string;
  nydus: NydusImage;
  image: RafsImage;
  backend: BlobBackend;
  cache: BlobCache;
  reader: FileReader;
  metrics: StorageMetrics;
  cacheDir: string;
  /** Image opening plus backend requests so far. */
  fetched(): { bytes: number; requests: number };
  /** `fetched` and the metrics totals, for `--json` and the exit summary. */
  summary(): { fetched: { bytes: number; requests: number }; metrics: ReturnType<StorageMetrics["snapshot"]>["totals"] };
  close(): Promise<void>;
}

/** `$XDG_CACHE_HOME/nydus-ts/cache`, else `~/.cache/nydus-ts/cache`. */
export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return path.join(base, "nydus-ts", "cache");
}

/** `--mirror URL` words (+ `--mirror-header "K: V"` for all of them) → mirrors. */
export function parseMirrors(urls: readonly string[] = [], headers: readonly string[] = []): Mirror[] {
  const h: Record<string, string> = {};
  for (const line of headers) {
    const i = line.indexOf(":");
    if (i <= 0) throw new InvalidInputError(`Cannot use --mirror-header "${line}": expected "Name: value"`);
    h[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  if (headers.length > 0 && urls.length === 0) throw new InvalidInputError("Cannot use --mirror-header without --mirror");
  return urls.map((u) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new InvalidInputError(`Cannot use --mirror "${u}": expected http://HOST[:PORT] or https://HOST[:PORT]`);
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || (url.pathname !== "/" && url.pathname !== "")) {
      throw new InvalidInputError(`Cannot use --mirror "${u}": expected http://HOST[:PORT] or https://HOST[:PORT]`);
    }
    return { host: url.host, plainHttp: url.protocol === "http:", headers: { ...h } };
  });
}

/** Opens `word` lazily: only the manifest and bootstrap are fetched here. */
export async function openRuntime(
  word: string,
  flags: RuntimeFlags,
  options: { persistentCache: boolean; signal?: AbortSignal; onBootstrap?: (bootstrap: Uint8Array) => void },
): Promise<Runtime> {
  const spec = parseSource(word);
  if (spec.kind === "archive") throw new InvalidInputError(`Cannot run "${word}" lazily: give a registry REF or oci:DIR[:TAG] (archives have no random access)`);
  const reg = registryOptions(flags, { insecure: flags.insecure, flag: "--creds" }, options.signal);
  const mirrors = parseMirrors(flags.mirror, flags.mirrorHeader);
  if (mirrors.length > 0 && spec.kind !== "registry") throw new InvalidInputError("Cannot use --mirror with an OCI layout source");
  const source = await openSource(spec, { registry: reg, signal: options.signal });
  let platform;
  try {
    platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  } catch (err) {
    throw new InvalidInputError((err as Error).message);
  }
  const nydus = await openNydusImage(source, { platform, signal: options.signal, onBootstrap: options.onBootstrap });
  const backend = spec.kind === "registry" ? registryBackend(spec.ref, { ...reg, mirrors }) : localBackend(spec.dir);
  let cacheDir: string;
  let removeCache: (() => void) | undefined;
  if (flags.cacheDir) cacheDir = path.resolve(flags.cacheDir);
  else if (options.persistentCache) cacheDir = defaultCacheDir();
  else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nydus-ts-cache-"));
    cacheDir = dir;
    removeCache = () => fs.rmSync(dir, { recursive: true, force: true });
    process.once("exit", removeCache);
  }
  fs.mkdirSync(cacheDir, { recursive: true });
  const metrics = new StorageMetrics();
  const cache = new BlobCache({ dir: cacheDir, backend, image: nydus.image, metrics });
  const reader = new FileReader(nydus.image, cache);
  const fetched = () => {
    const t = metrics.snapshot().totals;
    return { bytes: nydus.bytes + t.bytes, requests: nydus.fetches + t.requests };
  };
  return {
    source: word, nydus, image: nydus.image, backend, cache, reader, metrics, cacheDir, fetched,
    summary: () => ({ fetched: fetched(), metrics: metrics.snapshot().totals }),
    async close() {
      await cache.flush().catch(() => {});
      await cache.close().catch(() => {});
      await backend.close?.().catch(() => {});
      await source.close?.();
      if (removeCache) {
        removeCache();
        process.removeListener("exit", removeCache);
      }
    },
  };
}

const dec = new TextDecoder();

/**
 * Resolves an absolute image path, following symlinks inside the image (never the host's),
 * in intermediate components always and in the last one when `follow`.
 * @throws NotFoundError when a component is missing; InvalidInputError on loops
 */
export function resolvePath(image: RafsImage, p: string, follow: boolean): { path: string; inode: RafsInode } {
  const rootIno = image.superBlock.rootIno;
  const pending = p.split("/").filter((s) => s !== "" && s !== ".");
  const stack: RafsInode[] = [image.inode(rootIno)];
  const names: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "..") {
      if (stack.length > 1) {
        stack.pop();
        names.pop();
      }
      continue;
    }
    const dir = stack[stack.length - 1]!;
    if (dir.kind !== "dir") throw new NotFoundError(`path "${p}"`, `"/${names.join("/")}" is not a directory`);
    const entry = image.readdir(dir).find((e) => dec.decode(e.name) === name);
    if (!entry) throw new NotFoundError(`path "${p}"`, `no "${name}" in "/${names.join("/")}"`);
    const inode = image.inode(entry.ino);
    if (inode.kind === "symlink" && (pending.length > 0 || follow)) {
      if (++hops > 40) throw new InvalidInputError(`Cannot resolve "${p}": too many levels of symbolic links`);
      const target = dec.decode(image.readlink(inode));
      if (target.startsWith("/")) {
        stack.length = 1;
        names.length = 0;
      }
      pending.unshift(...target.split("/").filter((s) => s !== "" && s !== "."));
      continue;
    }
    stack.push(inode);
    names.push(name);
  }
  return { path: "/" + names.join("/"), inode: stack[stack.length - 1]! };
}

/** `drwxr-xr-x`-style mode string. */
export function modeString(mode: number): string {
  const types: Record<number, string> = { 0o040000: "d", 0o120000: "l", 0o020000: "c", 0o060000: "b", 0o010000: "p", 0o140000: "s", 0o100000: "-" };
  let s = types[mode & 0o170000] ?? "?";
  const rwx = (bits: number, special: boolean, ch: string) => (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? "x" : "-");
  s += rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, "s");
  s += rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, "s");
  s += rwx(mode & 7, (mode & 0o1000) !== 0, "t");
  return s;
}

/** One-line human summary of fetches. */
export function fetchedLine(rt: Runtime): string {
  const s = rt.summary();
  return `fetched ${s.fetched.bytes} bytes in ${s.fetched.requests} requests (cache hits ${s.metrics.hits}, misses ${s.metrics.misses}, verified chunks ${s.metrics.verifiedChunks}, failures ${s.metrics.failures + s.metrics.verificationFailures})`;
}
