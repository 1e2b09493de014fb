/**
 * Bench-only: a minimal streaming ustar writer for generated inputs (regular files,
 * directories, symlinks, hardlinks). Long names use the ustar prefix field, or a PAX
 * `path` record when they do not fit. Writes synchronously to a file descriptor in
 * large batches so that generating a few hundred MB stays cheap.
 */
import fs from "node:fs";

export interface TarMember {
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink";
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  /** File body (type "file"). */
  data?: Uint8Array;
  /** Body size when the body is written later with {@link TarWriter.body} (type "file"). */
  size?: number;
}

const TYPEFLAG: Record<TarMember["type"], string> = { file: "0", dir: "5", symlink: "2", hardlink: "1" };

function octal(h: Buffer, off: number, len: number, value: number): void {
  h.write(value.toString(8).padStart(len - 1, "0") + "\0", off, len, "latin1");
}

function header(name: string, prefix: string, m: TarMember, typeflag: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  octal(h, 100, 8, m.mode ?? (m.type === "dir" ? 0o755 : 0o644));
  octal(h, 108, 8, m.uid ?? 0);
  octal(h, 116, 8, m.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, m.mtime ?? 1700000000);
  h.write(typeflag, 156, 1, "latin1");
  if (m.linkname) h.write(m.linkname, 157, 100, "utf8");
  h.write("ustar\u000000", 257, 8, "latin1");
  if (prefix) h.write(prefix, 345, 155, "utf8");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return h;
}

function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, "utf8");
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Splits a path into ustar (prefix, name), or undefined when it does not fit. */
function splitName(path: string): [string, string] | undefined {
  if (Buffer.byteLength(path) <= 100) return ["", path];
  for (let i = path.indexOf("/"); i > 0; i = path.indexOf("/", i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [prefix, name];
  }
  return undefined;
}

export class TarWriter {
  private parts: Buffer[] = [];
  private pending = 0;
  bytesWritten = 0;

  constructor(private readonly fd: number) {}

  private push(b: Buffer | Uint8Array): void {
    this.parts.push(b instanceof Buffer ? b : Buffer.from(b.buffer, b.byteOffset, b.length));
    this.pending += b.length;
    if (this.pending >= 4 << 20) this.flush();
  }

  flush(): void {
    if (this.pending === 0) return;
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.pending);
    let off = 0;
    while (off < all.length) off += fs.writeSync(this.fd, all, off, all.length - off);
    this.bytesWritten += all.length;
    this.parts = [];
    this.pending = 0;
  }

  /** Adds a member; for a file without `data`, call {@link body} with exactly `size` bytes next. */
  add(m: TarMember): void {
    const size = m.type === "file" ? (m.data?.length ?? m.size ?? 0) : 0;
    const path = m.type === "dir" && !m.name.endsWith("/") ? m.name + "/" : m.name;
    let split = splitName(path);
    if (!split) {
      const pax = paxRecord("path", path);
      this.push(header("PaxHeaders/x", "", { name: "", type: "file" }, "x", pax.length));
      this.pad(pax);
      split = ["", path.slice(0, 100)];
    }
    this.push(header(split[1], split[0], m, TYPEFLAG[m.type], size));
    if (m.data) this.pad(m.data);
  }

  private pad(data: Uint8Array): void {
    this.push(data);
    const rem = data.length % 512;
    if (rem) this.push(Buffer.alloc(512 - rem));
  }

  /** Streams part of a file body (written at once, so the caller may reuse `piece`); call {@link endBody} afterwards. */
  body(piece: Uint8Array): void {
    this.push(piece);
    this.flush();
  }

  endBody(size: number): void {
    const rem = size % 512;
    if (rem) this.push(Buffer.alloc(512 - rem));
  }

  /** Writes the two zero blocks and flushes. */
  end(): void {
    this.push(Buffer.alloc(1024));
    this.flush();
  }
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
