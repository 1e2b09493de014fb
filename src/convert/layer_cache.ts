/**
 * A local cache of converted layers, so that converting a second image that shares base
 * layers reuses their Nydus blobs instead of rebuilding them (`--build-cache DIR`).
 *
 * Layout: `blobs/sha256/<hex>` holds Nydus blob files (named by their digest, like an OCI
 * layout); `layers/<key>.json` maps a conversion key (source layer digest + every build
 * option that changes the output) to the blob digest, size and merge entry. Entries are
 * written after their blob (temp + rename), so a crash never leaves an entry without its blob.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { BlobInfo } from "../rafs/model.ts";

/** What a cached conversion recorded. */
export interface CachedLayer {
  /** Hex SHA-256 of the Nydus blob (its layer digest without `sha256:`). */
  digest: string;
  size: number;
  /** The blob's entry for a merged bootstrap; absent when the layer stored no chunk. */
  blob?: BlobInfo;
}

interface Record {
  version: 1;
  digest: string;
  size: number;
  blob?: Omit<BlobInfo, "tocDigest"> & { tocDigest: string };
}

export class LayerCache {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  /** The conversion key of a source layer under the given build parameters. */
  static key(sourceDigest: string, params: Readonly<globalThis.Record<string, unknown>>): string {
    return crypto.createHash("sha256").update(JSON.stringify({ sourceDigest, params })).digest("hex");
  }

  /** Where the cache keeps the blob with this hex digest. */
  blobPath(digest: string): string {
    return path.join(this.dir, "blobs", "sha256", digest);
  }

  /** The cached conversion for `key`, if its record and blob are both present and consistent. */
  async get(key: string): Promise<CachedLayer | undefined> {
    let rec: Record;
    try {
      rec = JSON.parse(await fsp.readFile(path.join(this.dir, "layers", `${key}.json`), "utf8")) as Record;
    } catch {
      // No record (or an unreadable one): a miss.
      return undefined;
    }
    if (rec.version !== 1 || !/^[0-9a-f]{64}$/.test(rec.digest)) return undefined;
    const st = await fsp.stat(this.blobPath(rec.digest)).catch(() => undefined);
    if (!st || st.size !== rec.size) return undefined;
    const blob = rec.blob ? { ...rec.blob, tocDigest: new Uint8Array(Buffer.from(rec.blob.tocDigest, "hex")) } : undefined;
    return { digest: rec.digest, size: rec.size, blob };
  }

  /** Stores a conversion: the blob file is linked (or copied) in, then the record written. */
  async put(key: string, blobFile: string, layer: CachedLayer): Promise<void> {
    const dest = this.blobPath(layer.digest);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.mkdir(path.join(this.dir, "layers"), { recursive: true });
    if (!fs.existsSync(dest)) {
      const tmp = `${dest}.tmp-${process.pid}-${crypto.randomUUID()}`;
      try {
        await fsp.link(blobFile, tmp);
      } catch {
        // Another file system (or links not allowed): copy instead.
        await fsp.copyFile(blobFile, tmp);
      }
      await fsp.rename(tmp, dest);
    }
    const rec: Record = {
      version: 1,
      digest: layer.digest,
      size: layer.size,
      blob: layer.blob ? { ...layer.blob, tocDigest: Buffer.from(layer.blob.tocDigest).toString("hex") } : undefined,
    };
    const file = path.join(this.dir, "layers", `${key}.json`);
    const tmp = `${file}.tmp-${process.pid}-${crypto.randomUUID()}`;
    await fsp.writeFile(tmp, JSON.stringify(rec));
    await fsp.rename(tmp, file);
  }
}
