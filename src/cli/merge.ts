import { mergeBootstraps } from "../builder/merge.ts";
import { openRafs } from "../rafs/open.ts";
import { readInput, readPathList, writeFileAtomic } from "./files.ts";
import { emit } from "./output.ts";

export async function runMerge(inputs: string[], flags: { bootstrap: string; prefetchFiles?: string; json?: boolean }): Promise<void> {
  const layers = [];
  for (const f of inputs) layers.push(openRafs(await readInput(f, "bootstrap")));
  const result = mergeBootstraps(layers, { prefetchPaths: flags.prefetchFiles ? await readPathList(flags.prefetchFiles) : undefined });
  await writeFileAtomic(flags.bootstrap, result.bootstrap);
  emit(flags, { bootstrap: flags.bootstrap, bootstrapSize: result.bootstrap.length, blobs: result.blobs.map((b) => b.blobId) }, () =>
    [`bootstrap ${flags.bootstrap} (${result.bootstrap.length} bytes) from ${inputs.length} layers`, ...result.blobs.map((b, i) => `blob ${i}: ${b.blobId}`)].join("\n"),
  );
}
