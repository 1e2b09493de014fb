/**
 * The FUSE server against the kernel: an image built from the all-types texture (64 KiB chunks)
 * is mounted and compared with its source tree. Everything that touches the mount runs in
 * child processes (the test process serves the mount; see server.ts on deadlocks).
 * Skipped with a printed reason unless running as root with /dev/fuse and util-linux mount.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildTexture, type BuiltImage } from "../local/_testing.ts";
import { ChunkSource } from "../local/chunk_source.ts";
import { allTypesTexture, file, random } from "../../test/textures/spec.ts";
import { fileReaderFromChunks } from "./chunk_reader.ts";
import { RafsFs } from "./rafs_fs.ts";
import { mountFuse, type FuseMount } from "./fuse/server.ts";
import { canMountFuse, skipReason } from "../../test/support/oracles.ts";

const reason = skipReason(canMountFuse()) || undefined;
if (reason) console.log(`# fuse tests skipped: ${reason}`);

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<Out> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, maxBuffer: 256 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const sh = (script: string): Promise<Out> => run("sh", ["-c", script]);

function mounted(mnt: string): boolean {
  return fs.readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === mnt);
}

/** All relative paths under `root` ("." first), sorted. */
async function listTree(root: string): Promise<string[]> {
  const out: string[] = ["."];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
      const p = rel === "." ? d.name : `${rel}/${d.name}`;
      out.push(p);
      if (d.isDirectory()) await walk(p);
    }
  };
  await walk(".");
  return out.sort();
}

/** `stat` lines per path: type+mode, uid, gid, size (not for dirs), nlink, rdev, mtime s and ns. */
async function statLines(root: string, paths: string[]): Promise<Map<string, string>> {
  const r = await run("stat", ["-c", "%n|%F|%f|%u|%g|%s|%h|%t|%T|%Y|%y|%i", "--", ...paths], { cwd: root });
  assert.equal(r.code, 0, r.stderr);
  const m = new Map<string, string>();
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [name, type, mode, uid, gid, size, nlink, maj, min, mtime, mtimeFull] = line.split("|");
    m.set(name, [type, mode, uid, gid, type === "directory" ? "-" : size, nlink, maj, min, mtime, mtimeFull].join("|"));
  }
  return m;
}

async function inodes(root: string, paths: string[]): Promise<Map<string, string>> {
  const r = await run("stat", ["-c", "%n|%F|%i", "--", ...paths], { cwd: root });
  assert.equal(r.code, 0, r.stderr);
  const m = new Map<string, string>();
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const [name, type, ino] = line.split("|");
    if (type !== "directory") m.set(name, ino);
  }
  return m;
}

