/**
 * Stores a converted image in a sink in an order that never lets a name point at
 * something missing: layer blobs, then configs, then child manifests, then the root
 * (with the tag). An interrupted push leaves at most unreferenced blobs, and a re-run
 * skips the blobs the sink already has.
 */
import type { ImageSink } from "../oci/store.ts";
import type { Descriptor } from "../oci/types.ts";
import type { ConvertResult, ProgressEvent } from "./types.ts";

export interface PushOptions {
  /** The tag to give the root (registry tag, or the OCI layout `ref.name`). */
  tag?: string;
  /** Source repository on the same registry, for cross-repository mounts of copied blobs. */
  mountFrom?: string;
  /** Blobs stored at once. @default 4 */
  concurrency?: number;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

export interface PushReport {
  /** Blobs uploaded (or mounted) / already present. */
  pushed: number;
  skipped: number;
  bytes: number;
}

const short = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12);

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

export async function pushImage(result: ConvertResult, sink: ImageSink, options: PushOptions = {}): Promise<PushReport> {
  const report: PushReport = { pushed: 0, skipped: 0, bytes: 0 };
  const queue = [...result.blobs];
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (queue.length > 0 && !failure) {
      const p = queue.shift()!;
      try {
        const id = short(p.desc.digest);
        if (await sink.hasBlob(p.desc, { signal: options.signal })) {
          report.skipped++;
          options.onProgress?.({ phase: "push", id, done: p.desc.size, total: p.desc.size, finished: true });
          continue;
        }
        await sink.pushBlob(p.desc, p.open, {
          signal: options.signal,
          mountFrom: p.fromSource ? options.mountFrom : undefined,
          builtFile: p.built ? p.file : undefined,
          onProgress: (sent) => options.onProgress?.({ phase: "push", id, done: Math.min(sent, p.desc.size), total: p.desc.size }),
        });
        options.onProgress?.({ phase: "push", id, done: p.desc.size, total: p.desc.size, finished: true });
        report.pushed++;
        report.bytes += p.desc.size;
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  if (failure) throw failure.error;

  const doc = (d: Descriptor) => {
    const bytes = result.documents.get(d.digest);
    if (!bytes) throw new RangeError(`Cannot push ${d.digest}: not among the converted documents`);
    return bytes;
  };
  for (const c of result.configs) {
    const bytes = doc(c);
    await sink.pushBlob(c, () => once(bytes), { signal: options.signal });
  }
  for (const m of result.children) await sink.pushManifest(m, doc(m), { signal: options.signal });
  await sink.pushManifest(result.root, doc(result.root), { signal: options.signal, tag: options.tag });
  return report;
}
