/**
 * The lazy commands as a user runs them, against a real docker-registry: `ls`, `stat`, `cat`,
 * `cp` (a whole tree, and refusing a symlinked destination), and a foreground `mount` (run like
 * `mount … &`) ended by SIGINT, SIGTERM and an external `umount`, printing its metrics each time.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "../support/paths.ts";
import { fileHashes, mounted, run, runtimeSkip, setupWorld, sh, type World } from "./runtime_helpers.ts";

const skip = runtimeSkip();
if (skip) console.log(`# runtime CLI tests skipped: ${skip}`);

let w: World;
before(async () => {
  if (!skip) w = await setupWorld("nydus-e2e-rt-cli-");
});
after(async () => {
  await w?.cleanup();
});

const N = path.join(PROJECT_ROOT, "bin", "nydus-ts.js");

describe("nydus-ts ls / stat / cat / cp", { skip }, () => {
  test("ls lists like ls -l, with --json entries", async () => {
    const r = await w.cli(["ls", w.ref, "/", "--plain-http", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.entries.map((e: { name: string }) => e.name).sort(), fs.readdirSync(w.tree).sort());
    assert.ok(r.json.fetched.requests >= 2 && r.json.metrics.requests === 0, "listing fetches no chunk");
    const links = await w.cli(["ls", w.ref, "/links", "--plain-http"]);
    assert.equal(links.code, 0, links.stderr);
    assert.match(links.stdout, /^lrwxrwxrwx +1 +0 +0 +10 .* rel -> target\.txt$/m);
    assert.match(links.stdout, /^-rw-r----- +3 +33 +33 +19 .* hard1$/m);
    const dev = await w.cli(["ls", w.ref, "/dev/null", "--plain-http"]);
    assert.match(dev.stdout, /^crw-rw-rw- +1 +0 +0 +1, 3 .* null$/m, "a file path lists itself; devices show major, minor");
  });

  test("stat reports every attribute", async () => {
    const r = await w.cli(["stat", w.ref, "/dev/bigminor", "--plain-http", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const st = fs.lstatSync(path.join(w.tree, "dev/bigminor"));
    assert.equal(r.json.kind, "chr");
    assert.equal(r.json.rdevMajor, 511);
    assert.equal(r.json.rdevMinor, 70000);
    assert.equal(r.json.mode, st.mode);
    assert.equal(r.json.mtime, Math.floor(st.mtimeMs / 1000));
    const t = (await w.cli(["stat", w.ref, "/links/target.txt", "--plain-http", "--json"])).json;
    assert.deepEqual([t.nlink, t.uid, t.gid, t.size, t.modeString], [3, 33, 33, 19, "-rw-r-----"]);
    assert.ok(t.ino > 0);
    const d = (await w.cli(["stat", w.ref, "/dir", "--plain-http", "--json"])).json;
    assert.deepEqual(d.xattrs, ["user.dirattr"]);
    const s = await w.cli(["stat", w.ref, "/modes/setuid", "--plain-http"]);
    assert.match(s.stdout, /Access: \(4755\/-rwsr-xr-x\)/);
    const missing = await w.cli(["stat", w.ref, "/no/such", "--plain-http"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no "no" in "\/"/);
  });

  test("cat streams a multi-chunk file to stdout", async () => {
    const want = (await fileHashes(w.tree)).get("./big/random-8m.bin");
    const r = await run("bash", ["-c", `set -o pipefail; node '${N}' cat '${w.ref}' /big/random-8m.bin --plain-http | sha256sum`], { env: w.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.slice(0, 64), want);
    const head = await run("bash", ["-c", `node '${N}' cat '${w.ref}' /big/random-8m.bin --plain-http | head -c 10 | wc -c`], { env: w.env });
    assert.equal(head.stdout.trim(), "10");
    assert.equal(head.stderr, "", "a closed pipe ends cat quietly");
    const link = await run("bash", ["-c", `node '${N}' cat '${w.ref}' /links/rel --plain-http`], { env: w.env });
    assert.equal(link.stdout, "hardlinked content\n", "symlinks are followed inside the image");
  });

  test("cp copies a tree (files, dirs, symlinks, modes, owners, times) and refuses a symlinked destination", async () => {
    const dest = path.join(w.work, "cp-out");
    const r = await w.cli(["cp", w.ref, "/", dest, "--plain-http", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await fileHashes(dest), await fileHashes(w.tree));
    assert.ok(r.json.skipped.some((s: string) => s.startsWith("/dev/null")), "devices are skipped and listed");
    assert.equal(fs.readlinkSync(path.join(dest, "links/long-target")), fs.readlinkSync(path.join(w.tree, "links/long-target")));
    for (const p of ["modes/setuid", "modes/sticky", "dir/sub", "links/target.txt"]) {
      const [a, b] = [fs.lstatSync(path.join(w.tree, p)), fs.lstatSync(path.join(dest, p))];
      assert.deepEqual([b.mode, b.uid, b.gid, b.mtimeMs], [a.mode, a.uid, a.gid, a.mtimeMs], p);
    }
    assert.equal(fs.readdirSync(path.join(dest, "sizes")).filter((n) => n.includes(".tmp")).length, 0, "no temp files left");
    // One file into an existing directory.
    const one = path.join(w.work, "cp-one");
    fs.mkdirSync(one);
    assert.equal((await w.cli(["cp", w.ref, "/sizes/one-byte", one, "--plain-http"])).code, 0);
    assert.equal(fs.readFileSync(path.join(one, "one-byte"), "utf8"), "x");
    // A destination that is a symlink is not followed.
    const outside = path.join(w.work, "outside");
    fs.mkdirSync(outside);
    fs.symlinkSync(outside, path.join(w.work, "cp-link"));
    const bad = await w.cli(["cp", w.ref, "/dir", path.join(w.work, "cp-link"), "--plain-http"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /symlink/);
    assert.deepEqual(fs.readdirSync(outside), []);
  });
});

describe("foreground nydus-ts mount", { skip }, () => {
  async function foreground(mp: string) {
    fs.mkdirSync(mp, { recursive: true });
    const child = spawn(process.execPath, [N, "mount", w.ref, mp, "--plain-http", "--cache-dir", path.join(w.work, "cache-fg"), "--json"], { env: w.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const deadline = Date.now() + 60_000;
    while (!mounted(mp) || !(await w.cli(["stats", mp, "--json"])).json?.ready) {
      assert.ok(Date.now() < deadline, `mount did not get ready: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, exited, out: () => stdout, err: () => stderr };
  }

  test("SIGINT unmounts cleanly and prints the metrics", { timeout: 90_000 }, async () => {
    const mp = path.join(w.work, "mnt-sigint");
    const m = await foreground(mp);
    const r = await sh(`cat '${mp}/links/target.txt'`);
    assert.equal(r.stdout, "hardlinked content\n");
    m.child.kill("SIGINT");
    assert.equal(await m.exited, 0, m.err());
    assert.ok(!mounted(mp));
    const out = JSON.parse(m.out());
    assert.equal(out.unmounted, mp);
    assert.equal(out.metrics.totals.misses, 1);
    assert.equal(fs.readdirSync(w.runDir).filter((f) => /^mount-[0-9a-f]+\.json$/.test(f)).length, 0, "state file removed");
  });

  test("SIGTERM unmounts cleanly too", { timeout: 90_000 }, async () => {
    const mp = path.join(w.work, "mnt-sigterm");
    const m = await foreground(mp);
    m.child.kill("SIGTERM");
    assert.equal(await m.exited, 0, m.err());
    assert.ok(!mounted(mp));
    assert.equal(JSON.parse(m.out()).unmounted, mp);
  });

  test("an external umount ends the server, which prints the metrics", { timeout: 90_000 }, async () => {
    const mp = path.join(w.work, "mnt-ext");
    const m = await foreground(mp);
    assert.equal((await sh(`umount '${mp}'`)).code, 0);
    assert.equal(await m.exited, 0, m.err());
    assert.ok(JSON.parse(m.out()).metrics.totals);
  });
});

describe("nydus-ts mount --daemon: errors reach the caller", { skip }, () => {
  const logsStarting = () => fs.readdirSync(w.runDir).filter((f) => f.startsWith("mount-starting-"));

  test("a mountpoint that is not a directory, a missing image, a busy mountpoint: exit 1 with the daemon's own message", { timeout: 90_000 }, async () => {
    const file = path.join(w.work, "not-a-dir");
    fs.writeFileSync(file, "x");
    const notDir = await w.cli(["mount", w.ref, file, "--plain-http", "--daemon"]);
    assert.equal(notDir.code, 1);
    assert.match(notDir.stderr, /^nydus-ts: Cannot mount: the daemon exited \(1\): Cannot mount on ".*not-a-dir": not a directory\n$/);

    const mp = path.join(w.work, "mnt-daemon-errors");
    fs.mkdirSync(mp, { recursive: true });
    const missing = await w.cli(["mount", `${w.reg.host}/no/such:image`, mp, "--plain-http", "--daemon", "--json"]);
    assert.equal(missing.code, 1);
    assert.match(missing.json.error.message, /the daemon exited \(1\): Cannot find manifest ".*no\/such:image"/);
    assert.ok(!mounted(mp));

    const ok = await w.cli(["mount", w.ref, mp, "--plain-http", "--cache-dir", path.join(w.work, "cache-daemon-errors"), "--daemon", "--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json.mountpoint, mp);
    assert.ok(fs.existsSync(ok.json.stateFile), "the state file the child announced exists");
    assert.match(path.basename(ok.json.log), /^mount-[0-9a-f]{16}\.log$/, "the log carries the mountpoint's name");
    assert.match(fs.readFileSync(ok.json.log, "utf8"), /serving .* at /);
    const busy = await w.cli(["mount", w.ref, mp, "--plain-http", "--daemon"]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, new RegExp(`serves it already \\(nydus-ts umount ${mp.replaceAll("/", "\\/")}\\)`));
    assert.equal((await w.cli(["umount", mp])).code, 0);
    assert.deepEqual(logsStarting(), [], "failed daemons leave no unnamed log behind");
  });

  test("a usage error keeps exit status 2 and commander's message", async () => {
    const r = await w.cli(["mount", w.ref, "--plain-http", "--daemon"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /error: missing required argument 'mountpoint'/);
    assert.deepEqual(logsStarting(), []);
  });
});