/** getfattr dump per file: name=value lines sorted (listing order is not canonical). */
async function xattrDump(root: string, paths: string[]): Promise<Map<string, string>> {
  const r = await run("getfattr", ["-h", "-d", "-m", "-", "-e", "hex", "--", ...paths], { cwd: root });
  const m = new Map<string, string>();
  for (const block of r.stdout.split("\n\n")) {
    const lines = block.split("\n").filter(Boolean);
    if (lines.length === 0) continue;
    const name = lines[0].replace(/^# file: /, "");
    m.set(name, lines.slice(1).sort().join("\n"));
  }
  return m;
}

describe("FUSE mount of a RAFS image", { skip: reason }, () => {
  let work: string;
  let built: BuiltImage;
  let source: ChunkSource;
  let mnt: string;
  let mount: FuseMount;
  const logs: string[] = [];
  const CHUNK = 0x10000;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-fuse-"));
    const spec = allTypesTexture(CHUNK);
    // 16 files for parallel readers, and a big one for throughput.
    for (let i = 0; i < 16; i++) spec.entries.push(file(`par/f${i}`, random(300_000 + i * 50_000, 900 + i)));
    spec.entries.push(file("big/random.bin", random(64 << 20, 4242)));
    built = await buildTexture(spec, path.join(work, "img"), { input: "dir", chunkSize: CHUNK });
    source = new ChunkSource(built.image, { blobDir: built.blobDir });
    const reader = fileReaderFromChunks(built.image, (c) => source.read(c));
    mnt = path.join(work, "mnt");
    await fsp.mkdir(mnt);
    mount = await mountFuse(new RafsFs(built.image, reader, { log: (l) => logs.push(l) }), mnt, { source: "nydus-ts-test", log: (l) => logs.push(l) });
  });

  after(async () => {
    if (mount && mounted(mnt)) await mount.unmount({ lazy: true });
    await source?.close();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it("is listed in /proc/mounts as a read-only fuse.nydus-ts mount", () => {
    const line = fs.readFileSync("/proc/mounts", "utf8").split("\n").find((l) => l.split(" ")[1] === mnt);
    assert.ok(line, "mount missing");
    assert.match(line, /^nydus-ts-test \S+ fuse\.nydus-ts ro,/);
  });

  it("has its kernel read-ahead raised to 4 MiB (sequential reads in 1 MiB READs)", async () => {
    // The device numbers from a child's stat: a stat from this serving process could deadlock.
    const dev = (await run("mountpoint", ["-d", mnt])).stdout.trim();
    assert.match(dev, /^\d+:\d+$/);
    assert.equal(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, "utf8").trim(), "4096");
  });

  it("serves 16 parallel reader processes without deadlock, with the right bytes", async () => {
    const files = Array.from({ length: 16 }, (_, i) => `par/f${i}`);
    const t0 = Date.now();
    const results = await Promise.all(files.map((f) => run("sha256sum", [path.join(mnt, f)])));
    const expected = await run("sha256sum", files.map((f) => path.join(built.source, f)));
    const want = expected.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")[0]);
    results.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split(" ")[0], want[i], files[i]);
    });
    console.log(`# 16 parallel sha256sum: ${Date.now() - t0} ms`);
  });

  it("reads a 64 MiB file sequentially with dd bs=1M", async () => {
    const r = await sh(`dd if='${mnt}/big/random.bin' of=/dev/null bs=1M 2>&1`);
    assert.equal(r.code, 0, r.stdout);
    console.log(`# dd: ${r.stdout.trim().split("\n").pop()}`);
    const a = await run("sha256sum", [path.join(mnt, "big/random.bin")]);
    const b = await run("sha256sum", [path.join(built.source, "big/random.bin")]);
    assert.equal(a.stdout.split(" ")[0], b.stdout.split(" ")[0]);
    // O_DIRECT makes the kernel send READs of up to max_read (1 MiB) each.
    const d = await sh(`dd if='${mnt}/big/random.bin' iflag=direct bs=1M 2>/tmp/nydus-fuse-dd.$$ | sha256sum; tail -n1 /tmp/nydus-fuse-dd.$$ >&2; rm -f /tmp/nydus-fuse-dd.$$`);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.stdout.split(" ")[0], b.stdout.split(" ")[0]);
    console.log(`# dd iflag=direct: ${d.stderr.trim()}`);
  });

  it("matches the source per path: mode, owner, size, nlink, rdev, mtime", async () => {
    const paths = await listTree(built.source);
    const want = await statLines(built.source, paths);
    const got = await statLines(mnt, paths);
    assert.equal(got.size, paths.length);
    // The builder stores the root directory with mtime 0 (the image says so; the mount shows the image).
    const root = built.image.inode(built.image.superBlock.rootIno);
    assert.equal(got.get(".")!.split("|")[8], String(root.mtime));
    const diffs: string[] = [];
    for (const p of paths) {
      if (p === ".") continue;
      if (got.get(p) !== want.get(p)) diffs.push(`${p}: source ${want.get(p)} mount ${got.get(p)}`);
    }
    assert.deepEqual(diffs, []);
    assert.ok(want.get("dev/bigminor")!.includes("|1ff|11170|"), "rdev of dev/bigminor compared"); // major 511, minor 70000
  });

  it("lists the same names (find in a child process)", async () => {
    const a = await sh(`cd '${built.source}' && find . | LC_ALL=C sort`);
    const b = await sh(`cd '${mnt}' && find . | LC_ALL=C sort`);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout, a.stdout);
  });

  it("keeps hardlinks as one inode and distinct files distinct", async () => {
    const paths = await listTree(built.source);
    const src = await inodes(built.source, paths);
    const got = await inodes(mnt, paths);
    const group = (m: Map<string, string>): string[] => {
      const g = new Map<string, string[]>();
      for (const [p, ino] of m) g.set(ino, [...(g.get(ino) ?? []), p]);
      return [...g.values()].map((v) => v.sort().join(",")).sort();
    };
    assert.deepEqual(group(got), group(src));
    assert.equal(got.get("links/hard1"), got.get("links/target.txt"));
  });

  it("has the same symlink targets", async () => {
    const links = ["links/rel", "links/abs", "links/dangling", "links/long-target", "links/to-dir"];
    const a = await run("readlink", links, { cwd: built.source });
    const b = await run("readlink", links, { cwd: mnt });
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout, a.stdout);
  });

  it("has the same xattrs (getfattr -d -m -)", async () => {
    const paths = (await listTree(built.source)).filter((p) => !p.startsWith("bigdir/"));
    const a = await xattrDump(built.source, paths);
    const b = await xattrDump(mnt, paths);
    assert.ok(a.size > 0);
    assert.deepEqual(b, a);
    assert.match(b.get("xattrs/user") ?? "", /user\.comment=0x68656c6c6f207861747472/);
  });

  it("answers EROFS to writes and ENODATA/ERANGE for xattrs", async () => {
    const w = await sh(`echo x > '${mnt}/sizes/one-byte' 2>&1; touch '${mnt}/newfile' 2>&1; mkdir '${mnt}/d2' 2>&1`);
    assert.match(w.stdout, /Read-only file system/);
    assert.doesNotMatch(w.stdout, /Input\/output error/);
    const g = await run("getfattr", ["-h", "-n", "user.nope", path.join(mnt, "xattrs/user")]);
    assert.match(g.stderr, /No such attribute/);
  });

  it("has the same content (diff -r)", async () => {
    const r = await run("diff", ["-r", "--no-dereference", built.source, mnt]);
    // diff reports every special file ("is a fifo while file … is a fifo"); those are compared by stat above.
    const real = r.stdout.split("\n").filter((l) => l && !/^File .* is a (character special file|block special file|fifo|socket) while file .* is a \1$/.test(l));
    assert.deepEqual(real, []);
    assert.equal(r.stderr, "");
  });

  it("unmounts cleanly and the server ends", async () => {
    await mount.unmount();
    await mount.closed;
    assert.equal(mounted(mnt), false);
  });
});

