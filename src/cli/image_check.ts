/** `nydus-ts check --target IMAGE [--source IMAGE]`: the whole-image check (nydusify check). */
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { openSource, parseSource } from "../export/index.ts";
import { InvalidInputError } from "../internal/errors.ts";
import { parsePlatform } from "../oci/platform.ts";
import type { ImageSource } from "../oci/store.ts";
import { checkNydusImage } from "../verify/index.ts";
import { emit, multiProgress } from "./output.ts";
import { registryOptions, type RegistryFlags } from "./registry_flags.ts";

export interface ImageCheckFlags extends RegistryFlags {
  target: string;
  source?: string;
  platform?: string;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  workDir?: string;
  json?: boolean;
}

export async function runImageCheck(flags: ImageCheckFlags): Promise<void> {
  const started = Date.now();
  let platform;
  try {
    platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  } catch (err) {
    throw new InvalidInputError((err as Error).message);
  }
  const workDir = flags.workDir ? path.resolve(flags.workDir) : await fsp.mkdtemp(path.join(os.tmpdir(), "nydus-ts-check-"));
  const bars = multiProgress(flags);
  const opened: ImageSource[] = [];
  try {
    const target = await openSource(parseSource(flags.target), { registry: registryOptions(flags, { insecure: flags.targetInsecure, flag: "--creds" }), spoolDir: workDir });
    opened.push(target);
    let source: ImageSource | undefined;
    if (flags.source) {
      source = await openSource(parseSource(flags.source), { registry: registryOptions(flags, { insecure: flags.sourceInsecure, flag: "--creds" }), spoolDir: workDir, stdin: process.stdin });
      opened.push(source);
    }
    const report = await checkNydusImage(target, { workDir, platform, source, onProgress: (e) => bars.update(e) });
    bars.stop();
    emit(flags, { ok: true, ...report, seconds: (Date.now() - started) / 1000 }, () =>
      [
        `OK: ${report.target} manifest ${report.manifest}${report.platform ? ` (${report.platform.os}/${report.platform.architecture})` : ""}`,
        `manifest rule: ${report.layers} layers, Nydus media types, annotations and diff ids verified`,
        `bootstrap rule: RAFS v${report.bootstrap.version}, ${report.bootstrap.nodes} nodes, ${report.bootstrap.files} files; every blob it names is a layer`,
        ...report.bootstrap.blobs.map((b) => `blob ${b.blobId}: digest and ${b.chunks} chunk digests verified`),
        report.compared
          ? `filesystem rule: ${report.compared.entries} entries (${report.compared.files} files, ${report.compared.bytes} bytes) equal to ${report.compared.source}`
          : "filesystem rule: skipped (give --source to compare with the original image)",
      ].join("\n"),
    );
  } finally {
    bars.stop();
    for (const s of opened) await s.close?.().catch(() => undefined);
    if (!flags.workDir) await fsp.rm(workDir, { recursive: true, force: true });
  }
}
