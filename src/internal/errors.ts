/**
 * Error classes shared by every layer.
 *
 * Argument problems throw `TypeError`/`RangeError`; domain conditions that callers
 * handle are subclasses of {@link NydusError} with a stable `code`. Messages read
 * "Cannot <action>: <state>" with quoted values and no final period.
 */

/** Base class of every domain error thrown by nydus-ts. */
export class NydusError extends Error {
  /** Stable machine-readable code, e.g. `ERR_NYDUS_FORMAT`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * An on-disk structure is malformed: names the struct, the field and the absolute
 * byte offset where decoding went wrong.
 *
 * @example
 * throw new FormatError("RafsV6SuperBlock", "s_magic", 1024, "expected 0xe0f5e1e2, found 0x0");
 */
export class FormatError extends NydusError {
  readonly struct: string;
  readonly field: string;
  readonly offset: number;
  constructor(struct: string, field: string, offset: number, detail: string, options?: { cause?: unknown }) {
    super("ERR_NYDUS_FORMAT", `Cannot decode ${struct}.${field} at offset ${offset}: ${detail}`, options);
    this.struct = struct;
    this.field = field;
    this.offset = offset;
  }
}

/** Data did not hash to the digest that describes it. */
export class DigestMismatchError extends NydusError {
  readonly expected: string;
  readonly actual: string;
  readonly subject: string;
  constructor(subject: string, expected: string, actual: string) {
    super("ERR_NYDUS_DIGEST_MISMATCH", `Cannot verify ${subject}: expected digest "${expected}", got "${actual}"`);
    this.subject = subject;
    this.expected = expected;
    this.actual = actual;
  }
}

/** A path, blob, or object that was asked for does not exist. */
export class NotFoundError extends NydusError {
  readonly subject: string;
  constructor(subject: string, detail = "not found", options?: { cause?: unknown }) {
    super("ERR_NYDUS_NOT_FOUND", `Cannot find ${subject}: ${detail}`, options);
    this.subject = subject;
  }
}

/** An input (tar entry, bootstrap path) would escape its target directory or is otherwise unsafe. */
export class UnsafePathError extends NydusError {
  readonly path: string;
  constructor(path: string, detail: string) {
    super("ERR_NYDUS_UNSAFE_PATH", `Cannot accept path "${path}": ${detail}`);
    this.path = path;
  }
}

/** Input that is well-formed but unsupported or inconsistent (e.g. merging layers with different chunk sizes). */
export class InvalidInputError extends NydusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_NYDUS_INVALID_INPUT", message, options);
  }
}

/**
 * A registry answered with an error status or could not be reached. `temporary` marks
 * conditions worth retrying (429, 5xx, connection resets).
 */
export class RegistryError extends NydusError {
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** Distribution error codes from the response body, e.g. `MANIFEST_UNKNOWN`. */
  readonly errorCodes: readonly string[];
  readonly temporary: boolean;
  constructor(message: string, fields: { status: number; errorCodes?: readonly string[]; temporary?: boolean; cause?: unknown }) {
    super("ERR_NYDUS_REGISTRY", message, { cause: fields.cause });
    this.status = fields.status;
    this.errorCodes = fields.errorCodes ?? [];
    this.temporary = fields.temporary ?? false;
  }
}
