/**
 * Bench input (c): a layer holding one large file (default 1536 MiB), written as a tar.
 * Content mixes incompressible (PRNG) and log-like text 64 KiB blocks, 1 random : 2 text,
 * and stamps a block counter into every block so that no two 1 MiB chunks are equal
 * (nothing deduplicates, every chunk is compressed and written).
 *
 * Usage: node --import tsx bench/gen_big_layer.ts OUT.tar|- [mib=1536] [seed=7]
 */
import fs from "node:fs";
import { TarWriter, prng } from "./tar_writer.ts";

const out = process.argv[2];
if (!out) throw new Error("usage: gen_big_layer.ts OUT.tar|- [mib] [seed]");
const mib = Number(process.argv[3] ?? 1536);
const seed = Number(process.argv[4] ?? 7);
const rnd = prng(seed);

const BLOCK = 64 << 10;
// 16 MiB of xorshift output and 16 MiB of log-like text to copy blocks from.
const randomPool = Buffer.alloc(16 << 20);
{
  const u32 = new Uint32Array(randomPool.buffer, randomPool.byteOffset, randomPool.length / 4);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < u32.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    u32[i] = x;
  }
}
const textPool = (() => {
  const levels = ["INFO", "DEBUG", "WARN", "ERROR"];
  const words = "request served cache miss hit upstream timeout retry connection closed opened user session token refreshed chunk blob layer image pulled pushed".split(" ");
  const lines: string[] = [];
  let n = 0;
  let t = 1700000000000;
  while (n < 16 << 20) {
    t += Math.floor(rnd() * 5000);
    const msg = Array.from({ length: 4 + Math.floor(rnd() * 10) }, () => words[Math.floor(rnd() * words.length)]).join(" ");
    const l = `${new Date(t).toISOString()} ${levels[Math.floor(rnd() * 4)]} [worker-${Math.floor(rnd() * 16)}] ${msg} id=${Math.floor(rnd() * 1e9).toString(16)}`;
    lines.push(l);
    n += l.length + 1;
  }
  return Buffer.from(lines.join("\n")).subarray(0, 16 << 20);
})();

const size = mib * 1048576;
const fd = out === "-" ? 1 : fs.openSync(out, "w");
const tar = new TarWriter(fd);
tar.add({ name: "data", type: "dir" });
tar.add({ name: "data/big.bin", type: "file", size, mode: 0o644 });
const piece = Buffer.alloc(1 << 20);
let block = 0;
for (let done = 0; done < size; done += piece.length) {
  for (let off = 0; off < piece.length; off += BLOCK, block++) {
    const pool = block % 3 === 0 ? randomPool : textPool;
    const src = Math.floor(rnd() * ((pool.length - BLOCK) / 64)) * 64;
    pool.copy(piece, off, src, src + BLOCK);
    piece.write(`#block ${block.toString(16).padStart(12, "0")}\n`, off, "latin1");
  }
  tar.body(piece);
}
tar.endBody(size);
tar.end();
if (out !== "-") fs.closeSync(fd);
