/**
 * `nydus-ts mount` against a real docker-registry: an all-types image (64 KiB chunks) converted
 * by our CLI is mounted with FUSE (`--daemon`) and compared with its source tree (diff -r,
 * per-path lstat, xattrs, hardlink groups); `umount` is clean. Then kill -9 of the daemon during
 * reads, `umount` of the dead mount and a remount with the same cache (all data correct), and 16
 * parallel reader processes. Everything touching the mount runs in child processes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileHashes, mounted, runtimeSkip, setupWorld, sh, waitGone, type World } from "./runtime_helpers.ts";

const skip = runtimeSkip();
if (skip) console.log(`# runtime mount tests skipped: ${skip}`);

let w: World;
before(async () => {
  if (!skip) w = await setupWorld("nydus-e2e-rt-mount-");
});
after(async () => {
  await w?.cleanup();
  if (!skip) assert.equal(fs.readFileSync("/proc/mounts", "utf8").split("\n").filter((l) => l.includes(w.work)).length, 0, "no mounts left");
});

async function mountDaemon(mp: string, cacheDir: string, extra: string[] = []): Promise<number> {
  fs.mkdirSync(mp, { recursive: true });
  const r = await w.cli(["mount", w.ref, mp, "--plain-http", "--cache-dir", cacheDir, "--daemon", "--json", ...extra]);
  assert.equal(r.code, 0, `mount --daemon: ${r.stderr}${r.stdout}`);
  assert.ok(mounted(mp), "listed in /proc/mounts");
  return r.json.pid as number;
}

async function umountClean(mp: string, pid: number) {
  const r = await w.cli(["umount", mp, "--json"]);
  assert.equal(r.code, 0, `umount: ${r.stderr}`);
  assert.equal(r.json.daemon, "exited");
  assert.ok(r.json.last.metrics.totals, "the daemon's final metrics are printed");
  assert.ok(await waitGone(pid), "daemon exited");
  assert.ok(!mounted(mp), "gone from /proc/mounts");
  return r.json;
}

/** stat lines per relative path, computed by a child: type, mode, uid, gid, size (not dirs), nlink, rdev, mtime. */
async function lstatLines(root: string): Promise<Map<string, string>> {
  const r = await sh(`cd '${root}' && find . -mindepth 1 -print0 | sort -z | xargs -0 stat -c '%n|%F|%f|%u|%g|%s|%h|%t:%T|%y|%i'`);
  assert.equal(r.code, 0, r.stderr);
  const m = new Map<string, string>();
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [name, type, mode, uid, gid, size, nlink, rdev, mtime] = line.split("|");
    m.set(name!, [type, mode, uid, gid, type === "directory" ? "-" : size, type === "directory" ? "-" : nlink, rdev, mtime].join("|"));
  }
  return m;
}

/** Groups of paths sharing an inode (hard links), as sorted lists. */
async function linkGroups(root: string): Promise<string[]> {
  const r = await sh(`cd '${root}' && find . -type f -links +1 -printf '%i %p\\n'`);
  const by = new Map<string, string[]>();
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [ino, p] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
    by.set(ino, [...(by.get(ino) ?? []), p]);
  }
  return [...by.values()].map((g) => g.sort().join(",")).sort();
}

async function xattrDump(root: string): Promise<string> {
  const r = await sh(`cd '${root}' && find . -mindepth 1 -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex 2>/dev/null; true`);
  return r.stdout;
}

