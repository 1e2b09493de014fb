/** Runs the nydus-ts CLI (bin/nydus-ts.js) as a child process, as a user would. */
import { spawn } from "node:child_process";
import path from "node:path";
import { PROJECT_ROOT } from "./paths.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed stdout when it is JSON (commands run with --json). */
  json?: any;
}

/** `nydus-ts ARGS…`; never throws on a non-zero exit (check `code`). */
export function runCli(args: readonly string[], options: { input?: Uint8Array } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "bin", "nydus-ts.js"), ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = Buffer.concat(out).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        // Not every command prints JSON; `json` stays undefined then.
      }
      resolve({ code: code ?? -1, stdout, stderr: Buffer.concat(err).toString("utf8"), json });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Like runCli but fails with the command's stderr when it exits non-zero. */
export async function cliOk(args: readonly string[], options: { input?: Uint8Array } = {}): Promise<CliResult> {
  const r = await runCli(args, options);
  if (r.code !== 0) throw new Error(`nydus-ts ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}
