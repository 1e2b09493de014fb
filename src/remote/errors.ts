/**
 * Turning HTTP answers and socket failures into {@link RegistryError}s with messages that say
 * what to do ("Cannot <action>: <state>").
 */
import { RegistryError } from "../internal/errors.ts";

/** A RegistryError that may carry the server's `Retry-After` (milliseconds). */
export class RegistryResponseError extends RegistryError {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, fields: { status: number; errorCodes?: readonly string[]; temporary?: boolean; cause?: unknown; retryAfterMs?: number }) {
    super(message, fields);
    this.retryAfterMs = fields.retryAfterMs;
  }
}

/** Statuses worth retrying. 401 is handled by re-authentication, not here. */
export const TEMPORARY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

const CERT_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "ERR_TLS_CERT_ALTNAME_INVALID", "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE", "CERT_REVOKED",
]);
const RETRYABLE_CODES = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EAI_AGAIN", "ERR_STREAM_PREMATURE_CLOSE", "UND_ERR_SOCKET"]);

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** Distribution error codes and messages from a JSON error body (`{"errors":[{code,message}]}`). */
export function parseErrorBody(body: Uint8Array): { codes: string[]; messages: string[] } {
  try {
    const o = JSON.parse(Buffer.from(body).toString("utf8")) as { errors?: { code?: unknown; message?: unknown }[] };
    const errors = Array.isArray(o.errors) ? o.errors : [];
    return {
      codes: errors.map((e) => String(e.code ?? "")).filter(Boolean),
      messages: errors.map((e) => (typeof e.message === "string" ? e.message : "")).filter(Boolean),
    };
  } catch {
    // Not JSON (a proxy's HTML page, Go's plain-text 400): no distribution codes to report.
    return { codes: [], messages: [] };
  }
}

export interface StatusErrorContext {
  /** "push blob sha256:… to 127.0.0.1:5000/x" */
  action: string;
  registry: string;
  status: number;
  body: Uint8Array;
  retryAfter?: string | string[];
  /** Whether credentials were configured (401 wording). */
  hadCredentials: boolean;
  plainHttp: boolean;
}

/** The error for an unexpected HTTP status. */
export function statusError(ctx: StatusErrorContext): RegistryResponseError {
  const { codes, messages } = parseErrorBody(ctx.body);
  const detail = messages.length > 0 ? ` (${codes.map((c, i) => `${c}: ${messages[i] ?? ""}`).join("; ")})` : codes.length > 0 ? ` (${codes.join(", ")})` : "";
  const text = Buffer.from(ctx.body.subarray(0, 200)).toString("utf8");
  let state: string;
  if (ctx.status === 401) {
    state = ctx.hadCredentials ? `credentials rejected for ${ctx.registry}` : `authentication required for ${ctx.registry}`;
  } else if (ctx.status === 403) {
    state = `access denied by ${ctx.registry}`;
  } else if (ctx.status === 404) {
    state = "not found";
  } else if (ctx.status === 400 && /HTTP request to an HTTPS server/i.test(text)) {
    state = `${ctx.registry} speaks HTTPS but the request was plain HTTP (drop --plain-http)`;
  } else {
    state = `${ctx.registry} answered HTTP ${ctx.status}`;
  }
  return new RegistryResponseError(`Cannot ${ctx.action}: ${state}${detail}`, {
    status: ctx.status,
    errorCodes: codes,
    temporary: TEMPORARY_STATUS.has(ctx.status),
    retryAfterMs: parseRetryAfter(ctx.retryAfter),
  });
}

/** The error for a request that got no response (connection refused, reset, TLS failure, timeout). */
export function connectionError(err: unknown, ctx: { action: string; registry: string; https: boolean; connectedBefore: boolean }): RegistryError {
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? "";
  const msg = String(e?.message ?? err);
  if (ctx.https && (code === "EPROTO" || code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number|packet length too long|unknown protocol/i.test(msg))) {
    return new RegistryError(`Cannot ${ctx.action}: TLS handshake with ${ctx.registry} failed, it seems to speak plain HTTP (use --plain-http or registry.insecure=true) (${code || msg})`, { status: 0, cause: err });
  }
  if (CERT_CODES.has(code)) {
    return new RegistryError(`Cannot ${ctx.action}: the TLS certificate of ${ctx.registry} cannot be verified (${code}: ${msg}); pass its CA with --ca or skip verification with --insecure`, { status: 0, cause: err });
  }
  if (code === "ECONNREFUSED") {
    return new RegistryError(`Cannot ${ctx.action}: connection to ${ctx.registry} refused`, { status: 0, temporary: ctx.connectedBefore, cause: err });
  }
  if (code === "ENOTFOUND") {
    return new RegistryError(`Cannot ${ctx.action}: host of ${ctx.registry} not found`, { status: 0, cause: err });
  }
  const temporary = RETRYABLE_CODES.has(code) || /socket hang up|aborted|premature close|truncated/i.test(msg);
  return new RegistryError(`Cannot ${ctx.action}: connection to ${ctx.registry} failed (${code ? `${code}: ` : ""}${msg})`, { status: 0, temporary, cause: err });
}
