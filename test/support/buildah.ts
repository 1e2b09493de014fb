/**
 * A private buildah store (vfs driver, in a temp dir) for tests: a busybox-static base image
 * made from /bin/busybox (environment.md §3), Dockerfile builds with `--layers --isolation chroot`,
 * and pushes to archives. Nothing outside `dir` is touched except buildah's global blob-info cache.
 *
 * @example
 * const bh = await buildahStore(path.join(work, "bh"));
 * await bh.makeBusyboxBase("localhost/bbbase:1");
 * await bh.build(ctxDir, "localhost/app:1");
 * await bh.push("localhost/app:1", `oci-archive:${file}:app`);
 */
import fsp from "node:fs/promises";
import path from "node:path";
import { procOk, type ProcResult } from "./peers.ts";

export interface BuildahStore {
  /** `--root R --runroot RR --storage-driver vfs` */
  storeArgs: string[];
  buildah(args: readonly string[]): Promise<ProcResult>;
  /** A base image with busybox and sh/ls/echo/cat/rm/mkdir/cp/ln/touch/chmod/test/true links, PATH=/bin. */
  makeBusyboxBase(tag: string): Promise<void>;
  /** `buildah build --layers --isolation chroot -f CTX/Dockerfile -t TAG CTX` */
  build(contextDir: string, tag: string): Promise<void>;
  /** `buildah push [--format docker] IMAGE DEST` */
  push(image: string, dest: string, options?: { docker?: boolean }): Promise<void>;
}

const BUSYBOX_LINKS = ["sh", "ls", "echo", "cat", "rm", "mkdir", "cp", "ln", "touch", "chmod", "test", "true"];

export async function buildahStore(dir: string): Promise<BuildahStore> {
  await fsp.mkdir(dir, { recursive: true });
  const storeArgs = ["--root", path.join(dir, "storage"), "--runroot", path.join(dir, "run"), "--storage-driver", "vfs"];
  const buildah = (args: readonly string[]) => procOk("buildah", [...storeArgs, ...args], { timeoutMs: 120_000 });
  return {
    storeArgs,
    buildah,
    async makeBusyboxBase(tag) {
      const root = path.join(dir, "bbroot");
      for (const d of ["bin", "tmp", "etc"]) await fsp.mkdir(path.join(root, d), { recursive: true });
      await fsp.copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
      await fsp.chmod(path.join(root, "bin", "busybox"), 0o755);
      for (const c of BUSYBOX_LINKS) await fsp.symlink("busybox", path.join(root, "bin", c));
      const c = (await buildah(["from", "scratch"])).stdout.trim();
      try {
        await buildah(["copy", c, `${root}/`, "/"]);
        await buildah(["config", "--env", "PATH=/bin", c]);
        await buildah(["commit", "-q", c, tag]);
      } finally {
        await buildah(["rm", c]);
      }
    },
    async build(contextDir, tag) {
      await buildah(["build", "--layers", "--isolation", "chroot", "-f", path.join(contextDir, "Dockerfile"), "-t", tag, contextDir]);
    },
    async push(image, dest, options = {}) {
      await buildah(["push", ...(options.docker ? ["--format", "docker"] : []), image, dest]);
    },
  };
}
