/**
 * CLI output conventions: `--json` prints one JSON document on stdout; otherwise
 * human text. Progress bars go to stderr and only when stderr is a TTY and
 * `--json` is off. Errors: "nydus-ts: <message>" on stderr, exit status 1.
 */
import { createRequire } from "node:module";
import type * as CliProgress from "cli-progress";
import { NydusError } from "../internal/errors.ts";

/**
 * cli-progress, loaded on first use: only a TTY without --json draws bars, and its ~10 ms of
 * loading would otherwise slow every command's start (e.g. both processes of `mount --daemon`).
 */
let cliProgressModule: typeof CliProgress | undefined;
const cliProgress = (): typeof CliProgress => (cliProgressModule ??= createRequire(import.meta.url)("cli-progress") as typeof CliProgress);

export interface OutputOptions {
  json?: boolean;
}

/** Prints the result: JSON when asked, else the human text. */
export function emit(opts: OutputOptions, value: unknown, human: () => string): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify(value, jsonReplacer, 2) + "\n");
  } else {
    const text = human();
    if (text) process.stdout.write(text.endsWith("\n") ? text : text + "\n");
  }
}

/** JSON.stringify replacer for bigint, Uint8Array and Map values. */
export function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (v instanceof Map) return Object.fromEntries(v);
  return v;
}

/** A byte-progress reporter; a no-op unless stderr is a TTY and JSON is off. */
export interface Progress {
  add(bytes: number): void;
  stop(): void;
}

export function progress(opts: OutputOptions, label: string, total: number | undefined): Progress {
  if (opts.json || !process.stderr.isTTY) return { add() {}, stop() {} };
  const bar = new (cliProgress().SingleBar)(
    {
      stream: process.stderr,
      format: total ? `${label} [{bar}] {percentage}% {value_mb}/{total_mb} MiB` : `${label} {value_mb} MiB`,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress().Presets.shades_classic,
  );
  let done = 0;
  const mb = (n: number) => (n / 1048576).toFixed(1);
  bar.start(total ?? 0, 0, { value_mb: mb(0), total_mb: mb(total ?? 0) });
  return {
    add(bytes) {
      done += bytes;
      bar.update(total ? Math.min(done, total) : done, { value_mb: mb(done), total_mb: mb(total ?? done) });
    },
    stop() {
      bar.stop();
    },
  };
}

/** Prints an error the CLI way and sets a failing exit status. */
export function reportError(err: unknown, opts: OutputOptions): void {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof NydusError ? err.code : err instanceof Error && "code" in err ? String((err as { code: unknown }).code) : "ERR_UNKNOWN";
  if (opts.json) process.stdout.write(JSON.stringify({ error: { code, message } }, null, 2) + "\n");
  process.stderr.write(`nydus-ts: ${message}\n`);
  if (process.env.NYDUS_TS_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + "\n");
  process.exitCode = 1;
}

/** Per-unit progress bars (one per layer and phase); no-ops unless stderr is a TTY and JSON is off. */
export interface MultiProgress {
  update(event: { phase: string; id: string; done: number; total: number; finished?: boolean }): void;
  stop(): void;
}

export function multiProgress(opts: OutputOptions): MultiProgress {
  if (opts.json || !process.stderr.isTTY) return { update() {}, stop() {} };
  const multi = new (cliProgress().MultiBar)(
    { stream: process.stderr, format: "{phase} {id} [{bar}] {percentage}% {done_mb}/{total_mb} MiB", hideCursor: true, clearOnComplete: false },
    cliProgress().Presets.shades_classic,
  );
  const bars = new Map<string, CliProgress.SingleBar>();
  const mb = (n: number) => (n / 1048576).toFixed(1);
  return {
    update(e) {
      const key = `${e.phase}:${e.id}`;
      let bar = bars.get(key);
      const payload = { phase: e.phase.padEnd(7), id: e.id, done_mb: mb(e.done), total_mb: mb(e.total) };
      if (!bar) {
        bar = multi.create(Math.max(1, e.total), 0, payload);
        bars.set(key, bar);
      }
      bar.update(Math.min(e.done, Math.max(1, e.total)), payload);
    },
    stop() {
      multi.stop();
    },
  };
}
