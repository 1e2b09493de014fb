/**
 * Image references (`registry/repository[:tag][@digest]`) with Docker's normalisation:
 * `busybox` is `docker.io/library/busybox:latest`.
 *
 * @example
 * const ref = parseReference("localhost:5000/app:v1");
 * // { registry: "localhost:5000", repository: "app", tag: "v1" }
 * formatReference(ref); // "localhost:5000/app:v1"
 */

/** A parsed image reference. At least one of `tag` and `digest` is set. */
export interface Reference {
  /** Registry host (with port), e.g. `docker.io`, `localhost:5000`, `127.0.0.1:5055`. */
  readonly registry: string;
  /** Repository path, lowercase, e.g. `library/busybox`. */
  readonly repository: string;
  readonly tag?: string;
  /** `sha256:<64 hex>`. */
  readonly digest?: string;
}

/** The registry name Docker uses when a reference names none. */
export const DEFAULT_REGISTRY = "docker.io";
/** The tag used when a reference names neither tag nor digest. */
export const DEFAULT_TAG = "latest";

const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$/;

function fail(text: string, detail: string): never {
  throw new SyntaxError(`Cannot parse reference ${JSON.stringify(text)}: ${detail}`);
}

/**
 * Parses an image reference, filling in Docker's defaults.
 * A first path component is a registry iff it contains `.` or `:` or is `localhost`.
 * @param text e.g. `busybox`, `user/x`, `localhost:5000/x`, `host/x@sha256:…`, `x:t@sha256:…`
 * @returns the normalised reference; `tag` is `latest` only when neither tag nor digest is given
 * @throws SyntaxError "Cannot parse reference …" for empty parts, uppercase repositories, bad tags or digests
 */
export function parseReference(text: string): Reference {
  if (typeof text !== "string" || text === "") fail(String(text), "empty");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) fail(text, `digest ${JSON.stringify(digest)} is not sha256:<64 lowercase hex>`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(text, `tag ${JSON.stringify(tag)} is not valid`);
  }
  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!HOST_RE.test(registry)) fail(text, `registry ${JSON.stringify(registry)} is not a host[:port]`);
  }
  if (parts.some((p) => p === "")) fail(text, "empty path component");
  for (const p of parts) {
    if (!COMPONENT_RE.test(p)) {
      fail(text, p.toLowerCase() !== p ? `repository component ${JSON.stringify(p)} must be lowercase` : `repository component ${JSON.stringify(p)} is not valid`);
    }
  }
  let repository = parts.join("/");
  if (repository.length > 255) fail(text, "repository name longer than 255 characters");
  if (isDockerHub(registry) && parts.length === 1) repository = `library/${repository}`;
  if (isDockerHub(registry)) registry = DEFAULT_REGISTRY;
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function isDockerHub(registry: string): boolean {
  return registry === "docker.io" || registry === "index.docker.io" || registry === "registry-1.docker.io";
}

/**
 * The canonical text of a reference: `registry/repository[:tag][@digest]`.
 * @example formatReference(parseReference("busybox")) // "docker.io/library/busybox:latest"
 */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/**
 * The host that serves the registry API for a registry name (`docker.io` → `registry-1.docker.io`).
 * @example registryApiHost("docker.io") // "registry-1.docker.io"
 */
export function registryApiHost(registry: string): string {
  return isDockerHub(registry) ? "registry-1.docker.io" : registry;
}

/**
 * The same repository with only this tag (any digest dropped).
 * @throws SyntaxError when the tag is not valid
 */
export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG_RE.test(tag)) throw new SyntaxError(`Cannot parse tag ${JSON.stringify(tag)}: not a valid tag`);
  return { registry: ref.registry, repository: ref.repository, tag };
}

/**
 * The same repository pinned to a digest (the tag is kept for display).
 * @throws SyntaxError when the digest is not sha256:<64 hex>
 */
export function withDigest(ref: Reference, digest: string): Reference {
  if (!DIGEST_RE.test(digest)) throw new SyntaxError(`Cannot parse digest ${JSON.stringify(digest)}: not sha256:<64 lowercase hex>`);
  return { registry: ref.registry, repository: ref.repository, ...(ref.tag !== undefined ? { tag: ref.tag } : {}), digest };
}

/** What a manifest request for this reference asks for: the digest if any, else the tag. */
export function referenceTarget(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
