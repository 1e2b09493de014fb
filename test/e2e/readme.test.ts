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