describe("nydus-ts mount", { skip }, () => {
  test("the mounted image equals its source tree; umount is clean", { timeout: 120_000 }, async () => {
    const mp = path.join(w.work, "mnt-a");
    const pid = await mountDaemon(mp, path.join(w.work, "cache-a"));
    try {
      // GNU diff reports special files it does not compare ("File A is a fifo while file B is a fifo");
      // those are covered by the lstat comparison below. Anything else is a difference.
      const diff = await sh(`diff -r --no-dereference '${w.tree}' '${mp}'`);
      const real = diff.stdout.split("\n").filter((l) => l && !/^File .* is a (.+) while file .* is a \1$/.test(l));
      assert.deepEqual(real, [], `diff -r:\n${diff.stdout}${diff.stderr}`);
      assert.ok(diff.code === 0 || diff.code === 1, diff.stderr);
      const [a, b] = [await lstatLines(w.tree), await lstatLines(mp)];
      assert.deepEqual([...b.keys()], [...a.keys()], "same paths");
      for (const [p, line] of a) assert.equal(b.get(p), line, `lstat of ${p}`);
      assert.ok(a.size > 40, `compared ${a.size} paths`);
      const xa = await xattrDump(w.tree);
      assert.match(xa, /user\.dirattr/, "the source tree carries xattrs");
      assert.equal(await xattrDump(mp), xa, "xattrs");
      const groups = await linkGroups(mp);
      assert.deepEqual(groups, await linkGroups(w.tree), "hard link groups");
      assert.ok(groups.some((g) => g.includes("links/hard1")), "links/hard1 is in a group");
      const stats = await w.cli(["stats", mp, "--json"]);
      assert.equal(stats.code, 0, stats.stderr);
      assert.equal(stats.json.pid, pid);
    } finally {
      const out = await umountClean(mp, pid);
      assert.ok(out.last.metrics.totals.verifiedChunks > 0, "chunks were fetched and verified");
    }
  });

  test("kill -9 of the daemon during reads; umount of the dead mount; remount with the same cache reads all data correctly", { timeout: 180_000 }, async () => {
    const mp = path.join(w.work, "mnt-d");
    const cache = path.join(w.work, "cache-d");
    const pid = await mountDaemon(mp, cache);
    // The reader loops over every file until a read fails; the daemon is killed 300 ms in, during the first cold pass.
    const reader = spawn("bash", ["-c", `cd '${mp}' && for i in $(seq 1 500); do find . -type f -print0 | xargs -0 cat > /dev/null || exit 1; done`], { stdio: "ignore" });
    const readerDone = new Promise((r) => reader.once("exit", r));
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, "SIGKILL");
    assert.ok(await waitGone(pid));
    const readerCode = await readerDone;
    const cached = fs.readdirSync(cache).filter((f) => f.endsWith(".blob.data")).reduce((s, f) => s + fs.statSync(path.join(cache, f)).blocks * 512, 0);
    console.log(`# daemon killed 300 ms into the reads (${cached} bytes of chunk data cached); the reader exited ${readerCode}`);
    assert.notEqual(readerCode, 0, "the daemon died while the reader was reading");
    const u = await w.cli(["umount", mp, "--json"]);
    assert.equal(u.code, 0, u.stderr);
    assert.equal(u.json.daemon, "dead (state file removed)");
    assert.ok(!mounted(mp), "the dead mount is gone");
    const pid2 = await mountDaemon(mp, cache);
    try {
      const [want, got] = [await fileHashes(w.tree), await fileHashes(mp)];
      assert.deepEqual(got, want, "every file reads correctly after the remount");
    } finally {
      await umountClean(mp, pid2);
    }
  });

  test("--prefetch-paths warms the cache in the background; later reads fetch nothing", { timeout: 120_000 }, async () => {
    const mp = path.join(w.work, "mnt-pf");
    const pid = await mountDaemon(mp, path.join(w.work, "cache-pf"), ["--prefetch-paths", "/big,/sizes"]);
    try {
      let st: any;
      const deadline = Date.now() + 60_000;
      do {
        await new Promise((r) => setTimeout(r, 200));
        st = (await w.cli(["stats", mp, "--json"])).json;
        assert.ok(Date.now() < deadline, "prefetch did not finish");
      } while (st.prefetch?.state !== "done");
      assert.ok(st.prefetch.files >= 9 && st.metrics.totals.misses > 128, `prefetched ${st.prefetch.files} files, ${st.metrics.totals.misses} chunks`);
      const want = await fileHashes(w.tree);
      const r = await sh(`sha256sum '${mp}/big/random-8m.bin'`);
      assert.equal(r.stdout.slice(0, 64), want.get("./big/random-8m.bin"));
      const requests = st.metrics.totals.requests;
      const out = await umountClean(mp, pid);
      assert.equal(out.last.metrics.totals.requests, requests, "no request after the prefetch");
      assert.ok(out.last.metrics.totals.hits >= 128, "reads were cache hits");
    } finally {
      if (mounted(mp)) await umountClean(mp, pid);
    }
  });

  test("16 parallel reader processes on different files: correct hashes, no deadlock, clean unmount", { timeout: 120_000 }, async () => {
    const mp = path.join(w.work, "mnt-e");
    const pid = await mountDaemon(mp, path.join(w.work, "cache-e"));
    try {
      const want = await fileHashes(w.tree);
      const files = [...want.keys()].sort((x, y) => x.localeCompare(y)).slice(0, 16);
      assert.equal(files.length, 16);
      const results = await Promise.all(files.map((f) => sh(`sha256sum '${path.join(mp, f)}'`, { timeoutMs: 60_000 })));
      results.forEach((r, i) => {
        assert.equal(r.code, 0, `${files[i]}: ${r.stderr}`);
        assert.equal(r.stdout.slice(0, 64), want.get(files[i]!), files[i]);
      });
    } finally {
      await umountClean(mp, pid);
    }
  });
});
