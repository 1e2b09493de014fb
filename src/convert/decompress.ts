/**
 * Layer decompression by media type, streaming: gzip with node:zlib (1 MiB output
 * pieces), zstd through the `zstd` program (Node 20 has no streaming zstd), none as is.
 */
import { spawn } from "node:child_process";
import zlib from "node:zlib";
import { Readable } from "node:stream";
import { InvalidInputError } from "../internal/errors.ts";

export type LayerCompression = "gzip" | "zstd" | "none";

/** The uncompressed tar stream of a layer. Errors of `source` (e.g. a digest mismatch) propagate. */
export async function* decompressLayer(source: AsyncIterable<Uint8Array>, compression: LayerCompression, what: string): AsyncGenerator<Uint8Array> {
  if (compression === "none") {
    yield* source;
    return;
  }
  if (compression === "gzip") {
    const input = Readable.from(source, { objectMode: false });
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
    input.on("error", (err) => gunzip.destroy(err));
    try {
      yield* input.pipe(gunzip);
    } catch (err) {
      if (err instanceof Error && "errno" in err && (err as { code?: string }).code?.startsWith("Z_")) {
        throw new InvalidInputError(`Cannot decompress ${what}: not valid gzip (${err.message})`, { cause: err });
      }
      throw err;
    } finally {
      input.destroy();
    }
    return;
  }
  const child = spawn("zstd", ["-dcq"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", (err) => reject(new InvalidInputError(`Cannot decompress ${what}: the zstd program is needed for zstd layers (${err.message})`, { cause: err })));
    child.on("close", (code) => resolve(code ?? 1));
  });
  let feedError: unknown;
  const feeding = (async () => {
    try {
      for await (const piece of source) {
        if (!child.stdin.write(piece)) await new Promise((r) => child.stdin.once("drain", r));
      }
    } catch (err) {
      feedError = err;
      child.kill();
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on("error", () => {
    // EPIPE when zstd exits early; its exit status reports the problem.
  });
  try {
    yield* child.stdout;
    await feeding;
    const code = await exited;
    if (feedError) throw feedError;
    if (code !== 0) throw new InvalidInputError(`Cannot decompress ${what}: zstd failed (${stderr.trim() || `exit ${code}`})`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
