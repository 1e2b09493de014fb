/**
 * Child process of crash.test.ts: reads every file of the fixture image through a blob cache in
 * `argv[3]`, in a seeded random order and in small pieces, one chunk per request, printing
 * "ready" once it starts and "done" at the end. The parent SIGKILLs it at random moments.
 * argv: [node, script, nydusLayout, cacheDir, seed]
 */
import { layoutSource } from "../layout/index.ts";
import { Prng } from "../../test/support/fuzz.ts";
import { localBackend } from "./backend.ts";
import { BlobCache } from "./cache.ts";
import { openNydusImage } from "./image.ts";
import { FileReader } from "./reader.ts";
import { walkRafs } from "../rafs/open.ts";

const [, , layout, cacheDir, seedText] = process.argv;
const img = await openNydusImage(layoutSource(layout!, { tag: "nydus" }));
const cache = new BlobCache({ dir: cacheDir!, backend: localBackend(layout!), image: img.image, mergeLimit: 1, maxInFlight: 4 });
const reader = new FileReader(img.image, cache);
const files = [...walkRafs(img.image)].filter((e) => e.inode.kind === "reg").map((e) => e.inode);
const prng = new Prng(Number(seedText));
for (let i = files.length - 1; i > 0; i--) {
  const j = prng.int(i + 1);
  [files[i], files[j]] = [files[j]!, files[i]!];
}
process.stdout.write("ready\n");
await Promise.all(
  [0, 1, 2, 3].map(async (w) => {
    for (let k = w; k < files.length; k += 4) {
      const f = files[k]!;
      for (let off = 0; off < f.size; off += 20_000) await reader.read(f, off, 20_000);
    }
  }),
);
await cache.close();
process.stdout.write("done\n");
