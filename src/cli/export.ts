import { exportBlock, exportCacheViews, type BlockExportResult, type ExportedView } from "../local/export.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { openRafs } from "../rafs/open.ts";
import { readInput } from "./files.ts";
import { emit, progress } from "./output.ts";

interface ExportFlags {
  blobDir: string;
  block?: string;
  cacheDir?: string;
  json?: boolean;
}

export async function runExport(bootstrap: string, flags: ExportFlags): Promise<void> {
  if (!flags.block && !flags.cacheDir) throw new InvalidInputError("Cannot export: give --block FILE and/or --cache-dir DIR");
  const started = Date.now();
  const bytes = await readInput(bootstrap, "bootstrap");
  const image = openRafs(bytes);
  const total = image.blobs.reduce((s, b) => s + b.uncompressedSize, 0) * (flags.block && flags.cacheDir ? 2 : 1);
  const bar = progress(flags, "export", total);
  let block: BlockExportResult | undefined;
  let views: ExportedView[] | undefined;
  try {
    const opts = { onProgress: (n: number) => bar.add(n) };
    if (flags.block) block = await exportBlock(image, bytes, flags.blobDir, flags.block, opts);
    if (flags.cacheDir) views = await exportCacheViews(image, flags.blobDir, flags.cacheDir, opts);
  } finally {
    bar.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  emit(flags, { block: block ?? null, cacheViews: views ?? null, seconds }, () => {
    const lines: string[] = [];
    if (block) {
      lines.push(`block image ${block.path} (${block.size} bytes, ${block.blobs.length} blobs${block.relocated ? ", device slots relocated" : ""})`);
      for (const b of block.blobs) lines.push(`  blob ${b.blobId} at block ${b.mappedBlkaddr} (${b.blocks} blocks)`);
      lines.push(`  mount -t erofs -o ro,loop ${block.path} MOUNTPOINT`);
    }
    for (const v of views ?? []) lines.push(`cache view ${v.path} (${v.size} bytes, ${v.verifiedChunks} chunks verified)`);
    lines.push(`done in ${seconds.toFixed(2)} s`);
    return lines.join("\n");
  });
}
