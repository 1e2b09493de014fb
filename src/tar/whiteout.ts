/**
 * OCI whiteout names (spec §9.1): `.wh.NAME` removes NAME from the lower layers,
 * `.wh..wh..opq` hides every lower child of its directory. Names are raw bytes; like
 * upstream (`builder/src/core/overlay.rs`), a name that is not valid UTF-8 is never a
 * whiteout.
 */

/** Which whiteout convention a layer uses (`nydus-image --whiteout-spec`). */
export type WhiteoutSpec = "oci" | "overlayfs" | "none";

/** The OCI whiteout prefix `.wh.`. */
export const WHITEOUT_PREFIX = ".wh.";
/** The OCI opaque-directory marker `.wh..wh..opq`. */
export const WHITEOUT_OPAQUE = ".wh..wh..opq";
/** The overlayfs opaque-directory xattr; its value is `y` for an opaque directory. */
export const OVERLAYFS_OPAQUE_XATTR = "trusted.overlay.opaque";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function nameText(name: Uint8Array | string): string | undefined {
  if (typeof name === "string") return name;
  try {
    return strictUtf8.decode(name);
  } catch {
    // Not valid UTF-8: upstream's `to_str()` fails too, so the name is an ordinary name.
    return undefined;
  }
}

/**
 * Whether `name` (one path segment) is an OCI whiteout file: it starts with `.wh.`.
 * The opaque marker `.wh..wh..opq` is a whiteout too; see {@link isOpaque}.
 *
 * @example
 * isWhiteout(".wh.foo"); // true
 * isWhiteout("foo"); // false
 */
export function isWhiteout(name: Uint8Array | string): boolean {
  const text = nameText(name);
  return text !== undefined && text.startsWith(WHITEOUT_PREFIX);
}

/**
 * Whether `name` (one path segment) is the OCI opaque marker `.wh..wh..opq`.
 *
 * @example
 * isOpaque(".wh..wh..opq"); // true
 */
export function isOpaque(name: Uint8Array | string): boolean {
  return nameText(name) === WHITEOUT_OPAQUE;
}

/**
 * The name an OCI removal whiteout hides (`.wh.foo` → `foo`), or undefined for the
 * opaque marker and for names that are not whiteouts.
 *
 * @example
 * new TextDecoder().decode(whiteoutTarget(new TextEncoder().encode(".wh.foo"))); // "foo"
 */
export function whiteoutTarget(name: Uint8Array): Uint8Array | undefined {
  if (!isWhiteout(name) || isOpaque(name)) return undefined;
  return name.subarray(WHITEOUT_PREFIX.length);
}
