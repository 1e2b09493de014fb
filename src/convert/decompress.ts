/**
 * Layer decompression by media type, streaming: gzip with the native codec's igzip
 * (`tar/gzip.ts`), zstd through the `zstd` program (Node 20 has no streaming zstd), none as is.
 */
import { spawn } from "node:child_process";
import { InvalidInputError } from "../internal/errors.ts";
import { gunzip } from "../tar/gzip.ts";

export type LayerCompression = "gzip" | "zstd" | "none";

/** The uncompressed tar stream of a layer. Errors of `source` (e.g. a digest mismatch) propagate. */
export async function* decompressLayer(source: AsyncIterable<Uint8Array>, compression: LayerCompression, what: string): AsyncGenerator<Uint8Array> {
  if (compression === "none") {
    yield* source;
    return;
  }
  if (compression === "gzip") {
    yield* gunzip(source, what);
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
