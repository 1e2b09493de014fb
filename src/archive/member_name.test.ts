import { test } from "node:test";
import assert from "node:assert/strict";
import { UnsafePathError } from "../internal/errors.ts";
import { normalizeRepoTag } from "./docker_archive.ts";
import { linkTargetName, normalizeMemberName } from "./member_name.ts";

test("normalizeMemberName strips ./, empty parts and trailing slashes; refuses escapes", () => {
  assert.equal(normalizeMemberName("./blobs//sha256/ab"), "blobs/sha256/ab");
  assert.equal(normalizeMemberName("blobs/"), "blobs");
  assert.equal(normalizeMemberName("./"), "");
  assert.equal(normalizeMemberName("a..b/..c"), "a..b/..c");
  for (const bad of ["../x", "a/../../x", "a/..", "/etc/passwd", "a\0b"]) {
    assert.throws(() => normalizeMemberName(bad), UnsafePathError, bad);
  }
});

test("linkTargetName: symlinks relative to their directory, hardlinks to the root, never outside", () => {
  assert.equal(linkTargetName("id/layer.tar", "symlink", "../abc.tar"), "abc.tar");
  assert.equal(linkTargetName("id/layer.tar", "hardlink", "abc.tar"), "abc.tar");
  assert.equal(linkTargetName("a/b/l", "symlink", "./c/../d"), "a/b/d");
  assert.throws(() => linkTargetName("id/layer.tar", "symlink", "../../x"), UnsafePathError);
  assert.throws(() => linkTargetName("l", "hardlink", "../x"), UnsafePathError);
  assert.throws(() => linkTargetName("l", "symlink", "/etc/passwd"), UnsafePathError);
});

test("normalizeRepoTag makes docker save and skopeo spellings comparable", () => {
  assert.equal(normalizeRepoTag("busybox"), "busybox:latest");
  assert.equal(normalizeRepoTag("docker.io/library/busybox:1"), "busybox:1");
  assert.equal(normalizeRepoTag("docker.io/foo/bar:t"), "foo/bar:t");
  assert.equal(normalizeRepoTag("localhost:5000/x"), "localhost:5000/x:latest");
  assert.equal(normalizeRepoTag("localhost:5000/x:2"), "localhost:5000/x:2");
});
