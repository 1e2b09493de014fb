/**
 * Bench input (a), fallback when debootstrap or the network is unavailable: a synthetic
 * rootfs-like tree, deterministic from a seeded PRNG, written as a tar. It imitates a
 * Debian minbase: ~6.5k entries, ~190 MB; binaries and shared libraries (partly random,
 * partly repetitive, like ELF code and string tables), config and doc text, symlinks,
 * a few hardlinks, setuid files, device-less /dev.
 *
 * Usage: node --import tsx bench/gen_rootfs.ts OUT.tar [seed=3]
 */
import fs from "node:fs";
import { TarWriter, prng } from "./tar_writer.ts";

const out = process.argv[2];
if (!out) throw new Error("usage: gen_rootfs.ts OUT.tar [seed]");
const rnd = prng(Number(process.argv[3] ?? 3));
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
const logSize = (lo: number, hi: number) => Math.floor(lo * Math.pow(hi / lo, rnd()));
const WORDS = "the of and to in is for that with on as by this be are from or it an at config file system user package default value option debian linux".split(" ");

const randomPool = Buffer.alloc(8 << 20);
for (let i = 0; i < randomPool.length; i += 4) randomPool.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
const textPool = Buffer.from(Array.from({ length: 120000 }, () => Array.from({ length: 3 + Math.floor(rnd() * 10) }, () => pick(WORDS)).join(" ")).join("\n"));

/** Binary-ish: 4 KiB runs from the random pool alternating with runs of text and zeros. */
function binary(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 4096) {
    const n = Math.min(4096, size - off);
    const r = rnd();
    const pool = r < 0.55 ? randomPool : r < 0.85 ? textPool : undefined;
    if (pool) {
      const src = Math.floor(rnd() * (pool.length - 4096));
      pool.copy(b, off, src, src + n);
    }
  }
  return b;
}
function text(size: number): Buffer {
  const src = Math.floor(rnd() * (textPool.length - size - 1));
  return Buffer.from(textPool.subarray(Math.max(0, src), Math.max(0, src) + size));
}

const fd = fs.openSync(out, "w");
const tar = new TarWriter(fd);
let files = 0;
const dirs = new Set<string>();
const dir = (name: string) => {
  const parts = name.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join("/");
    if (!dirs.has(p)) {
      dirs.add(p);
      tar.add({ name: p, type: "dir", mode: p === "./tmp" ? 0o1777 : 0o755 });
    }
  }
};
const file = (name: string, data: Buffer, mode = 0o644) => {
  dir(name.slice(0, name.lastIndexOf("/")));
  tar.add({ name, type: "file", data, mode });
  files++;
};

for (const d of ["./bin", "./sbin", "./lib", "./lib64", "./usr/bin", "./usr/sbin", "./usr/lib/x86_64-linux-gnu", "./usr/share/doc", "./usr/share/locale", "./usr/share/zoneinfo", "./etc", "./var/lib/dpkg/info", "./var/cache", "./var/log", "./tmp", "./dev", "./proc", "./sys", "./root", "./home", "./run"]) dir(d);
// Executables.
for (let i = 0; i < 420; i++) file(`./usr/bin/prog${i}`, binary(logSize(8 << 10, 512 << 10)), i % 97 === 0 ? 0o4755 : 0o755);
for (let i = 0; i < 120; i++) file(`./usr/sbin/sprog${i}`, binary(logSize(8 << 10, 400 << 10)), 0o755);
// Shared libraries and their symlinks.
for (let i = 0; i < 200; i++) {
  const base = `./usr/lib/x86_64-linux-gnu/lib${pick(WORDS)}${i}.so`;
  file(`${base}.1.0.0`, binary(logSize(16 << 10, 2 << 20)));
  tar.add({ name: `${base}.1`, type: "symlink", linkname: `${base.slice(base.lastIndexOf("/") + 1)}.1.0.0`, mode: 0o777 });
}
// Perl/python-like module trees: many small text files.
for (let i = 0; i < 1800; i++) file(`./usr/share/perl5/M${i % 40}/mod${i}.pm`, text(logSize(300, 40 << 10)));
// Docs and locale.
for (let i = 0; i < 700; i++) {
  file(`./usr/share/doc/pkg${i}/copyright`, text(logSize(500, 20 << 10)));
  if (i % 3 === 0) file(`./usr/share/doc/pkg${i}/changelog.Debian.gz`, binary(logSize(300, 8 << 10)));
}
for (let i = 0; i < 450; i++) file(`./usr/share/locale/l${i % 60}/LC_MESSAGES/dom${i}.mo`, binary(logSize(1 << 10, 120 << 10)));
for (let i = 0; i < 500; i++) file(`./usr/share/zoneinfo/Z${i % 20}/zone${i}`, binary(logSize(100, 3 << 10)));
// dpkg database and /etc.
for (let i = 0; i < 800; i++) file(`./var/lib/dpkg/info/pkg${i % 200}.${pick(["list", "md5sums", "postinst", "conffiles"])}${i}`, text(logSize(60, 30 << 10)));
file("./var/lib/dpkg/status", text(900 << 10));
for (let i = 0; i < 300; i++) file(`./etc/${pick(["default", "init.d", "cron.daily", "security", "pam.d"])}/conf${i}`, text(logSize(40, 6 << 10)));
// Hardlinks and /bin symlinks (usrmerge).
for (let i = 0; i < 8; i++) tar.add({ name: `./usr/bin/alias${i}`, type: "hardlink", linkname: `./usr/bin/prog${i}`, mode: 0o755 });
for (let i = 0; i < 200; i++) tar.add({ name: `./usr/bin/link${i}`, type: "symlink", linkname: `prog${i}`, mode: 0o777 });
tar.end();
fs.closeSync(fd);
process.stderr.write(`gen_rootfs: ${files} files, tar ${(tar.bytesWritten / 1e6).toFixed(1)} MB\n`);
