import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DigestMismatchError, FormatError, NydusError, UnsafePathError } from "../internal/errors.ts";
import { openRafs } from "../rafs/open.ts";
import { writeBootstrapV6 } from "../rafs/v6_writer.ts";
import { KIND_MODE, type TreeInode } from "../rafs/model.ts";
import { fixture } from "../../test/support/paths.ts";
import { gnuTarExtract, haveGnuTar, skipReason, type Availability } from "../../test/support/oracles.ts";
import { makeTempDir, removeTree, withTempDir } from "../../test/support/tmp.ts";
import { assertSnapshotsEqual, snapshotFromSpec, snapshotTree, type TreeSnapshot } from "../../test/support/tree_snapshot.ts";
import { layerEntries } from "../../test/textures/generate.ts";
import { allTypesTexture, file, random, symlink, text } from "../../test/textures/spec.ts";
import { buildTexture, fakeImage, type BuiltImage } from "./_testing.ts";
import { ChunkSource } from "./chunk_source.ts";
import { unpackToDirectory, unpackToTar } from "./unpack.ts";

const V5_BLOB = "7334a2594e133cf8ae364189c2276b090fc490c627bcc3fb1077f0419a538e00";
const V6_BLOB = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef";
const isRoot: Availability = process.getuid?.() === 0 ? { ok: true } : { ok: false, reason: "not root (devices, chown, trusted.* xattrs)" };

/** A blob dir holding symlinks to the given fixture blobs. */
async function fixtureBlobDir(dir: string, ...ids: string[]): Promise<string> {
  const blobDir = path.join(dir, "blobs");
  await fsp.mkdir(blobDir);
  for (const id of ids) await fsp.symlink(fixture(`blobs/${id}`), path.join(blobDir, id));
  return blobDir;
}

async function unpackDir(bootstrap: Uint8Array, blobDir: string, out: string) {
  const image = openRafs(bootstrap);
  const src = new ChunkSource(image, { blobDir });
  try {
    return await unpackToDirectory(image, src, out);
  } finally {
    await src.close();
  }
}

/** md5 lines of the .result file (second part: "<md5>  /path"). */
function expectedMd5s(resultFile: string): Map<string, string> {
  const lines = fs.readFileSync(resultFile, "utf8").split("\n");
  const out = new Map<string, string>();
  for (const l of lines) {
    const m = /^([0-9a-f]{32}) {2}(\/.*)$/.exec(l);
    if (m) out.set(m[2], m[1]);
  }
  return out;
}

async function md5Tree(root: string, rel = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const d of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = `${rel}/${d.name}`;
    if (d.isDirectory()) for (const [k, v] of await md5Tree(root, r)) out.set(k, v);
    else if (d.isFile()) out.set(r, createHash("md5").update(await fsp.readFile(path.join(root, r))).digest("hex"));
  }
  return out;
}

