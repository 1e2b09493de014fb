import { InvalidInputError } from "../internal/errors.ts";
import { checkImage } from "../local/check.ts";
import { openRafs } from "../rafs/open.ts";
import { readInput } from "./files.ts";
import { emit } from "./output.ts";

export async function runCheck(bootstrap: string | undefined, flags: { blobDir?: string; json?: boolean }): Promise<void> {
  if (!bootstrap) throw new InvalidInputError("Cannot check: give a bootstrap file, or --target IMAGE");
  const image = openRafs(await readInput(bootstrap, "bootstrap"));
  const report = await checkImage(image, { blobDir: flags.blobDir });
  emit(flags, { ok: true, ...report }, () =>
    [
      `OK: RAFS v${report.version}, ${report.nodes} nodes, ${report.files} regular files, ${report.chunks} distinct chunks`,
      ...report.blobs.map((b) => `blob ${b.blobId}: id, blob meta and ${b.chunks} chunk digests verified`),
      flags.blobDir ? "" : "(metadata only; pass --blob-dir to verify blobs and chunk data)",
    ]
      .filter(Boolean)
      .join("\n"),
  );
}
