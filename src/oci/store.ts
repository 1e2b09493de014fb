/**
 * Where images come from and go to. Every source (registry, OCI layout, archives)
 * implements {@link ImageSource}; every sink (registry, OCI layout) implements
 * {@link ImageSink}. Both are content-addressed, like containerd's Fetcher/Pusher:
 * the converter never needs to know which one it has.
 */
import type { Descriptor } from "./types.ts";

export interface FetchOptions {
  signal?: AbortSignal;
  /**
   * Called as bytes arrive (or leave, for pushes) with the total transferred so far for
   * this blob: a running count, not an increment, so a restarted transfer can report
   * where it stands.
   */
  onProgress?: (total: number) => void;
  /**
   * For `fetchBlob`: the caller takes the pieces' memory (e.g. transfers each piece's
   * ArrayBuffer to a worker thread). Every piece then spans a whole ArrayBuffer of its own
   * that the source never touches again; a source whose pieces share or reuse buffers
   * copies them first.
   */
  transferable?: boolean;
}

export interface ImageSource {
  /** Human-readable name for messages and JSON output, e.g. `oci:/tmp/l:v1` or `localhost:5000/x:y`. */
  readonly name: string;
  /**
   * The descriptor the source's name points at (a manifest or an index), with its
   * media type as served. Resolves a tag when needed; cached after the first call.
   */
  resolve(options?: FetchOptions): Promise<Descriptor>;
  /**
   * The bytes of a small document (manifest, index, config), verified against
   * `desc.digest` and `desc.size`.
   * @throws DigestMismatchError, NotFoundError, RegistryError
   */
  fetchBytes(desc: Descriptor, options?: FetchOptions): Promise<Uint8Array>;
  /**
   * A blob as a stream, verified while it streams: the iterator throws
   * DigestMismatchError (instead of ending) when the size or digest is wrong.
   * Each call opens a fresh stream.
   */
  fetchBlob(desc: Descriptor, options?: FetchOptions): Promise<AsyncIterable<Uint8Array>>;
  /** Releases resources (temporary spool directories, sockets). Idempotent. */
  close?(): Promise<void>;
}

export interface PushBlobOptions extends FetchOptions {
  /**
   * A repository on the same registry that already holds the blob: a registry
   * sink tries a cross-repository mount from it before uploading.
   */
  mountFrom?: string;
  /**
   * A local file holding exactly the blob's bytes, whose digest the caller computed while
   * writing it (a blob it just built). A sink on the same file system may hard-link it
   * instead of copying and re-hashing `open()`'s bytes.
   */
  builtFile?: string;
}

export interface ImageSink {
  readonly name: string;
  /** Whether the sink already holds this blob (a registry answers a HEAD). */
  hasBlob(desc: Descriptor, options?: FetchOptions): Promise<boolean>;
  /**
   * Stores a blob. `open` is called for every attempt (retries re-open it); the sink
   * verifies size and digest. Skips the upload when the blob already exists.
   */
  pushBlob(desc: Descriptor, open: () => AsyncIterable<Uint8Array>, options?: PushBlobOptions): Promise<void>;
  /**
   * Stores a manifest or index by digest; with `tag`, also names it (the registry tag,
   * or `org.opencontainers.image.ref.name` in an OCI layout). Everything it points at
   * must have been pushed before.
   */
  pushManifest(desc: Descriptor, bytes: Uint8Array, options?: FetchOptions & { tag?: string }): Promise<void>;
  /**
   * What the sink's name currently points at (for BuildKit's `merge-manifest`), or
   * undefined when nothing is there yet.
   */
  existing?(options?: FetchOptions): Promise<{ desc: Descriptor; bytes: Uint8Array } | undefined>;
  /** Fetches a manifest the sink holds (children of {@link existing}). */
  fetchBytes?(desc: Descriptor, options?: FetchOptions): Promise<Uint8Array>;
  close?(): Promise<void>;
}
