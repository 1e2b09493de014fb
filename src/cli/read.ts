/**
 * `nydus-ts ls`, `cat` and `stat`: read a Nydus image (registry or OCI layout) without pulling
 * it; only the bootstrap and the chunks of the files read are fetched (into a temporary cache
 * unless `--cache-dir`). `--json` adds what was fetched and the storage metrics.
 */
import crypto from "node:crypto";
import { once } from "node:events";
import { InvalidInputError } from "../internal/errors.ts";
import { RafsFs } from "../fs/index.ts";
import type { RafsImage, RafsInode } from "../rafs/model.ts";
import { emit } from "./output.ts";
import { fetchedLine, modeString, openRuntime, resolvePath, type Runtime, type RuntimeFlags } from "./runtime.ts";

const dec = new TextDecoder();

/** The attributes of an inode, as `stat` and `ls --json` report them. */
export function describeInode(image: RafsImage, inode: RafsInode) {
  const attr = new RafsFs(image, { read: async () => new Uint8Array() }).attrOf(inode);
  return {
    ino: attr.ino,
    kind: inode.kind,
    mode: inode.mode,
    modeString: modeString(inode.mode),
    nlink: inode.nlink,
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    blocks: attr.blocks,
    mtime: inode.mtime,
    mtimeNsec: inode.mtimeNsec,
    rdev: attr.rdev,
    rdevMajor: inode.rdevMajor,
    rdevMinor: inode.rdevMinor,
    ...(inode.kind === "symlink" ? { target: dec.decode(image.readlink(inode)) } : {}),
    xattrs: [...inode.xattrs.keys()].sort(),
  };
}

function timeString(sec: number): string {
  return new Date(sec * 1000).toISOString().slice(0, 16).replace("T", " ");
}

async function withRuntime<T>(source: string, flags: RuntimeFlags, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await openRuntime(source, flags, { persistentCache: false });
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

export async function runLs(source: string, p: string | undefined, flags: RuntimeFlags): Promise<void> {
  await withRuntime(source, flags, async (rt) => {
    const { path: where, inode } = resolvePath(rt.image, p ?? "/", true);
    const entries = inode.kind === "dir"
      ? rt.image.readdir(inode).map((e) => ({ name: dec.decode(e.name), ...describeInode(rt.image, rt.image.inode(e.ino)) }))
      : [{ name: where.split("/").pop() || "/", ...describeInode(rt.image, inode) }];
    const w = (k: "nlink" | "uid" | "gid" | "size") => Math.max(1, ...entries.map((e) => String(e[k]).length));
    const [wn, wu, wg, ws] = [w("nlink"), w("uid"), w("gid"), w("size")];
    emit(flags, { source, path: where, entries, ...rt.summary() }, () =>
      entries.map((e) => {
        const size = e.kind === "chr" || e.kind === "blk" ? `${e.rdevMajor}, ${e.rdevMinor}` : String(e.size);
        return `${e.modeString} ${String(e.nlink).padStart(wn)} ${String(e.uid).padStart(wu)} ${String(e.gid).padStart(wg)} ${size.padStart(ws)} ${timeString(e.mtime)} ${e.name}${e.target !== undefined ? ` -> ${e.target}` : ""}`;
      }).join("\n"));
  });
}

export async function runStat(source: string, p: string, flags: RuntimeFlags): Promise<void> {
  await withRuntime(source, flags, async (rt) => {
    const { path: where, inode } = resolvePath(rt.image, p, false);
    const d = describeInode(rt.image, inode);
    emit(flags, { source, path: where, ...d, ...rt.summary() }, () => [
      `  File: ${where}${d.target !== undefined ? ` -> ${d.target}` : ""}`,
      `  Type: ${d.kind}  Size: ${d.size}  Blocks: ${d.blocks}  Inode: ${d.ino}  Links: ${d.nlink}`,
      `Access: (${(d.mode & 0o7777).toString(8).padStart(4, "0")}/${d.modeString})  Uid: ${d.uid}  Gid: ${d.gid}` + (d.rdev ? `  Device: ${d.rdevMajor},${d.rdevMinor} (rdev ${d.rdev})` : ""),
      `Modify: ${new Date(d.mtime * 1000).toISOString().replace(/\.\d+Z$/, "")}.${String(d.mtimeNsec).padStart(9, "0")}Z (${d.mtime})`,
      `Xattrs: ${d.xattrs.length > 0 ? d.xattrs.join(", ") : "(none)"}`,
    ].join("\n"));
  });
}

/** Streams a file (symlinks followed inside the image) to stdout in reads of at most 1 MiB. */
export async function runCat(source: string, p: string, flags: RuntimeFlags): Promise<void> {
  await withRuntime(source, flags, async (rt) => {
    const { path: where, inode } = resolvePath(rt.image, p, true);
    if (inode.kind !== "reg") throw new InvalidInputError(`Cannot cat "${where}": it is a ${inode.kind}, not a regular file`);
    // With --json the bytes are not printed: the JSON reports their size and SHA-256.
    const out = flags.json ? undefined : process.stdout;
    // A reader that stops early (`| head`) is not an error.
    out?.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
      throw err;
    });
    const hash = crypto.createHash("sha256");
    for (let off = 0; off < inode.size; off += 1 << 20) {
      const piece = await rt.reader.read(inode, off, Math.min(1 << 20, inode.size - off));
      hash.update(piece);
      if (out && !out.write(piece)) await once(out, "drain");
    }
    if (flags.json) emit(flags, { source, path: where, size: inode.size, sha256: hash.digest("hex"), ...rt.summary() }, () => "");
    else if (process.env.NYDUS_TS_VERBOSE) process.stderr.write(fetchedLine(rt) + "\n");
  });
}
