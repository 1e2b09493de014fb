/**
 * `nydus-ts serve`: one resident process serving several FUSE mounts that `mount --server`
 * asks for over its Unix socket, against a real docker-registry. Mounts read like the source
 * tree, `stats` and `umount` work through the usual state files, an external umount ends one
 * mount, errors reach the client, and SIGTERM unmounts the rest and ends the server.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "../support/paths.ts";
import { mounted, runtimeSkip, setupWorld, sh, type World } from "./runtime_helpers.ts";

const skip = runtimeSkip();
if (skip) console.log(`# runtime server tests skipped: ${skip}`);

let w: World;
let server: ChildProcess | undefined;
let socket: string;
let serverErr = "";
before(async () => {
  if (skip) return;
  w = await setupWorld("nydus-e2e-rt-server-");
  socket = path.join(w.work, "nydus-ts.sock");
  server = spawn(process.execPath, [path.join(PROJECT_ROOT, "bin", "nydus-ts.js"), "serve", "--socket", socket, "--json"], { env: w.env, stdio: ["ignore", "pipe", "pipe"] });
  server.stderr!.on("data", (d) => (serverErr += d));
  const said = await new Promise<string>((resolve, reject) => {
    let out = "";
    server!.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("}")) resolve(out);
    });
    server!.once("exit", (code) => reject(new Error(`serve exited (${code}): ${serverErr}`)));
  });
  assert.equal(JSON.parse(said).socket, socket);
});
after(async () => {
  if (server && server.exitCode === null) server.kill("SIGKILL");
  await w?.cleanup();
});

const fileOf = (mp: string, rel: string) => fs.promises.readFile(path.join(mp, rel));

describe("nydus-ts serve + mount --server", { skip }, () => {
  test("two mounts from one server read like the source; stats and umount work; errors reach the client", { timeout: 120_000 }, async () => {
    const mp1 = path.join(w.work, "mnt-a");
    const mp2 = path.join(w.work, "mnt-b");
    fs.mkdirSync(mp1);
    fs.mkdirSync(mp2);
    // A relative --cache-dir is the client's: resolved against its working directory.
    const a = await w.cli(["mount", w.ref, mp1, "--plain-http", "--cache-dir", path.relative(process.cwd(), path.join(w.work, "cache-a")), "--server", socket, "--json"]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.json.mountpoint, mp1);
    assert.equal(a.json.pid, server!.pid, "the server serves it, not a new process");
    assert.ok(fs.existsSync(path.join(w.work, "cache-a")), "the relative cache dir was resolved on the client's side");
    const b = await w.cli(["mount", w.ref, mp2, "--plain-http", "--cache-dir", path.join(w.work, "cache-b"), "--server", socket, "--prefetch"]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, new RegExp(`mounted ${mp2} \\(server pid ${server!.pid} on `));
    assert.ok(mounted(mp1) && mounted(mp2));

    for (const rel of ["links/target.txt", "sizes/large", "big/random-8m.bin"]) {
      const want = await fs.promises.readFile(path.join(w.tree, rel));
      assert.deepEqual(await fileOf(mp1, rel), want, `${rel} on the first mount`);
      assert.deepEqual(await fileOf(mp2, rel), want, `${rel} on the second mount`);
    }
    const st = await w.cli(["stats", mp1, "--json"]);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.pid, server!.pid);
    assert.equal(st.json.server, socket);

    // Errors: a missing image, a mountpoint the server serves already, a usage error.
    const mpx = path.join(w.work, "mnt-x");
    fs.mkdirSync(mpx);
    const missing = await w.cli(["mount", `${w.reg.host}/no/such:image`, mpx, "--plain-http", "--server", socket]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot mount through the server: Cannot find manifest ".*no\/such:image"/);
    assert.ok(!mounted(mpx));
    const busy = await w.cli(["mount", w.ref, mp1, "--plain-http", "--server", socket]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /serves it already/);
    const usage = await w.cli(["mount", w.ref, "--server", socket]);
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /missing required argument 'mountpoint'/);
    const nobody = await w.cli(["mount", w.ref, mp1, "--server", path.join(w.work, "none.sock")]);
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /nothing serves there \(start one with nydus-ts serve --socket /);

    // nydus-ts umount ends one mount; the server lives on and serves the other.
    const u = await w.cli(["umount", mp1, "--json"]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(u.json.daemon, "released by its server");
    assert.ok(u.json.last.metrics.totals.verifiedChunks > 0, "its final metrics");
    assert.ok(!mounted(mp1));
    assert.equal(server!.exitCode, null, "the server still runs");
    assert.deepEqual(await fileOf(mp2, "links/target.txt"), Buffer.from("hardlinked content\n"));

    // An external umount ends a mount too (its state file goes).
    assert.equal((await w.cli(["mount", w.ref, mp1, "--plain-http", "--server", socket])).code, 0);
    assert.equal((await sh(`umount '${mp1}'`)).code, 0);
    const stateFiles = () => fs.readdirSync(w.runDir).filter((f) => /^mount-[0-9a-f]+\.json$/.test(f));
    for (let i = 0; i < 50 && stateFiles().length > 1; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(stateFiles().length, 1, "only the second mount's state file is left");
  });

  test("SIGTERM unmounts what the server still serves, removes its socket and ends it", { timeout: 60_000 }, async () => {
    const mp2 = path.join(w.work, "mnt-b");
    assert.ok(mounted(mp2), "the second mount of the previous test still serves");
    const exited = new Promise<number | null>((r) => server!.once("exit", (code) => r(code)));
    server!.kill("SIGTERM");
    assert.equal(await exited, 0, serverErr);
    assert.ok(!mounted(mp2));
    assert.ok(!fs.existsSync(socket), "socket removed");
    assert.equal(fs.readdirSync(w.runDir).filter((f) => /^mount-[0-9a-f]+\.json$/.test(f)).length, 0, "no state file left");
  });
});
