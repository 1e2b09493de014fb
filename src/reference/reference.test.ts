import { test } from "node:test";
import assert from "node:assert/strict";
import { formatReference, parseReference, registryApiHost, withDigest, withTag } from "./reference.ts";

const D = `sha256:${"ab".repeat(32)}`;

test("docker-style normalisation", () => {
  assert.deepEqual(parseReference("busybox"), { registry: "docker.io", repository: "library/busybox", tag: "latest" });
  assert.deepEqual(parseReference("user/x"), { registry: "docker.io", repository: "user/x", tag: "latest" });
  assert.deepEqual(parseReference("docker.io/busybox:1"), { registry: "docker.io", repository: "library/busybox", tag: "1" });
  assert.deepEqual(parseReference("index.docker.io/user/x"), { registry: "docker.io", repository: "user/x", tag: "latest" });
  assert.deepEqual(parseReference("localhost/x"), { registry: "localhost", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("localhost:5000/x"), { registry: "localhost:5000", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("127.0.0.1:5055/a/b:t"), { registry: "127.0.0.1:5055", repository: "a/b", tag: "t" });
  assert.deepEqual(parseReference(`host.example/x@${D}`), { registry: "host.example", repository: "x", digest: D });
  assert.deepEqual(parseReference(`x:t@${D}`), { registry: "docker.io", repository: "library/x", tag: "t", digest: D });
  assert.deepEqual(parseReference("a.b/c/d_e__f-g.h:V1.2-x_y"), { registry: "a.b", repository: "c/d_e__f-g.h", tag: "V1.2-x_y" });
});

test("rejects malformed references", () => {
  for (const bad of ["", "Busybox", "user/X", "x:", "x:-bad", "x:t!", "/x", "x/", "a//b", "localhost:5000/", "x@sha256:abc", `x@md5:${"a".repeat(32)}`, "x:t:u", "x__-y", `x:${"a".repeat(129)}`]) {
    assert.throws(() => parseReference(bad), (e: unknown) => e instanceof SyntaxError && /^Cannot parse reference /.test(e.message), bad);
  }
});

test("format round-trips", () => {
  for (const t of ["docker.io/library/busybox:latest", "localhost:5000/a/b:t", `h.io/x:t@${D}`, `h.io/x@${D}`]) {
    assert.equal(formatReference(parseReference(t)), t);
  }
  assert.equal(formatReference(parseReference("busybox")), "docker.io/library/busybox:latest");
});

test("api host and helpers", () => {
  assert.equal(registryApiHost("docker.io"), "registry-1.docker.io");
  assert.equal(registryApiHost("localhost:5000"), "localhost:5000");
  const r = parseReference(`h.io/x:t@${D}`);
  assert.deepEqual(withTag(r, "u"), { registry: "h.io", repository: "x", tag: "u" });
  assert.deepEqual(withDigest(parseReference("h.io/x:t"), D), { registry: "h.io", repository: "x", tag: "t", digest: D });
  assert.throws(() => withTag(r, "bad tag"), SyntaxError);
});
