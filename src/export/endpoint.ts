/**
 * Where an image comes from or goes to, from a command-line word:
 *
 * | text | meaning |
 * | --- | --- |
 * | `REF`, `docker://REF` | a registry image (`localhost:5000/x:y`, `busybox`, `host/x@sha256:…`) |
 * | `oci:DIR[:TAG]` | an OCI image layout directory |
 * | `oci-archive:FILE[:TAG]` | a tar of an OCI layout (`buildctl --output type=oci`, `buildah push oci-archive:`) |
 * | `docker-archive:FILE[:NAME:TAG]` | `docker save` output |
 * | `-`, or a path to a file | an OCI or Docker archive, detected from its content (stdin for `-`) |
 */
import fs from "node:fs";
import path from "node:path";
import { archiveSource } from "../archive/archive_source.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { layoutSink, layoutSource } from "../layout/index.ts";
import type { ImageSink, ImageSource } from "../oci/store.ts";
import { parseReference, type Reference } from "../reference/reference.ts";
import type { RegistryOptions } from "../remote/options.ts";
import { registrySink, registrySource } from "../remote/index.ts";

export type SourceSpec =
  | { kind: "registry"; ref: Reference; text: string }
  | { kind: "oci"; dir: string; tag?: string }
  | { kind: "archive"; format: "oci-archive" | "docker-archive" | "auto"; file: string | "-"; tag?: string };

export type TargetSpec = { kind: "registry"; ref: Reference; text: string } | { kind: "oci"; dir: string; tag?: string };

/** Splits `PATH[:TAG]`: a tag is what follows the last ":" after the last "/". */
function splitPathTag(text: string): { path: string; tag?: string } {
  const slash = text.lastIndexOf("/");
  const colon = text.indexOf(":", slash + 1);
  if (colon < 0) return { path: text };
  const tag = text.slice(colon + 1);
  return { path: text.slice(0, colon), tag: tag === "" ? undefined : tag };
}

function parseRef(text: string, what: string): Reference {
  try {
    return parseReference(text);
  } catch (err) {
    throw new InvalidInputError(`Cannot use ${what} "${text}": ${(err as Error).message}`, { cause: err });
  }
}

/** Parses a source word (see the module table). Plain words naming an existing file or layout directory are local. */
export function parseSource(text: string): SourceSpec {
  if (text === "-") return { kind: "archive", format: "auto", file: "-" };
  if (text.startsWith("docker://")) return { kind: "registry", ref: parseRef(text.slice(9), "source"), text: text.slice(9) };
  if (text.startsWith("oci:")) {
    const { path: dir, tag } = splitPathTag(text.slice(4));
    return { kind: "oci", dir, tag };
  }
  if (text.startsWith("oci-archive:")) {
    const { path: file, tag } = splitPathTag(text.slice(12));
    return { kind: "archive", format: "oci-archive", file, tag };
  }
  if (text.startsWith("docker-archive:")) {
    const rest = text.slice(15);
    // docker-archive:FILE[:NAME:TAG] — the file is up to the first ":" after the last "/" of the path part.
    const slash = rest.lastIndexOf("/", rest.indexOf(":") < 0 ? rest.length : rest.indexOf(":"));
    const colon = rest.indexOf(":", slash + 1);
    return colon < 0 ? { kind: "archive", format: "docker-archive", file: rest } : { kind: "archive", format: "docker-archive", file: rest.slice(0, colon), tag: rest.slice(colon + 1) || undefined };
  }
  const st = fs.statSync(text, { throwIfNoEntry: false });
  if (st?.isFile()) return { kind: "archive", format: "auto", file: text };
  if (st?.isDirectory() && fs.existsSync(path.join(text, "oci-layout"))) return { kind: "oci", dir: text };
  return { kind: "registry", ref: parseRef(text, "source"), text };
}

/** Parses a target word: a registry reference or `oci:DIR[:TAG]`. */
export function parseTarget(text: string): TargetSpec {
  if (text.startsWith("oci:")) {
    const { path: dir, tag } = splitPathTag(text.slice(4));
    return { kind: "oci", dir, tag };
  }
  if (text.startsWith("oci-archive:") || text.startsWith("docker-archive:")) {
    throw new InvalidInputError(`Cannot write to "${text}": archives are sources only; write an OCI layout (oci:DIR[:TAG]) or push to a registry`);
  }
  const ref = text.startsWith("docker://") ? text.slice(9) : text;
  return { kind: "registry", ref: parseRef(ref, "target"), text: ref };
}

export interface OpenOptions {
  /** Registry options (TLS, credentials, retries) for registry endpoints. */
  registry?: RegistryOptions;
  /** The bytes of `-` (stdin). */
  stdin?: AsyncIterable<Uint8Array>;
  /** Parent of temporary spool directories. */
  spoolDir?: string;
  signal?: AbortSignal;
}

/** Opens a source; the caller closes it (archives remove their spool). */
export async function openSource(spec: SourceSpec, options: OpenOptions = {}): Promise<ImageSource> {
  switch (spec.kind) {
    case "registry":
      return registrySource(spec.ref, options.registry ?? {});
    case "oci":
      if (!fs.existsSync(spec.dir)) throw new InvalidInputError(`Cannot open OCI layout "${spec.dir}": no such directory`);
      return layoutSource(spec.dir, { tag: spec.tag });
    case "archive": {
      let input: string | AsyncIterable<Uint8Array>;
      if (spec.file === "-") {
        if (!options.stdin) throw new InvalidInputError("Cannot read an image from stdin: no input stream");
        input = options.stdin;
      } else {
        if (!fs.statSync(spec.file, { throwIfNoEntry: false })?.isFile()) throw new InvalidInputError(`Cannot open archive "${spec.file}": no such file`);
        input = spec.file;
      }
      return archiveSource(input, { format: spec.format, tag: spec.tag, spoolDir: options.spoolDir, signal: options.signal });
    }
  }
}

/** Opens a sink. */
export function openSink(spec: TargetSpec, options: OpenOptions = {}): ImageSink {
  return spec.kind === "registry" ? registrySink(spec.ref, options.registry ?? {}) : layoutSink(spec.dir, { tag: spec.tag ?? "latest" });
}

/** The tag to give the pushed root: the reference's tag, or the layout tag. */
export function targetTag(spec: TargetSpec): string | undefined {
  return spec.kind === "registry" ? spec.ref.tag : (spec.tag ?? "latest");
}

/** Human name of a target. */
export function targetName(spec: TargetSpec): string {
  return spec.kind === "registry" ? spec.text : `oci:${spec.dir}:${spec.tag ?? "latest"}`;
}
