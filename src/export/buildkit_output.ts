/**
 * BuildKit's exporter syntax, `--output type=nydus,name=REF[,registry.insecure=true]
 * [,oci-mediatypes=true][,merge-manifest=true]` or `type=nydus,dest=DIR` (nydus-image.md
 * §6.1), plus the current image exporter's spelling `type=image,name=…,compression=nydus,push=true`.
 */
import { InvalidInputError } from "../internal/errors.ts";

export interface BuildkitOutput {
  /** Image names to push to (several when `name` lists them). */
  names: string[];
  /** An OCI layout directory to write instead (`dest=DIR`). */
  dest?: string;
  /** `registry.insecure`: plain HTTP, or HTTPS without certificate verification. */
  insecure: boolean;
  /** `oci-mediatypes`: true → OCI, false → Docker, absent → as the source. */
  ociMediaTypes?: boolean;
  /** `merge-manifest`: merge into what the target name already holds. */
  mergeManifest: boolean;
}

const KNOWN = ["type", "name", "dest", "registry.insecure", "oci-mediatypes", "merge-manifest", "push", "compression", "force-compression", "compression-level"];

/** Splits BuildKit CSV: comma-separated `key=value`, double quotes group commas (`"name=a,b"`). */
function splitCsv(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "," && !quoted) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw new InvalidInputError(`Cannot parse --output "${text}": unterminated quote`);
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s !== "");
}

/** BuildKit's boolean rule for these keys: empty or "true" is true. */
function bool(key: string, value: string): boolean {
  if (value === "" || value === "true") return true;
  if (value === "false") return false;
  throw new InvalidInputError(`Cannot parse --output key "${key}": expected true or false, got "${value}"`);
}

export function parseBuildkitOutput(text: string): BuildkitOutput {
  const fields = new Map<string, string>();
  for (const part of splitCsv(text)) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? "" : part.slice(eq + 1);
    if (!KNOWN.includes(key)) throw new InvalidInputError(`Cannot use --output key "${key}": expected one of ${KNOWN.join(", ")}`);
    fields.set(key, value);
  }
  const type = fields.get("type");
  if (type === "image" || type === "registry") {
    if (fields.get("compression") !== "nydus") throw new InvalidInputError(`Cannot use --output type=${type} without compression=nydus: this tool only writes Nydus images`);
    if (type === "image" && fields.has("push") && !bool("push", fields.get("push")!)) {
      throw new InvalidInputError("Cannot use --output push=false: there is no local image store; give push=true or dest=DIR");
    }
  } else if (type !== "nydus") {
    throw new InvalidInputError(`Cannot use --output type=${type ?? "(none)"}: expected type=nydus`);
  }
  const names = (fields.get("name") ?? "").split(",").map((s) => s.trim()).filter((s) => s);
  const dest = fields.get("dest");
  if (names.length === 0 && !dest) throw new InvalidInputError("Cannot use --output: give name=REF (a registry image) or dest=DIR (an OCI layout)");
  if (names.length > 0 && dest) throw new InvalidInputError("Cannot use --output with both name= and dest=");
  const oci = fields.get("oci-mediatypes");
  return {
    names,
    dest: dest || undefined,
    insecure: fields.has("registry.insecure") ? bool("registry.insecure", fields.get("registry.insecure")!) : false,
    ociMediaTypes: oci === undefined ? undefined : bool("oci-mediatypes", oci),
    mergeManifest: fields.has("merge-manifest") ? bool("merge-manifest", fields.get("merge-manifest")!) : false,
  };
}
