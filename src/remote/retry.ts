/**
 * Bounded retries with exponential back-off and jitter, honouring `Retry-After`.
 */
import { RegistryError } from "../internal/errors.ts";
import { RegistryResponseError } from "./errors.ts";

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** First delay in ms, doubled per retry, ±50 % jitter, capped at 10 s. */
  delayMs: number;
  signal?: AbortSignal;
}

/** Whether an error is worth another attempt. */
export function isTemporary(err: unknown): boolean {
  return err instanceof RegistryError && err.temporary;
}

/** Delay before retry number `retry` (0-based) after `err`. */
export function backoffMs(policy: RetryPolicy, retry: number, err?: unknown): number {
  if (err instanceof RegistryResponseError && err.retryAfterMs !== undefined) return Math.min(err.retryAfterMs, 60_000);
  const base = Math.min(policy.delayMs * 2 ** retry, 10_000);
  return Math.round(base * (0.5 + Math.random()));
}

/** Waits `ms`, rejecting early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Runs `attempt` until it succeeds, fails permanently, or the retries are used up. */
export async function withRetries<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isTemporary(err) || n >= policy.retries || policy.signal?.aborted) throw err;
      await sleep(backoffMs(policy, n, err), policy.signal);
    }
  }
}
