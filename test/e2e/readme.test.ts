/**
 * The README's usage block runs as written (top to bottom, `bash -e`), in a private
 * directory instead of /tmp/nt. It mounts with the kernel, so it needs root.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "../support/paths.ts";
import { canMount, haveErofsUtils, skipReason } from "../support/oracles.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

test("README usage block runs as written", { skip: skipReason(haveErofsUtils(), canMount()) }, async () => {
  const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
  const usage = readme.slice(readme.indexOf("## Usage"));
  const block = /```bash\n([\s\S]*?)```/.exec(usage)?.[1];
  assert.ok(block && block.includes("/tmp/nt"), "the usage block works in /tmp/nt");
  const dir = await makeTempDir({ prefix: "nydus-readme-" });
  try {
    const script = block.replaceAll("/tmp/nt", path.join(dir, "nt"));
    const out = execFileSync("bash", ["-e", "-c", script], { cwd: PROJECT_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.match(out, /upper layer/, "the mounted image shows the upper layer's file");
    assert.deepEqual(fs.readdirSync(path.join(dir, "nt", "rootfs", "etc")).sort(), ["motd", "os-release"], "the whiteout removed /etc/passwd");
  } finally {
    await removeTree(dir);
  }
});

test("README convert block runs as written (against a docker-registry on loopback)", async () => {
  const { startRegistry } = await import("../support/registry.ts");
  const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Converting images"));
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block && block.includes("/tmp/nc") && block.includes("localhost:5000"), "the convert block works in /tmp/nc against localhost:5000");
  const dir = await makeTempDir({ prefix: "nydus-readme-convert-" });
  const reg = await startRegistry();
  try {
    const script = block.replaceAll("/tmp/nc", path.join(dir, "nc")).replaceAll("localhost:5000", reg.host);
    const out = execFileSync("bash", ["-e", "-c", script], { cwd: PROJECT_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.match(out, /filesystem rule: \d+ entries .* equal to oci:examples\/oci-image:v1/);
    const checkJson = JSON.parse(out.slice(out.indexOf("{\n"), out.indexOf("\n}\n") + 2));
    assert.equal(checkJson.ok, true);
    assert.ok(checkJson.compared.files > 0);
    const fromDocker = JSON.parse(fs.readFileSync(path.join(dir, "nc", "from-docker", "index.json"), "utf8"));
    assert.equal(fromDocker.manifests[0].mediaType, "application/vnd.oci.image.manifest.v1+json");
    for (const tag of ["v1-nydus", "v1-merged", "built"]) {
      const r = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/demo:${tag}`], { encoding: "utf8" });
      assert.ok(r.includes("nydus"), tag);
    }
  } finally {
    await reg.stop();
    await removeTree(dir);
  }
});
