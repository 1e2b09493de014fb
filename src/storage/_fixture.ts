/**
 * Test fixture (not shipped; `_` files are exempt from the import rules): a real Nydus image
 * converted from a hand-made OCI layout and stored as an OCI layout, with the expected bytes of
 * every regular file. 64 KiB chunks, so files span many chunks.
 */
import path from "node:path";
import { convertImage, pushImage, type ConvertResult } from "../convert/index.ts";
import { layoutSink, layoutSource } from "../layout/index.ts";
import { contentBytes, file, dir, random, repeat, text, type LayerSpec, type FileEntry } from "../../test/textures/spec.ts";
import { writeSourceLayout } from "../../test/support/images.ts";

export const CHUNK = 0x10000;

/** Two layers with distinct paths: random (stored uncompressed) and compressible files. */
export function fixtureLayers(scale = 1): LayerSpec[] {
  const a: LayerSpec = {
    entries: [
      dir("data"),
      file("data/big.bin", random(16 * CHUNK * scale + 123, 1)),
      file("data/small.txt", text("hello, lazy world\n")),
      file("data/empty", text("")),
      file("data/rep.bin", repeat(6 * CHUNK + 7, 4096, 2)),
    ],
  };
  const many: FileEntry[] = [];
  for (let i = 0; i < 12 * scale; i++) many.push(file(`many/f${i}`, random(CHUNK / 2 + i * 1000, 100 + i)));
  const b: LayerSpec = {
    entries: [
      dir("etc"),
      file("etc/passwd", text("root:x:0:0:root:/root:/bin/sh\n".repeat(300))),
      file("etc/blob2.bin", random(3 * CHUNK + 5, 9)),
      dir("many"),
      ...many,
    ],
  };
  return [a, b];
}

/** Path ("/data/big.bin") → expected bytes, for every regular file of the layers. */
export function expectedFiles(layers: LayerSpec[]): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const l of layers) for (const e of l.entries) if (e.type === "file") out.set(`/${e.path}`, contentBytes(e.content));
  return out;
}

export interface Fixture {
  /** Source OCI layout (tag v1), not Nydus. */
  source: string;
  /** Nydus OCI layout (tag nydus). */
  nydus: string;
  result: ConvertResult;
  files: Map<string, Uint8Array>;
}

/** Builds the fixture under `work`. */
export async function buildFixture(work: string, scale = 1): Promise<Fixture> {
  const layers = fixtureLayers(scale);
  const source = path.join(work, "src");
  const nydus = path.join(work, "nydus");
  await writeSourceLayout(source, "v1", [{ layers }]);
  const result = await convertImage(layoutSource(source, { tag: "v1" }), { workDir: path.join(work, "convert"), chunkSize: CHUNK, mergePlatform: false, workers: false });
  await pushImage(result, layoutSink(nydus, { tag: "nydus" }), { tag: "nydus" });
  return { source, nydus, result, files: expectedFiles(layers) };
}
