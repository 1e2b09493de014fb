/**
 * A Docker archive (`docker save`, `skopeo copy … docker-archive:`) as an image source: the
 * image `manifest.json` names becomes a synthesized Docker schema 2 manifest.
 */
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { readFileVerified, streamFileVerified } from "../layout/read_blob.ts";
import { MediaType } from "../oci/media_type.ts";
import type { FetchOptions, ImageSource } from "../oci/store.ts";
import { type Descriptor, jsonBytes } from "../oci/types.ts";
import { describeBytes, verifyBytes, verifyStream } from "../oci/verify.ts";
import type { Spool, SpooledFile } from "./spool.ts";

/** Media type of an uncompressed Docker layer. */
export const DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar";

/** One image of a Docker archive's `manifest.json`. */
export interface DockerArchiveImage {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** Parses and checks a Docker archive's `manifest.json`. */
export function parseDockerArchiveManifest(bytes: Uint8Array, what: string): DockerArchiveImage[] {
  const fail = (detail: string): never => {
    throw new InvalidInputError(`Cannot parse manifest.json of ${what}: ${detail}`);
  };
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    fail(`not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(v) || v.length === 0) fail("not a non-empty JSON array");
  return (v as unknown[]).map((item, i) => {
    const o = item as Record<string, unknown>;
    if (typeof o !== "object" || o === null) fail(`entry ${i} is not an object`);
    if (typeof o.Config !== "string") fail(`entry ${i} has no Config path`);
    if (!Array.isArray(o.Layers) || !o.Layers.every((l) => typeof l === "string")) fail(`entry ${i} has no Layers list`);
    const tags = o.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) fail(`entry ${i} has a RepoTags that is not a list of strings`);
    return { Config: o.Config as string, Layers: o.Layers as string[], RepoTags: tags as string[] };
  });
}

/**
 * A repo tag in a comparable form: without `docker.io/` (and `library/`), with `:latest`
 * when it has no tag. `docker save` writes `busybox:latest`, skopeo `docker.io/library/busybox:latest`.
 */
export function normalizeRepoTag(tag: string): string {
  let t = tag.replace(/^(?:index\.)?docker\.io\//, "").replace(/^library\//, "");
  if (!/:[^/]*$/.test(t) && !t.includes("@")) t += ":latest";
  return t;
}

/** The image of `images` that `tag` names, or the first. */
export function pickDockerImage(images: readonly DockerArchiveImage[], tag: string | undefined, what: string): DockerArchiveImage {
  if (tag === undefined) return images[0]!;
  const want = normalizeRepoTag(tag);
  const found = images.find((img) => img.RepoTags.some((t) => t === tag || normalizeRepoTag(t) === want));
  if (found) return found;
  const all = images.flatMap((img) => img.RepoTags);
  throw new NotFoundError(`tag ${JSON.stringify(tag)} in ${what}`, all.length ? `available tags: ${all.map((t) => JSON.stringify(t)).join(", ")}` : "no image in it has a tag");
}

/** The layer media type of a spooled layer file, from its first bytes. */
export function dockerLayerMediaType(file: SpooledFile): string {
  const h = file.head;
  if (h[0] === 0x1f && h[1] === 0x8b) return MediaType.DockerLayerGzip;
  if (h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd) return MediaType.OciLayerZstd;
  return DOCKER_LAYER_TAR;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Options of {@link dockerArchiveSource}. */
export interface DockerArchiveSourceOptions {
  /** A RepoTag (`name:tag`) of the image to read. @default the first image */
  tag?: string;
  /** The source's name, e.g. `docker-archive:/tmp/x.tar`. */
  name: string;
}

/**
 * An image source over an unpacked Docker archive. The manifest it serves is synthesized,
 * deterministically: Docker schema 2, the config file as an
 * `application/vnd.docker.container.image.v1+json` descriptor, and each layer file as stored
 * (digest of its bytes; media type `…rootfs.diff.tar` or `…diff.tar.gzip` by its magic).
 *
 * @param spool the unpacked archive (it must contain `manifest.json`)
 * @throws {InvalidInputError} for a malformed manifest.json; NotFoundError for a missing tag or member
 */
export async function dockerArchiveSource(spool: Spool, options: DockerArchiveSourceOptions): Promise<ImageSource> {
  const { name } = options;
  const manifestJson = spool.file("manifest.json");
  const images = parseDockerArchiveManifest(
    await readFileVerified(manifestJson.path, { mediaType: "application/json", digest: manifestJson.digest, size: manifestJson.size }, `manifest.json of ${name}`),
    name,
  );
  const image = pickDockerImage(images, options.tag, name);
  const configFile = spool.file(image.Config);
  const configDesc: Descriptor = { mediaType: MediaType.DockerConfig, digest: configFile.digest, size: configFile.size };
  const configBytes = await readFileVerified(configFile.path, configDesc, `config "${image.Config}" of ${name}`);
  const layerFiles = new Map<string, SpooledFile>();
  const layers = image.Layers.map((member) => {
    const f = spool.file(member);
    layerFiles.set(f.digest, f);
    return { mediaType: dockerLayerMediaType(f), size: f.size, digest: f.digest };
  });
  const manifestBytes = jsonBytes({
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: configDesc.mediaType, size: configDesc.size, digest: configDesc.digest },
    layers,
  });
  const manifestDesc = describeBytes(MediaType.DockerManifest, manifestBytes);
  const documents = new Map([
    [manifestDesc.digest, manifestBytes],
    [configDesc.digest, configBytes],
  ]);

  function layerFile(desc: Descriptor): SpooledFile {
    const f = layerFiles.get(desc.digest);
    if (!f) throw new NotFoundError(`blob ${desc.digest} in ${name}`, "the image has no such manifest, config or layer");
    return f;
  }

  return {
    name,
    async resolve(fetchOptions?: FetchOptions): Promise<Descriptor> {
      fetchOptions?.signal?.throwIfAborted();
      return { ...manifestDesc };
    },
    async fetchBytes(desc: Descriptor, fetchOptions?: FetchOptions): Promise<Uint8Array> {
      const what = `blob ${desc.digest} of ${name}`;
      const doc = documents.get(desc.digest);
      if (doc) return verifyBytes(doc, desc, what);
      return readFileVerified(layerFile(desc).path, desc, what, fetchOptions);
    },
    async fetchBlob(desc: Descriptor, fetchOptions?: FetchOptions): Promise<AsyncIterable<Uint8Array>> {
      const what = `blob ${desc.digest} of ${name}`;
      const doc = documents.get(desc.digest);
      if (doc) return verifyStream(once(fetchOptions?.transferable ? new Uint8Array(doc) : doc), desc, what);
      return streamFileVerified(layerFile(desc).path, desc, what, fetchOptions); // fresh buffers: transferable
    },
    close: () => spool.remove(),
  };
}