describe("unpack upstream fixtures", () => {
  for (const name of ["sha256-nocompress-repeatable", "blake3-lz4_block-non_repeatable"]) test(`v5 ${name}: every regular file has the md5 of the .result file`, async () => {
    await withTempDir(async (dir) => {
      const blobDir = await fixtureBlobDir(dir, V5_BLOB);
      const out = path.join(dir, "out");
      const r = await unpackDir(new Uint8Array(await fsp.readFile(fixture(name))), blobDir, out);
      const expected = expectedMd5s(fixture(`${name}.result`));
      assert.equal(expected.size, 23);
      assert.deepEqual(await md5Tree(out), expected);
      assert.deepEqual(r.warnings, []);
      // hardlink-test/foo, hardlink-test/test.sh and normal-file-test/test.sh are one inode
      const a = await fsp.stat(path.join(out, "hardlink-test/foo"));
      const b = await fsp.stat(path.join(out, "normal-file-test/test.sh"));
      assert.equal(a.ino, b.ino);
      assert.equal(a.nlink, 3);
      assert.equal(await fsp.readlink(path.join(out, "symlink-test/root-1")), "/////////////////");
      assert.equal(r.stats.symlinks, 7);
    });
  });

  test("v5 to tar: GNU tar lists it and extracting gives the same md5s", { skip: skipReason(haveGnuTar()) }, async () => {
    await withTempDir(async (dir) => {
      const blobDir = await fixtureBlobDir(dir, V5_BLOB);
      const image = openRafs(new Uint8Array(await fsp.readFile(fixture("sha256-nocompress-repeatable"))));
      const src = new ChunkSource(image, { blobDir });
      const tarFile = path.join(dir, "out.tar");
      try {
        await unpackToTar(image, src, tarFile);
      } finally {
        await src.close();
      }
      assert.deepEqual((await fsp.readdir(dir)).sort(), ["blobs", "out.tar"]); // no temp file left
      await gnuTarExtract(tarFile, path.join(dir, "x"));
      assert.deepEqual(await md5Tree(path.join(dir, "x")), expectedMd5s(fixture("sha256-nocompress-repeatable.result")));
    });
  });

  test("v6 rafs-v6-2.2.boot: lib.rs and sync_io.rs with sizes and nanosecond mtimes", async () => {
    await withTempDir(async (dir) => {
      const blobDir = await fixtureBlobDir(dir, V6_BLOB);
      const boot = new Uint8Array(await fsp.readFile(fixture("rafs-v6-2.2.boot")));
      const image = openRafs(boot);
      const out = path.join(dir, "out");
      await unpackDir(boot, blobDir, out);
      assert.deepEqual((await fsp.readdir(out)).sort(), ["lib.rs", "sync_io.rs"]);
      for (const [name, size] of [["lib.rs", 16931], ["sync_io.rs", 13400]] as const) {
        const st = await fsp.stat(path.join(out, name), { bigint: true });
        const ino = image.lookup(`/${name}`)!;
        assert.equal(Number(st.size), size);
        assert.equal(st.mtimeNs, BigInt(ino.mtime) * 1_000_000_000n + BigInt(ino.mtimeNsec));
        assert.ok(ino.mtimeNsec > 0, "the fixture has sub-second mtimes");
        assert.equal(Number(st.mode & 0o7777n), ino.mode & 0o7777);
      }
      const lib = await fsp.readFile(path.join(out, "lib.rs"), "utf8");
      assert.match(lib, /Copyright/);
      assert.equal(Buffer.byteLength(lib), 16931);
    });
  });
});

/**
 * Our builder stores the root directory with mtime 0 whatever the source says (as the upstream
 * fixtures have it), so the root's mtime is compared with the image instead of the texture.
 */
function withoutRootMtime(s: TreeSnapshot): TreeSnapshot {
  const copy = new Map(s);
  copy.set("/", { ...s.get("/")!, mtime: 0, mtimeNsec: 0 });
  return copy;
}

describe("unpack the all-types texture built by create", { skip: skipReason(isRoot) }, () => {
  const layer = allTypesTexture(0x10000);
  const built: Partial<Record<"tar" | "dir", BuiltImage>> = {};
  let dir = "";
  before(async () => {
    dir = await makeTempDir({ prefix: "nydus-ts-unpack-" });
    for (const input of ["tar", "dir"] as const) {
      await fsp.mkdir(path.join(dir, input));
      built[input] = await buildTexture(layer, path.join(dir, input), { input });
    }
  });
  after(async () => {
    if (dir) await removeTree(dir);
  });

  /**
   * The texture's snapshot, except what the build (not the unpack) loses: our tar reader takes an
   * empty PAX value as "delete the keyword" (POSIX), so `SCHILY.xattr.user.empty=` never reaches
   * the image built from tar. Only dropped when the image really lacks it.
   */
  const expectedFor = (b: BuiltImage): TreeSnapshot => {
    const snap = withoutRootMtime(snapshotFromSpec(layer, { form: "tar", nsec: true }));
    if (!b.image.lookup("/xattrs/user")!.xattrs.has("user.empty")) {
      const e = snap.get("/xattrs/user")!;
      const { ["user.empty"]: _dropped, ...rest } = e.xattrs!;
      snap.set("/xattrs/user", { ...e, xattrs: rest });
    }
    return snap;
  };

  for (const input of ["tar", "dir"] as const) {
    test(`${input} input → directory: snapshot-equal to the source (incl. ns mtimes, xattrs, devices, hardlinks)`, async () => {
      const b = built[input]!;
      const out = path.join(dir, `${input}-out`);
      const src = new ChunkSource(b.image, { blobDir: b.blobDir });
      let r;
      try {
        r = await unpackToDirectory(b.image, src, out);
      } finally {
        await src.close();
      }
      // Only sockets are not reproduced; the dir input carries one.
      assert.deepEqual(r.warnings.map((w) => w.path), input === "dir" ? ["/dev/socket"] : []);
      const actual = await snapshotTree(out, { nsec: true });
      assertSnapshotsEqual(withoutRootMtime(actual), expectedFor(b));
      assert.equal(actual.get("/")!.mtime, b.image.inode(b.image.superBlock.rootIno).mtime, "root mtime is the image's");
      assert.equal(r.stats.hardlinks, 2);
      assert.equal(r.stats.files, layerEntries(layer).filter((e: { type: string }) => e.type === "file").length);
    });

    test(`${input} input → tar → GNU tar --xattrs: snapshot-equal to the source`, { skip: skipReason(haveGnuTar()) }, async () => {
      const b = built[input]!;
      const tarFile = path.join(dir, `${input}-out.tar`);
      const src = new ChunkSource(b.image, { blobDir: b.blobDir });
      try {
        await unpackToTar(b.image, src, tarFile);
      } finally {
        await src.close();
      }
      const x = path.join(dir, `${input}-tar-x`);
      await gnuTarExtract(tarFile, x);
      const actual = await snapshotTree(x, { nsec: true });
      assertSnapshotsEqual(withoutRootMtime(actual), expectedFor(b));
      assert.equal(actual.get("/")!.mtime, b.image.inode(b.image.superBlock.rootIno).mtime, "root mtime is the image's");
    });
  }

  test("privileged: false skips devices with warnings and does not chown", async () => {
    const b = built.tar!;
    const out = path.join(dir, "unprivileged");
    const src = new ChunkSource(b.image, { blobDir: b.blobDir });
    let r;
    try {
      r = await unpackToDirectory(b.image, src, out, { privileged: false });
    } finally {
      await src.close();
    }
    assert.deepEqual(r.warnings.map((w) => w.path).sort(), ["/dev/bigminor", "/dev/null", "/dev/sda1"]);
    assert.equal(r.stats.skipped, 3);
    assert.equal((await fsp.lstat(path.join(out, "dev/fifo"))).isFIFO(), true, "fifos need no privilege");
    assert.equal((await fsp.stat(path.join(out, "modes/big-ids"))).uid, process.getuid!());
    assert.equal((await fsp.stat(path.join(out, "modes/setuid"))).mode & 0o7777, 0o4755);
  });

  test("refuses a non-empty output directory and leaves it alone", async () => {
    const b = built.tar!;
    const out = path.join(dir, "nonempty");
    await fsp.mkdir(out);
    await fsp.writeFile(path.join(out, "keep"), "x");
    const src = new ChunkSource(b.image, { blobDir: b.blobDir });
    try {
      await assert.rejects(unpackToDirectory(b.image, src, out), /not empty/);
    } finally {
      await src.close();
    }
    assert.deepEqual(await fsp.readdir(out), ["keep"]);
  });
});

