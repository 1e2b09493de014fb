/**
 * A private containerd for tests (environment.md §7): its own config, root, state and sockets in
 * a temp dir, no CRI plugin, no systemd. `ctr` runs against its socket.
 *
 * @example
 * const c = await startContainerd();
 * try { await c.ctr(["images", "pull", "--plain-http", ref]); } finally { await c.stop(); }
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { procOk, runProc, type ProcResult } from "./peers.ts";
import { makeTempDir, removeTree } from "./tmp.ts";

export interface TestContainerd {
  dir: string;
  address: string;
  /** `ctr --address SOCK ARGS…`, throwing on failure. */
  ctr(args: readonly string[]): Promise<ProcResult>;
  /** Kills containerd (SIGTERM, then SIGKILL after 5 s), unmounts what is left under its dir, removes it. */
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<TestContainerd> {
  // Short prefix: unix socket paths are limited to 108 bytes.
  const dir = await makeTempDir({ prefix: "nts-ctrd-" });
  const address = path.join(dir, "containerd.sock");
  const config = [
    "version = 2",
    `root = ${JSON.stringify(path.join(dir, "root"))}`,
    `state = ${JSON.stringify(path.join(dir, "state"))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    "[grpc]",
    `  address = ${JSON.stringify(address)}`,
    "[ttrpc]",
    `  address = ${JSON.stringify(address + ".ttrpc")}`,
    "[debug]",
    `  address = ${JSON.stringify(path.join(dir, "debug.sock"))}`,
    '  level = "info"',
    "[metrics]",
    '  address = ""',
  ].join("\n");
  await fsp.writeFile(path.join(dir, "config.toml"), config + "\n");
  const log = await fsp.open(path.join(dir, "containerd.log"), "a");
  const child = spawn("containerd", ["--config", path.join(dir, "config.toml")], { stdio: ["ignore", log.fd, log.fd] });
  await log.close();
  let exited = false;
  child.once("exit", () => (exited = true));
  const ctr = (args: readonly string[]) => procOk("ctr", ["--address", address, ...args]);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    await removeTree(dir);
  };
  const deadline = Date.now() + 15_000;
  while (!exited && Date.now() < deadline) {
    if (fs.existsSync(address) && (await runProc("ctr", ["--address", address, "version"], { timeoutMs: 5000 })).code === 0) {
      return { dir, address, ctr, stop };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const text = await fsp.readFile(path.join(dir, "containerd.log"), "utf8").catch(() => "(no log)");
  await stop();
  throw new Error(`containerd did not start:\n${text.slice(-2000)}`);
}
