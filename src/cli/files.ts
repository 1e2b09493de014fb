/** Small file helpers for commands: atomic writes and reading bootstraps and lists. */
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { NotFoundError } from "../internal/errors.ts";

/** Writes `data` to `file` through a temporary file and a rename, so a crash never leaves a partial file. */
export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomUUID()}`);
  try {
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** Reads a whole file (bootstraps are metadata); a missing file is a NotFoundError. */
export async function readInput(file: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await fs.promises.readFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError(`${what} "${file}"`, "no such file");
    throw err;
  }
}

/** Reads a path list: one absolute path per line; blank lines and # comments ignored. */
export async function readPathList(file: string): Promise<string[]> {
  const text = Buffer.from(await readInput(file, "path list")).toString("utf8");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}