describe("hostile bootstraps and corrupt blobs", () => {
  test("a symlink to the outside followed by an entry below it writes nothing outside (fake image, no reader checks)", async () => {
    await withTempDir(async (dir) => {
      const outside = path.join(dir, "outside");
      await fsp.mkdir(outside);
      const image = fakeImage([
        { name: "evil", kind: "symlink", target: outside },
        { name: "evil", kind: "dir", children: [{ name: "x", kind: "reg" }] },
      ]);
      const out = path.join(dir, "out");
      await assert.rejects(unpackToDirectory(image, new ChunkSource(image, { blobDir: dir }), out), (e: NodeJS.ErrnoException) => e.code === "EEXIST");
      assert.deepEqual(await fsp.readdir(outside), []);
      assert.equal(fs.existsSync(out), false, "the output directory this call created is removed");
    });
  });

  test("names with '/', '..', '.', NUL or empty are refused with UnsafePathError before anything is written", async () => {
    for (const bad of ["..", ".", "a/b", "../../etc", "a\0b", ""]) {
      await withTempDir(async (dir) => {
        const image = fakeImage([{ name: "ok", kind: "dir", children: [{ name: bad, kind: "reg" }] }]);
        const out = path.join(dir, "out");
        await fsp.mkdir(out);
        await assert.rejects(unpackToDirectory(image, new ChunkSource(image, { blobDir: dir }), out), UnsafePathError, JSON.stringify(bad));
        assert.deepEqual(await fsp.readdir(out), [], "an existing output dir is left empty");
        await assert.rejects(unpackToTar(image, new ChunkSource(image, { blobDir: dir }), path.join(dir, "o.tar")), UnsafePathError);
        assert.equal(fs.existsSync(path.join(dir, "o.tar")), false);
        assert.deepEqual((await fsp.readdir(dir)).sort(), ["out"], "no temporary tar left");
      });
    }
  });

  test("a real v6 bootstrap with a symlink and a later dir of the same name, and with '..' patched into a dirent, is refused with a typed error", async () => {
    await withTempDir(async (dir) => {
      const outside = path.join(dir, "outside");
      await fsp.mkdir(outside);
      const attrs = { uid: 0, gid: 0, mtime: 1_600_000_000, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map() };
      const reg = (): TreeInode => ({ ...attrs, kind: "reg", mode: KIND_MODE.reg | 0o644, size: 0, chunks: [] });
      const dirNode = (children: TreeInode["children"]): TreeInode => ({ ...attrs, kind: "dir", mode: KIND_MODE.dir | 0o755, size: 0, children });
      const enc = new TextEncoder();
      const opts = { blobs: [], chunkSize: 0x100000, compressor: "zstd", digester: "blake3" } as const;

      // (a) "evil" symlink + "evil/x": the writer refuses the duplicate name, so write "evil" and
      // "evim/x" and patch "evim" into "evil" in the dirent names.
      const evil: TreeInode = { ...attrs, kind: "symlink", mode: KIND_MODE.symlink | 0o777, size: outside.length, symlinkTarget: enc.encode(outside) };
      assert.throws(() => writeBootstrapV6(dirNode([{ name: enc.encode("evil"), inode: evil }, { name: enc.encode("evil"), inode: dirNode([]) }]), opts), RangeError);
      const twin = writeBootstrapV6(dirNode([{ name: enc.encode("evil"), inode: evil }, { name: enc.encode("evim"), inode: dirNode([{ name: enc.encode("x"), inode: reg() }]) }]), opts);
      const m = Buffer.from(twin).indexOf("evim");
      assert.ok(m > 0 && Buffer.from(twin).indexOf("evim", m + 1) < 0);
      const patched = new Uint8Array(twin);
      patched.set(enc.encode("evil"), m);
      const outA = path.join(dir, "out-a");
      await assert.rejects(unpackDir(patched, dir, outA), (e: unknown) => e instanceof FormatError || e instanceof UnsafePathError);
      assert.equal(fs.existsSync(outA), false);
      assert.deepEqual(await fsp.readdir(outside), []);

      // (b) "zz" patched into ".." in the dirent names of a real bootstrap
      const good = writeBootstrapV6(dirNode([{ name: enc.encode("aa"), inode: reg() }, { name: enc.encode("zz"), inode: dirNode([{ name: enc.encode("x"), inode: reg() }]) }]), opts);
      const at = Buffer.from(good).indexOf("zz");
      assert.ok(at > 0 && Buffer.from(good).indexOf("zz", at + 1) < 0, "one occurrence of the name");
      for (const patch of ["..", "z/"]) {
        const bad = new Uint8Array(good);
        bad.set(enc.encode(patch), at);
        const out = path.join(dir, `out-${patch === ".." ? "dotdot" : "slash"}`);
        await assert.rejects(unpackDir(bad, dir, out), (e: unknown) => e instanceof FormatError || e instanceof UnsafePathError, patch);
        assert.equal(fs.existsSync(out), false);
      }
      assert.deepEqual((await fsp.readdir(dir)).sort(), ["outside"]);
    });
  });

  test("a corrupted chunk gives DigestMismatchError naming blob, chunk and file; the output is not left looking complete", async () => {
    await withTempDir(async (dir) => {
      const layer = { name: "corrupt", entries: [file("a.txt", text("first file\n")), file("big.bin", random(300_000, 7)), symlink("l", "a.txt")] };
      const b = await buildTexture(layer, dir, { input: "tar", compressor: "none" });
      const big = b.image.lookup("/big.bin")!;
      const victim = b.image.chunks(big)[2];
      const blobFile = path.join(b.blobDir, b.blobId);
      const fh = await fsp.open(blobFile, "r+");
      try {
        const one = new Uint8Array(1);
        await fh.read(one, 0, 1, victim.chunk.compressedOffset + 100);
        one[0] ^= 0xff;
        await fh.write(one, 0, 1, victim.chunk.compressedOffset + 100);
      } finally {
        await fh.close();
      }
      const src = new ChunkSource(b.image, { blobDir: b.blobDir });
      const out = path.join(dir, "out");
      await fsp.mkdir(out);
      try {
        await assert.rejects(unpackToDirectory(b.image, src, out), (e: unknown) => {
          assert.ok(e instanceof DigestMismatchError, String(e));
          assert.match(e.message, new RegExp(`chunk ${victim.chunk.index} of blob ${b.blobId}`));
          assert.match(e.message, /"\/big\.bin"/);
          return true;
        });
        assert.deepEqual(await fsp.readdir(out), [], "nothing left: no staging dir, no partial files");
        await assert.rejects(unpackToTar(b.image, src, path.join(dir, "o.tar")), DigestMismatchError);
        assert.equal(fs.existsSync(path.join(dir, "o.tar")), false);
      } finally {
        await src.close();
      }
    });
  });
});
