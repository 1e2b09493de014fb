import { ChunkSource } from "../local/chunk_source.ts";
import { unpackToDirectory, unpackToTar } from "../local/unpack.ts";
import { openRafs, walkRafs } from "../rafs/open.ts";
import type { RafsImage } from "../rafs/model.ts";
import { readInput } from "./files.ts";
import { emit, progress } from "./output.ts";

interface UnpackFlags {
  blobDir: string;
  output: string;
  json?: boolean;
}

/** Bytes of file data to write (each hardlinked inode once), for the progress bar. */
function dataBytes(image: RafsImage): number {
  const seen = new Set<number>();
  let total = 0;
  for (const { inode } of walkRafs(image)) {
    if (inode.kind !== "reg" || seen.has(inode.ino)) continue;
    seen.add(inode.ino);
    total += inode.size;
  }
  return total;
}

export async function runUnpack(bootstrap: string, flags: UnpackFlags): Promise<void> {
  const started = Date.now();
  const image = openRafs(await readInput(bootstrap, "bootstrap"));
  const toTar = flags.output.endsWith(".tar");
  const chunks = new ChunkSource(image, { blobDir: flags.blobDir });
  const bar = progress(flags, "unpack", flags.json || !process.stderr.isTTY ? undefined : dataBytes(image));
  try {
    const opts = { onProgress: (n: number) => bar.add(n) };
    const result = toTar ? await unpackToTar(image, chunks, flags.output, opts) : await unpackToDirectory(image, chunks, flags.output, opts);
    bar.stop();
    const seconds = (Date.now() - started) / 1000;
    const s = result.stats;
    emit(flags, { output: flags.output, format: toTar ? "tar" : "dir", version: image.superBlock.version, ...result, seconds }, () =>
      [
        `${toTar ? "tar" : "directory"} ${flags.output}: ${s.dirs} dirs, ${s.files} files (${s.bytes} bytes), ${s.hardlinks} hardlinks, ${s.symlinks} symlinks, ${s.specials} special files in ${seconds.toFixed(2)} s`,
        ...result.warnings.map((w) => `warning: ${w.path}: ${w.reason}`),
      ].join("\n"),
    );
  } finally {
    bar.stop();
    await chunks.close();
  }
}
