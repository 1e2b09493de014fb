import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { UnsafePathError } from "../internal/errors.ts";
import { normalizeTarPath, resolvesInside, splitTarPath } from "./path.ts";

test("normalizeTarPath strips ./ and /, collapses . and empty segments", () => {
  const cases: [string, string][] = [
    ["./usr/bin/sh", "usr/bin/sh"],
    ["/etc/passwd", "etc/passwd"],
    ["//a//b/", "a/b"],
    ["a/./b/.", "a/b"],
    ["a/b/../c", "a/c"],
    ["./", ""],
    ["/", ""],
    [".", ""],
    ["a/..", ""],
    ["...", "..."],
    ["..a/b..", "..a/b.."],
  ];
  for (const [input, want] of cases) assert.equal(normalizeTarPath(input), want, input);
});

test("escaping, NUL and empty names are UnsafePathError", () => {
  for (const bad of ["../x", "..", "a/../../x", "/../etc", "./a/b/../../..", ""]) {
    assert.throws(() => normalizeTarPath(bad), UnsafePathError, JSON.stringify(bad));
  }
  assert.throws(() => splitTarPath(Uint8Array.of(0x61, 0x00, 0x62)), /NUL/);
  assert.throws(() => splitTarPath(new Uint8Array(0)), /empty/);
});

test("splitTarPath keeps raw (non-UTF-8) bytes", () => {
  const segs = splitTarPath(Uint8Array.of(0x2e, 0x2f, 0xff, 0x2f, 0x2e, 0x2f, 0x80, 0x81));
  assert.deepEqual(
    segs.map((s) => Buffer.from(s).toString("hex")),
    ["ff", "8081"],
  );
});

test("resolvesInside", () => {
  const root = "/tmp/rootfs";
  assert.equal(resolvesInside(root, "usr/lib/x", "../../etc/passwd"), true);
  assert.equal(resolvesInside(root, "usr/lib/x", "../../../etc/passwd"), false);
  assert.equal(resolvesInside(root, "a", "."), true);
  assert.equal(resolvesInside(root, "a", ".."), false);
  assert.equal(resolvesInside(root, "a", "/etc/passwd"), false);
  assert.equal(resolvesInside(root, "a", "/tmp/rootfs/etc"), true);
  assert.equal(resolvesInside(root, "a", "/tmp/rootfsX"), false);
  assert.equal(resolvesInside(root, "/abs/link", "../x"), true);
  assert.equal(resolvesInside("/", "a", "/anything"), true);
  assert.equal(resolvesInside(root, "a", Uint8Array.of(0x2e, 0x2e, 0x2f, 0x2e, 0x2e)), false);
  assert.throws(() => resolvesInside(root, "../a", "x"), UnsafePathError);
});