describe("FUSE mount with a corrupted chunk", { skip: reason }, () => {
  let work: string;
  let source: ChunkSource;
  let mount: FuseMount | undefined;
  let mnt: string;

  after(async () => {
    if (mount && mounted(mnt)) await mount.unmount({ lazy: true });
    await source?.close();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it("answers EIO for the bad file with one log line, serves the others, and ends on an external umount", async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-fuse-bad-"));
    const spec = { entries: [file("good.bin", random(300_000, 1)), file("bad.bin", random(300_000, 2)), file("small.txt", random(100, 3))] };
    const built = await buildTexture(spec, path.join(work, "img"), { input: "dir", chunkSize: 0x10000, compressor: "none" });
    const bad = built.image.lookup("/bad.bin")!;
    const victim = built.image.chunks(bad)[2].chunk;
    source = new ChunkSource(built.image, { blobDir: built.blobDir });
    const blob = source.blobPath(victim.blobIndex);
    const fh = await fsp.open(blob, "r+");
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, victim.compressedOffset + 10);
    one[0] ^= 0xff;
    await fh.write(one, 0, 1, victim.compressedOffset + 10);
    await fh.close();

    const logs: string[] = [];
    const reader = fileReaderFromChunks(built.image, (c) => source.read(c));
    mnt = path.join(work, "mnt");
    await fsp.mkdir(mnt);
    mount = await mountFuse(new RafsFs(built.image, reader, { log: (l) => logs.push(l) }), mnt, { log: (l) => logs.push(l) });

    const cat = await run("cat", [path.join(mnt, "bad.bin")]);
    assert.notEqual(cat.code, 0);
    assert.match(cat.stderr, /Input\/output error/);
    const good = await run("sha256sum", [path.join(mnt, "good.bin"), path.join(mnt, "small.txt")]);
    const want = await run("sha256sum", [path.join(built.source, "good.bin"), path.join(built.source, "small.txt")]);
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(good.stdout.split("\n").map((l) => l.split(" ")[0]), want.stdout.split("\n").map((l) => l.split(" ")[0]));
    // The bytes before the bad chunk still read (never wrong bytes, only EIO past it).
    const head = await sh(`head -c 131072 '${mnt}/bad.bin' | cmp - '${built.source}/bad.bin' 2>&1`);
    assert.match(head.stdout, /EOF on -/);
    assert.ok(logs.length >= 1, "a log line");
    assert.match(logs[0], /"\/bad\.bin".*EIO.*(DigestMismatch|verify)/i);
    console.log(`# log: ${logs[0]}`);

    const u = await run("umount", [mnt]);
    assert.equal(u.code, 0, u.stderr);
    await mount.closed;
    assert.equal(mounted(mnt), false);
  });
});
