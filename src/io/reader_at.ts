/**
 * Random access to bytes: files, in-memory buffers (and, later, HTTP ranges).
 */
import fs from "node:fs/promises";

/** The random-access primitive. `readAt` throws RangeError on a short read. */
export interface ReaderAt {
  readonly size: number;
  readAt(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** ReaderAt over bytes in memory. */
export function bytesReaderAt(bytes: Uint8Array): ReaderAt {
  return {
    size: bytes.length,
    async readAt(offset, length) {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new RangeError(`Cannot read ${length} bytes at ${offset}: size is ${bytes.length}`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** Opens a file as a ReaderAt; call `close()` when done. */
export async function fileReaderAt(path: string): Promise<ReaderAt & { close(): Promise<void> }> {
  const fh = await fs.open(path, "r");
  const { size } = await fh.stat();
  return {
    size,
    async readAt(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new RangeError(`Cannot read ${length} bytes at ${offset} of "${path}": size is ${size}`);
      }
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new RangeError(`Cannot read ${length} bytes at ${offset} of "${path}": unexpected end of file`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}
