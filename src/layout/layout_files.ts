/**
 * The two fixed files of an OCI image layout: `oci-layout` (the version marker) and
 * `index.json` (the entry points), read, checked and created here.
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { MediaType } from "../oci/media_type.ts";
import { type Index, jsonBytes, parseIndex } from "../oci/types.ts";
import { writeFileAtomic } from "./write_atomic.ts";

/** The only layout version there is. */
export const LAYOUT_VERSION = "1.0.0";
export const OCI_LAYOUT_FILE = "oci-layout";
export const INDEX_FILE = "index.json";

/** Largest `index.json` / `oci-layout` read into memory. */
const MAX_META_FILE = 16 << 20;

async function readSmall(file: string, what: string): Promise<Uint8Array> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new NotFoundError(`${what} "${file}"`, "no such file");
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size > MAX_META_FILE) throw new InvalidInputError(`Cannot read ${what} "${file}": ${size} bytes is more than ${MAX_META_FILE}`);
    const b = await fh.readFile();
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } finally {
    await fh.close();
  }
}

/**
 * Checks that `dir/oci-layout` says `{"imageLayoutVersion": "1.0.0"}`.
 * @throws {NotFoundError} when the file is missing; {@link InvalidInputError} when it says something else
 */
export async function checkLayoutVersion(dir: string): Promise<void> {
  const file = path.join(dir, OCI_LAYOUT_FILE);
  const bytes = await readSmall(file, "OCI layout marker");
  let version: unknown;
  try {
    version = (JSON.parse(new TextDecoder().decode(bytes)) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch (err) {
    throw new InvalidInputError(`Cannot read OCI layout marker "${file}": not JSON (${(err as Error).message})`);
  }
  if (version !== LAYOUT_VERSION) {
    throw new InvalidInputError(`Cannot read OCI layout "${dir}": imageLayoutVersion is ${JSON.stringify(version)}, expected "${LAYOUT_VERSION}"`);
  }
}

/** The parsed `index.json` and its exact bytes. */
export interface LayoutIndex {
  index: Index;
  bytes: Uint8Array;
}

/** Reads and validates `dir/index.json`. */
export async function readLayoutIndex(dir: string): Promise<LayoutIndex> {
  const file = path.join(dir, INDEX_FILE);
  const bytes = await readSmall(file, "OCI layout index");
  return { index: parseIndex(bytes, `OCI layout index "${file}"`), bytes };
}

/** Writes `index` as `dir/index.json`, atomically. */
export async function writeLayoutIndex(dir: string, index: Index): Promise<void> {
  await writeFileAtomic(path.join(dir, INDEX_FILE), jsonBytes(index));
}

/**
 * Creates an empty layout in `dir` (the directory, `blobs/sha256/`, `oci-layout` and an empty
 * `index.json`) where it is missing; checks the version of an existing one.
 */
export async function initLayout(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, "blobs", "sha256"), { recursive: true });
  try {
    await checkLayoutVersion(dir);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    await writeFileAtomic(path.join(dir, OCI_LAYOUT_FILE), jsonBytes({ imageLayoutVersion: LAYOUT_VERSION }));
  }
  try {
    await readLayoutIndex(dir);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    await writeLayoutIndex(dir, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
  }
}
