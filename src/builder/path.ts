/**
 * Safe normalisation of tar member names (and hardlink targets) into path segments
 * relative to the image root, plus a lexical containment check for symlink targets.
 *
 * Rules (as container tools apply them): leading `/` and `./` are dropped (absolute names
 * are taken relative to the root), empty and `.` segments are collapsed, `..` removes the
 * previous segment and is rejected when it would climb above the root. NUL bytes and the
 * empty name are rejected. Symlink targets are data and are never normalised.
 */
import path from "node:path";
import { UnsafePathError } from "../internal/errors.ts";

const SLASH = 0x2f;
const DOT = 0x2e;
const utf8 = new TextDecoder();
const utf8e = new TextEncoder();

/**
 * Splits a tar name into normalised segments (raw bytes, none empty, `.` or `..`).
 *
 * @param name the name as stored in the archive (bytes, or a string encoded as UTF-8)
 * @returns the segments below the root; an empty array means the root itself (`/`, `./`, `.`)
 * @throws {UnsafePathError} for an empty name, a NUL byte, or a `..` that would escape the root
 * @example
 * splitTarPath("./usr//bin/./sh").map((s) => new TextDecoder().decode(s)); // ["usr", "bin", "sh"]
 * splitTarPath("a/../../x"); // throws UnsafePathError
 */
export function splitTarPath(name: Uint8Array | string): Uint8Array[] {
  const bytes = typeof name === "string" ? utf8e.encode(name) : name;
  const shown = () => (typeof name === "string" ? name : utf8.decode(name));
  if (bytes.length === 0) throw new UnsafePathError("", "empty name");
  if (bytes.includes(0)) throw new UnsafePathError(shown(), "contains a NUL byte");
  const segments: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== SLASH) continue;
    const len = i - start;
    if (len === 0 || (len === 1 && bytes[start] === DOT)) {
      // empty or "." segment
    } else if (len === 2 && bytes[start] === DOT && bytes[start + 1] === DOT) {
      if (segments.length === 0) throw new UnsafePathError(shown(), '".." escapes the root');
      segments.pop();
    } else {
      segments.push(bytes.slice(start, i));
    }
    start = i + 1;
  }
  return segments;
}

/**
 * Normalises a tar name to the relative form `a/b/c` (`""` for the root).
 *
 * @throws {UnsafePathError} as {@link splitTarPath}
 * @example
 * normalizeTarPath("/etc/../etc/passwd"); // "etc/passwd"
 * normalizeTarPath("./"); // ""
 */
export function normalizeTarPath(name: string): string {
  return splitTarPath(name)
    .map((s) => utf8.decode(s))
    .join("/");
}

/**
 * Whether the symlink at `linkPath` (a tar name, relative to `root`) pointing at `target`
 * resolves, lexically, to `root` or something below it on the host. Absolute targets are
 * resolved against the host root (that is where an unpacker would follow them), so
 * `/etc/passwd` is outside any root but `/`. Intermediate symlinks are not followed:
 * unpackers must check every component they traverse.
 *
 * @param root the host directory being unpacked into
 * @param linkPath the symlink's own tar name (normalised with {@link splitTarPath})
 * @param target the symlink target as stored
 * @throws {UnsafePathError} when `linkPath` itself is unsafe
 * @example
 * resolvesInside("/tmp/rootfs", "usr/lib/x", "../../etc/passwd"); // true
 * resolvesInside("/tmp/rootfs", "usr/x", "../../../etc/passwd"); // false
 */
export function resolvesInside(root: string, linkPath: string, target: string | Uint8Array): boolean {
  const base = path.posix.resolve(root);
  const segs = splitTarPath(linkPath).map((s) => utf8.decode(s));
  const dir = path.posix.join(base, ...segs.slice(0, -1));
  const t = typeof target === "string" ? target : utf8.decode(target);
  if (t.includes("\0")) return false;
  const resolved = path.posix.resolve(dir, t);
  return resolved === base || resolved.startsWith(base === "/" ? "/" : base + "/");
}
