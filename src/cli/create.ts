import fs from "node:fs";
import { buildLayer, type BuildSource } from "../builder/build.ts";
import type { BuildCompressor } from "../compression/codec.ts";
import type { DigesterName } from "../digest/hasher.ts";
import { InvalidInputError, NotFoundError } from "../internal/errors.ts";
import { openRafs } from "../rafs/open.ts";
import { maybeGunzip } from "../tar/gzip.ts";
import { writeFileAtomic, readInput, readPathList } from "./files.ts";
import { emit, progress } from "./output.ts";

interface CreateFlags {
  type: string;
  bootstrap: string;
  blobDir: string;
  compressor: BuildCompressor;
  digester: DigesterName;
  chunkSize: number;
  parentBootstrap?: string;
  chunkDict?: string;
  prefetchFiles?: string;
  features?: string;
  repeatable?: boolean;
  json?: boolean;
}

export async function runCreate(sourceArg: string, flags: CreateFlags): Promise<void> {
  const started = Date.now();
  const isDir = flags.type === "dir" || flags.type === "dir-rafs";
  let source: BuildSource;
  let total: number | undefined;
  if (isDir) {
    const st = await fs.promises.stat(sourceArg).catch(() => undefined);
    if (!st?.isDirectory()) throw new NotFoundError(`directory "${sourceArg}"`, st ? "not a directory" : "no such directory");
    source = { type: "dir", path: sourceArg };
  } else {
    let raw: AsyncIterable<Uint8Array>;
    if (sourceArg === "-") {
      raw = process.stdin;
    } else {
      const st = await fs.promises.stat(sourceArg).catch(() => undefined);
      if (!st?.isFile()) throw new NotFoundError(`tar file "${sourceArg}"`, st ? "not a regular file" : "no such file");
      total = st.size;
      raw = fs.createReadStream(sourceArg, { highWaterMark: 1 << 20 });
    }
    source = { type: "tar", stream: maybeGunzip(raw, sourceArg === "-" ? "stdin" : `"${sourceArg}"`) };
  }
  if (flags.features && flags.features !== "blob-toc") throw new InvalidInputError(`Cannot use feature "${flags.features}": expected blob-toc`);
  const bar = progress(flags, "create", total);
  try {
    const result = await buildLayer(source, {
      blobDir: flags.blobDir,
      compressor: flags.compressor,
      digester: flags.digester,
      chunkSize: flags.chunkSize,
      blobToc: flags.features === "blob-toc",
      explicitUidGid: !flags.repeatable,
      parent: flags.parentBootstrap ? openRafs(await readInput(flags.parentBootstrap, "parent bootstrap")) : undefined,
      chunkDicts: flags.chunkDict ? [openRafs(await readInput(flags.chunkDict, "chunk dictionary"))] : undefined,
      prefetchPaths: flags.prefetchFiles ? await readPathList(flags.prefetchFiles) : undefined,
      onProgress: (n) => bar.add(n),
    });
    bar.stop();
    await writeFileAtomic(flags.bootstrap, result.bootstrap);
    const out = {
      bootstrap: flags.bootstrap,
      bootstrapSize: result.bootstrap.length,
      blobId: result.blob?.blobId ?? null,
      blobSize: result.blob?.compressedSize ?? 0,
      blobs: result.blobs.map((b) => ({ blobId: b.blobId, compressedSize: b.compressedSize, uncompressedSize: b.uncompressedSize, chunkCount: b.chunkCount })),
      stats: result.stats,
      seconds: (Date.now() - started) / 1000,
    };
    emit(flags, out, () =>
      [
        `bootstrap ${flags.bootstrap} (${out.bootstrapSize} bytes)`,
        result.blob ? `blob ${result.blob.blobId} (${result.blob.compressedSize} bytes, ${result.blob.chunkCount} chunks)` : "no new blob (no new data)",
        `${result.stats.files} files, ${result.stats.bytes} bytes, ${result.stats.chunks} chunks (${result.stats.dedupedChunks} deduplicated) in ${out.seconds.toFixed(2)} s`,
      ].join("\n"),
    );
  } finally {
    bar.stop();
  }
}
