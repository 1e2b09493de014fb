/**
 * Errors across the converter's worker threads: a worker sends an error as plain fields,
 * the main thread rebuilds it as the same typed error class (by name), so callers can tell
 * an unsafe path from a bad digest whichever thread found it.
 */
import { DigestMismatchError, FormatError, InvalidInputError, NotFoundError, NydusError, UnsafePathError } from "../internal/errors.ts";

/** An error as plain, cloneable fields (name, message, code and other primitive fields). */
export function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { name: "Error", message: String(err) };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) if (typeof v !== "function" && typeof v !== "object") fields[k] = v;
  return { ...fields, name: err.name, message: err.message, code: err instanceof NydusError ? err.code : (err as { code?: unknown }).code };
}

/** The error classes a worker's error is rebuilt as, by name. */
const ERRORS: Record<string, { prototype: Error }> = { InvalidInputError, UnsafePathError, NotFoundError, FormatError, DigestMismatchError };

/** Rebuilds what {@link serializeError} sent; `where` names the worker in the stack. */
export function rebuildError(e: Record<string, unknown>, where: string): Error {
  const cls = ERRORS[String(e.name)];
  const err: Error = cls ? Object.create(cls.prototype) : typeof e.code === "string" && e.code.startsWith("ERR_NYDUS") ? Object.create(NydusError.prototype) : new Error();
  Object.assign(err, e);
  Object.defineProperty(err, "message", { value: String(e.message), enumerable: false, writable: true });
  Object.defineProperty(err, "stack", { value: `${String(e.name)}: ${String(e.message)}\n    at (${where})`, enumerable: false, writable: true });
  return err;
}
