/**
 * Seeded fuzzing of the tar parser: truncations, bit flips and huge numbers written into
 * real archives (ustar, GNU long names, PAX with binary xattrs, hardlinks, devices).
 * Reading every entry and draining every body may only throw InvalidInputError, and
 * must finish: every iteration runs under a time limit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { InvalidInputError } from "../internal/errors.ts";
import { fixture } from "../../test/support/paths.ts";
import { fuzzDecoder } from "../../test/support/fuzz.ts";
import { tarBytes } from "../../test/textures/generate.ts";
import { chr, dir, file, hardlink, random, symlink, text } from "../../test/textures/spec.ts";
import { readTar } from "./reader.ts";

/** Reads the whole archive in small pieces (so headers straddle pieces), draining bodies. */
async function readAll(bytes: Uint8Array): Promise<number> {
  async function* pieces() {
    for (let off = 0; off < bytes.length; off += 700) yield bytes.subarray(off, off + 700);
  }
  let total = 0;
  for await (const e of readTar(pieces())) for await (const b of e.body) total += b.length;
  return total;
}

/** Fails the iteration instead of hanging the suite. */
async function withinTime(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`readTar did not finish within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const capability = new Uint8Array([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const archives: [string, Uint8Array][] = [
  ["upstream all-entry-type.tar", new Uint8Array(fs.readFileSync(fixture("all-entry-type.tar")))],
  [
    "PAX texture",
    tarBytes({
      name: "fuzz",
      entries: [
        dir("d", { xattrs: { "user.a": "1" } }),
        file(`d/${"n".repeat(150)}`, random(3000, 1), { xattrs: { "security.capability": capability } }),
        file("d/t", text("hello\n"), { mtime: 1_700_000_000 }),
        hardlink("d/h", "d/t"),
        symlink("d/s", "x".repeat(200)),
        chr("d/c", 1, 3),
      ],
    }),
  ],
  ["GNU long names", tarBytes({ name: "gnu", entries: [file(`${"g".repeat(130)}/f`, random(1500, 2))] }, { longNames: "gnu" })],
];

for (const [name, bytes] of archives) {
  test(`fuzz: ${name}`, async () => {
    assert.ok((await readAll(bytes)) >= 0, "the unmutated archive reads cleanly");
    const stats = await fuzzDecoder(bytes, (b) => withinTime(readAll(b), 2000), {
      iterations: 1500,
      seed: name.length,
      allowed: [InvalidInputError],
      maxStack: 3,
    });
    assert.ok((stats.rejected.InvalidInputError ?? 0) > 0, "some mutations must be rejected, or the fuzz tests nothing");
  });
}
