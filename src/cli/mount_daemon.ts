/**
 * `nydus-ts mount --daemon`: re-runs the mount command detached (output to a log in the run
 * dir) and returns once the child serves the mount, or fails with the child's last log lines.
 * Deliberately light (node built-ins and the state-file helpers only): the parent loads none
 * of the runtime, so the child starts sooner. The child says it is ready on an inherited pipe
 * (fd 3, `NYDUS_TS_READY_FD`) right after it wrote its state file, so nobody polls.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { InvalidInputError } from "../internal/errors.ts";
import { emit, type OutputOptions } from "./output.ts";
import { alive, mountKey, readState, runDir, stateFile } from "./run_state.ts";

/** Longest wait for the child to serve the mount (it may have a big bootstrap to fetch). */
const READY_TIMEOUT_MS = 300_000;

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

/** In a daemon child: tells the waiting parent that the mount serves (no-op otherwise). */
export function signalReady(): void {
  const fd = Number(process.env.NYDUS_TS_READY_FD);
  if (!Number.isInteger(fd) || fd < 3) return;
  delete process.env.NYDUS_TS_READY_FD;
  try {
    fs.writeSync(fd, "ready\n");
    fs.closeSync(fd);
  } catch {
    // The parent is gone (killed while waiting): nobody to tell.
  }
}

/** Re-runs this command detached; returns once the child serves the mount, throws with its error otherwise. */
export async function runMountDaemon(mountpoint: string, flags: OutputOptions): Promise<void> {
  const { mp, sf } = checkMountpoint(mountpoint);
  const dir = runDir();
  const logFile = path.join(dir, `${mountKey(mp)}.log`);
  const fd = fs.openSync(logFile, "w");
  const args = process.argv.slice(2).filter((a) => a !== "--daemon");
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true,
    stdio: ["ignore", fd, fd, "pipe"],
    env: { ...process.env, NYDUS_TS_RUN_DIR: dir, NYDUS_TS_DAEMON_LOG: logFile, NYDUS_TS_READY_FD: "3" },
  });
  fs.closeSync(fd);
  const ready = child.stdio[3]!;
  const outcome = await new Promise<{ ok: true } | { ok: false; why: string }>((resolve) => {
    let said = "";
    const timer = setTimeout(() => resolve({ ok: false, why: "did not get ready in time" }), READY_TIMEOUT_MS);
    ready.on("data", (d: Buffer) => {
      said += d.toString();
      if (said.includes("ready")) {
        clearTimeout(timer);
        resolve({ ok: true });
      }
    });
    ready.on("error", () => {}); // a pipe error shows as the child's exit below
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: false, why: `exited (${code ?? signal ?? "?"})` });
    });
  });
  ready.destroy();
  if (!outcome.ok) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-5).map((l) => l.replace(/^nydus-ts: /, "")).join("\n");
    throw new InvalidInputError(`Cannot mount ${mp}: the daemon ${outcome.why}: ${tail || "(no output)"}`);
  }
  child.unref();
  emit(flags, { mountpoint: mp, pid: child.pid, stateFile: sf, log: logFile }, () => `mounted ${mp} (daemon pid ${child.pid}, log ${logFile})`);
  process.exit(0);
}
