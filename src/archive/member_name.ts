/**
 * Archive member names made safe to use below a spool directory.
 */
import path from "node:path";
import { UnsafePathError } from "../internal/errors.ts";

/**
 * Normalizes a tar member name: strips `./` and empty components and a trailing `/`.
 * Returns "" for the archive root itself (`.` or `./`).
 *
 * @throws {UnsafePathError} when the name is absolute, has a `..` component or a NUL byte
 * @example
 * normalizeMemberName("./blobs/sha256/ab"); // "blobs/sha256/ab"
 * normalizeMemberName("../x"); // throws UnsafePathError
 */
export function normalizeMemberName(name: string): string {
  if (name.includes("\0")) throw new UnsafePathError(name, "it contains a NUL byte");
  if (name.startsWith("/")) throw new UnsafePathError(name, "it is absolute");
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw new UnsafePathError(name, 'it has a ".." component');
    parts.push(part);
  }
  return parts.join("/");
}

/**
 * Where a link member points, as a member name: a hardlink target is relative to the archive
 * root, a symlink target to the link's directory.
 *
 * @throws {UnsafePathError} when the target is absolute or leaves the archive
 */
export function linkTargetName(linkName: string, kind: "symlink" | "hardlink", target: string): string {
  if (target.startsWith("/")) throw new UnsafePathError(target, `the target of link "${linkName}" is absolute`);
  const joined = kind === "hardlink" ? target : path.posix.join(path.posix.dirname(linkName), target);
  const normal = path.posix.normalize(joined);
  if (normal === ".." || normal.startsWith("../")) throw new UnsafePathError(target, `the target of link "${linkName}" leaves the archive`);
  return normalizeMemberName(normal);
}
