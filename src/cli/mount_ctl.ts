/**
 * `nydus-ts umount MOUNTPOINT` and `nydus-ts stats MOUNTPOINT`: talk to a running
 * `nydus-ts mount` through its state file (run_state.ts) and util-linux `umount`.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { emit } from "./output.ts";
import { alive, exitFile, isMounted, metricsLines, readState, stateFile } from "./run_state.ts";

export interface UmountFlags {
  lazy?: boolean;
  /** Seconds to wait for the daemon to exit. */
  timeout?: string;
  json?: boolean;
}

export async function runUmount(mountpoint: string, flags: UmountFlags): Promise<void> {
  const mp = path.resolve(mountpoint);
  const sf = stateFile(mp);
  const state = readState(sf);
  fs.rmSync(exitFile(sf), { force: true });
  if (!state && !isMounted(mp)) throw new NotFoundError(`a mount at "${mp}"`, "neither /proc/mounts nor the nydus-ts run dir knows it");
  let how = "umount";
  if (isMounted(mp)) {
    const r = spawnSync("umount", [...(flags.lazy ? ["-l"] : []), mp], { encoding: "utf8" });
    if (r.status !== 0) {
      const dead = state !== undefined && !alive(state.pid);
      // A killed daemon leaves a mount answering ENOTCONN: detach it lazily.
      const r2 = dead && !flags.lazy ? spawnSync("umount", ["-l", mp], { encoding: "utf8" }) : r;
      if (r2.status !== 0) throw new InvalidInputError(`Cannot unmount "${mp}": ${(r.stderr || r.error?.message || "umount failed").trim()}`);
      how = "umount -l";
    } else if (flags.lazy) how = "umount -l";
  }
  let daemon: "exited" | "released by its server" | "none" | "dead (state file removed)" | "still running" = "none";
  if (state) {
    const deadline = Date.now() + Number(flags.timeout ?? 30) * 1000;
    while (fs.existsSync(sf) && alive(state.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // A `nydus-ts serve` process lives on after one of its mounts ends.
    if (!fs.existsSync(sf)) daemon = state.server ? "released by its server" : "exited";
    else if (!alive(state.pid)) {
      fs.rmSync(sf, { force: true });
      daemon = "dead (state file removed)";
    } else daemon = "still running";
  }
  const final = readState(exitFile(sf)) ?? state;
  fs.rmSync(exitFile(sf), { force: true });
  const last = final ? { fetched: final.fetched, metrics: final.metrics } : undefined;
  emit(flags, { mountpoint: mp, how, pid: state?.pid, daemon, last }, () =>
    [`unmounted ${mp} (${how}); daemon ${state ? `pid ${state.pid}: ${daemon}` : "none"}`, ...(last ? ["last metrics:", ...metricsLines(last.fetched, last.metrics)] : [])].join("\n"));
  if (daemon === "still running") process.exitCode = 1;
}

export async function runStats(mountpoint: string, flags: { json?: boolean }): Promise<void> {
  const mp = path.resolve(mountpoint);
  const sf = stateFile(mp);
  const state = readState(sf);
  if (!state) throw new NotFoundError(`a nydus-ts mount at "${mp}"`, `no state file ${sf}`);
  if (!alive(state.pid)) throw new InvalidInputError(`Cannot show stats of "${mp}": its daemon (pid ${state.pid}) is gone; run nydus-ts umount ${mp}`);
  emit(flags, state, () => [
    `${mp}: ${state.source} (pid ${state.pid}, since ${state.startedAt}, updated ${state.updatedAt})`,
    `cache: ${state.cacheDir}${state.prefetch && state.prefetch.state !== "off" ? `; prefetch ${state.prefetch.state}` : ""}`,
    ...metricsLines(state.fetched, state.metrics),
  ].join("\n"));
}
