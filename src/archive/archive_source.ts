/**
 * OCI and Docker archives (tar, optionally gzip'ed), from a file or a stream, as image sources.
 */
import fs from "node:fs";
import { InvalidInputError, NydusError, UnsafePathError } from "../internal/errors.ts";
import { readLayoutIndex } from "../layout/layout_files.ts";
import { layoutSource } from "../layout/layout_source.ts";
import { Annotation } from "../oci/media_type.ts";
import type { ImageSource } from "../oci/store.ts";
import { maybeGunzip } from "../tar/gzip.ts";
import { CONTAINERD_IMAGE_NAME } from "../layout/select_entry.ts";
import { dockerArchiveSource } from "./docker_archive.ts";
import { type Spool, spoolArchive } from "./spool.ts";

/** Archive formats; `auto` looks at the members. */
export type ArchiveFormat = "oci-archive" | "docker-archive" | "auto";

/** Options of {@link archiveSource}. */
export interface ArchiveSourceOptions {
  /** @default "auto": `oci-layout` + `index.json` → OCI archive (preferred), else `manifest.json` → Docker archive */
  format?: ArchiveFormat;
  /**
   * The image to read: an `org.opencontainers.image.ref.name` in an OCI archive, a RepoTag
   * (`name:tag`) in a Docker archive. @default the only (OCI) or first (Docker) image
   */
  tag?: string;
  /** Parent directory of the temporary spool directory. @default os.tmpdir() */
  spoolDir?: string;
  signal?: AbortSignal;
}

function withClose(source: ImageSource, spool: Spool): ImageSource {
  return {
    name: source.name,
    resolve: (o) => source.resolve(o),
    fetchBytes: (d, o) => source.fetchBytes(d, o),
    fetchBlob: (d, o) => source.fetchBlob(d, o),
    close: () => spool.remove(),
  };
}

/** Whether the OCI layout's index.json has an entry `tag` names (ref name or containerd image name). */
async function layoutHasTag(dir: string, tag: string): Promise<boolean> {
  const { index } = await readLayoutIndex(dir);
  return index.manifests.some((m) => m.annotations?.[Annotation.OciRefName] === tag || m.annotations?.[CONTAINERD_IMAGE_NAME] === tag);
}

async function* fileStream(file: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  yield* fs.createReadStream(file, { highWaterMark: 1 << 20, signal }) as AsyncIterable<Buffer>;
}

/**
 * Opens an OCI archive (`skopeo copy … oci-archive:F`, `buildah push … oci-archive:F`) or a
 * Docker archive (`docker save`, `… docker-archive:F`) as an {@link ImageSource}.
 *
 * The tar (gzip'ed or not, detected by its magic) is read once, as a stream, and its members
 * are spooled into a fresh temporary directory: no member is held in memory, and stdin works
 * like a file. Member names that are absolute or contain `..` are refused; links are never
 * created (a Docker archive's legacy `layer.tar` symlinks are followed inside the archive).
 * Every blob is verified against its descriptor when read. Call `close()` to delete the spool.
 *
 * @param input the archive's path, or its bytes (e.g. `process.stdin`)
 * @param options see {@link ArchiveSourceOptions}
 * @throws {UnsafePathError} for a hostile member name; {@link InvalidInputError} for a truncated or
 *   corrupt archive, or one that is neither format
 * @example
 * const src = await archiveSource("/tmp/image.tar", { tag: "busybox:latest" });
 * try {
 *   const manifest = parseManifest(await src.fetchBytes(await src.resolve()));
 * } finally {
 *   await src.close?.();
 * }
 */
export async function archiveSource(input: string | AsyncIterable<Uint8Array>, options: ArchiveSourceOptions = {}): Promise<ImageSource> {
  const format = options.format ?? "auto";
  const label = typeof input === "string" ? input : "-";
  const what = `archive ${JSON.stringify(label)}`;
  const bytes = typeof input === "string" ? fileStream(input, options.signal) : input;
  let spool: Spool;
  try {
    spool = await spoolArchive(maybeGunzip(bytes, what), { spoolDir: options.spoolDir, signal: options.signal, what });
  } catch (err) {
    if (err instanceof UnsafePathError || (err instanceof NydusError && !(err instanceof InvalidInputError))) throw err;
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && typeof input === "string") {
      throw new InvalidInputError(`Cannot read ${what}: no such file`, { cause: err });
    }
    if ((err as Error).name === "AbortError") throw err;
    throw new InvalidInputError(`Cannot read ${what}: ${(err as Error).message.replace(/^Cannot /, "could not ")}`, { cause: err });
  }
  try {
    const hasOci = spool.files.has("oci-layout") && spool.files.has("index.json");
    const hasDocker = spool.files.has("manifest.json");
    let chosen: "oci-archive" | "docker-archive";
    if (format !== "auto") {
      chosen = format;
    } else if (hasOci && hasDocker) {
      // docker ≥ 25 writes both; the OCI layout wins unless only manifest.json knows the tag.
      chosen = options.tag !== undefined && !(await layoutHasTag(spool.dir, options.tag)) ? "docker-archive" : "oci-archive";
    } else if (hasOci || hasDocker) {
      chosen = hasOci ? "oci-archive" : "docker-archive";
    } else {
      throw new InvalidInputError(`Cannot read ${what}: it is neither an OCI archive (no oci-layout and index.json) nor a Docker archive (no manifest.json)`);
    }
    const name = `${chosen}:${label}${options.tag !== undefined ? `:${options.tag}` : ""}`;
    if (chosen === "docker-archive") return await dockerArchiveSource(spool, { tag: options.tag, name });
    const source = layoutSource(spool.dir, { tag: options.tag, name });
    await source.resolve(); // fail now (wrong tag, bad layout) rather than after the caller holds a spool
    return withClose(source, spool);
  } catch (err) {
    await spool.remove();
    throw err;
  }
}
