/**
 * `nydus-ts mount … --daemon`: re-runs the mount command detached (output to a log in the run
 * dir) and returns once the child serves the mount, or fails with the child's last log lines.
 *
 * The parent is as light as it can be, because it is on the path of every cold start: main.ts
 * calls {@link runMountDaemon} with the raw arguments *before* loading the command-line parser,
 * and the parent loads none of the runtime. The child parses and checks everything (usage
 * errors, the mountpoint), so the parent needs no knowledge of mount's options. It logs to a
 * fresh file in the run dir; once the child knows its mountpoint it renames the log to
 * `<mount key>.log` and, when the mount serves, says so on an inherited pipe (fd 3,
 * `NYDUS_TS_READY_FD`) as one JSON line `{"ready":true,"mountpoint","stateFile","log"}`.
 * Nobody polls.
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidInputError } from "../internal/errors.ts";
import { emit, reportError } from "./output.ts";
import { alive, mountKey, readState, runDir, stateFile } from "./run_state.ts";

/** Longest wait for the child to serve the mount (it may have a big bootstrap to fetch). */
const READY_TIMEOUT_MS = 300_000;

/** Name prefix of a daemon's log until the child knows its mountpoint. */
const STARTING_PREFIX = "mount-starting-";

/** What the child tells the parent once the mount serves. */
interface ReadyLine {
  ready: true;
  mountpoint: string;
  stateFile: string;
  log?: string;
}

/**
 * The absolute mountpoint and its state file, after checking it is a directory that no live
 * nydus-ts mount serves.
 * @throws InvalidInputError
 */
export function checkMountpoint(mountpoint: string): { mp: string; sf: string } {
  const mp = path.resolve(mountpoint);
  if (!fs.statSync(mp, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidInputError(`Cannot mount on "${mountpoint}": not a directory`);
  const sf = stateFile(mp);
  const old = readState(sf);
  if (old && old.pid !== process.pid && alive(old.pid)) throw new InvalidInputError(`Cannot mount on "${mp}": nydus-ts pid ${old.pid} serves it already (nydus-ts umount ${mp})`);
  return { mp, sf };
}

/**
 * In a daemon child, once the mountpoint is checked: moves the log the parent opened to the
 * mountpoint's name in the run dir (`<mount key>.log`) and returns its path (no-op otherwise).
 */
export function claimDaemonLog(mp: string): string | undefined {
  const current = process.env.NYDUS_TS_DAEMON_LOG;
  if (!current || !process.env.NYDUS_TS_READY_FD) return current;
  const target = path.join(path.dirname(current), `${mountKey(mp)}.log`);
  try {
    fs.renameSync(current, target);
    process.env.NYDUS_TS_DAEMON_LOG = target;
    tellParent({ log: target });
  } catch {
    // Keep logging where we are; the parent still knows this name.
  }
  return process.env.NYDUS_TS_DAEMON_LOG;
}

/** In a daemon child: tells the waiting parent that the mount serves (no-op otherwise). */
export function signalReady(ready: Omit<ReadyLine, "ready">): void {
  if (tellParent({ ready: true, ...ready })) delete process.env.NYDUS_TS_READY_FD;
}

/** Writes one JSON line on the ready pipe; false when there is none (or the parent is gone). */
function tellParent(message: object): boolean {
  const fd = Number(process.env.NYDUS_TS_READY_FD);
  if (!Number.isInteger(fd) || fd < 3) return false;
  try {
    fs.writeSync(fd, JSON.stringify(message) + "\n");
    if ("ready" in message) fs.closeSync(fd);
    return true;
  } catch {
    return false; // the parent is gone (killed while waiting): nobody to tell
  }
}

/**
 * The script the daemon child runs: the compiled CLI next to this module when running from dist/
 * (skips the launcher's freshness walk over src/), else the command this process was started with.
 */
function cliEntry(): string {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  return import.meta.url.endsWith(".js") && fs.existsSync(main) ? main : process.argv[1]!;
}

/**
 * Runs `nydus-ts ARGS` (a `mount … --daemon` command line, without the program name) detached,
 * and exits once the child serves the mount, or with the child's error and exit status.
 */
export async function runMountDaemon(args: readonly string[]): Promise<void> {
  const flags = { json: args.includes("--json") };
  try {
    // The child prints its errors as text in the log (no --json there): the parent relays them.
    await spawnAndWait(args.filter((a) => a !== "--daemon" && a !== "--json"), flags);
  } catch (e) {
    reportError(e, flags);
  }
}

async function spawnAndWait(args: string[], flags: { json: boolean }): Promise<void> {
  const dir = runDir();
  let logFile = path.join(dir, `${STARTING_PREFIX}${process.pid}-${crypto.randomBytes(4).toString("hex")}.log`);
  const fd = fs.openSync(logFile, "w");
  const child = spawn(process.execPath, [...process.execArgv, cliEntry(), ...args], {
    detached: true,
    stdio: ["ignore", fd, fd, "pipe"],
    env: { ...process.env, NYDUS_TS_RUN_DIR: dir, NYDUS_TS_DAEMON_LOG: logFile, NYDUS_TS_READY_FD: "3" },
  });
  fs.closeSync(fd);
  const pipe = child.stdio[3]!;
  const outcome = await new Promise<{ ok: true; ready: ReadyLine } | { ok: false; why: string; code?: number }>((resolve) => {
    let said = "";
    const timer = setTimeout(() => resolve({ ok: false, why: "did not get ready in time" }), READY_TIMEOUT_MS);
    pipe.on("data", (d: Buffer) => {
      said += d.toString();
      let nl: number;
      while ((nl = said.indexOf("\n")) >= 0) {
        const line = said.slice(0, nl);
        said = said.slice(nl + 1);
        let msg: Partial<ReadyLine>;
        try {
          msg = JSON.parse(line) as Partial<ReadyLine>;
        } catch {
          continue;
        }
        if (msg.log) logFile = msg.log;
        if (msg.ready) {
          clearTimeout(timer);
          resolve({ ok: true, ready: msg as ReadyLine });
        }
      }
    });
    pipe.on("error", () => {}); // a pipe error shows as the child's exit below
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: false, why: `exited (${code ?? signal ?? "?"})`, code: code ?? undefined });
    });
  });
  pipe.destroy();
  if (!outcome.ok) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    let lines: string[] = [];
    try {
      lines = fs.readFileSync(logFile, "utf8").trim().split("\n").filter(Boolean);
    } catch {
      // no log: nothing to quote
    }
    // A log that never got its mountpoint's name holds nothing but this error: shown now, removed.
    if (path.basename(logFile).startsWith(STARTING_PREFIX)) fs.rmSync(logFile, { force: true });
    const errors = lines.filter((l) => l.startsWith("nydus-ts: "));
    const tail = (errors.length > 0 ? errors : lines.slice(-5)).map((l) => l.replace(/^nydus-ts: /, "")).join("\n");
    // A usage error (exit 2 from the child's parser) stays one for the caller.
    if (outcome.code === 2) {
      process.stderr.write(lines.join("\n") + "\n");
      process.exit(2);
    }
    throw new InvalidInputError(`Cannot mount: the daemon ${outcome.why}: ${tail || "(no output)"}`);
  }
  child.unref();
  const { mountpoint, stateFile: sf } = outcome.ready;
  const log = outcome.ready.log ?? logFile;
  emit(flags, { mountpoint, pid: child.pid, stateFile: sf, log }, () => `mounted ${mountpoint} (daemon pid ${child.pid}, log ${log})`);
  process.exit(0);
}
