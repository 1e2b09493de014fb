/**
 * The README's "Run lazily" block runs as written (bash -e) against a docker-registry on
 * loopback (for localhost:5000) in a private directory (for /tmp/nr), as root with /dev/fuse.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "../support/paths.ts";
import { startRegistry } from "../support/registry.ts";
import { makeTempDir, mountsUnder, removeTree } from "../support/tmp.ts";
import { runtimeSkip } from "./runtime_helpers.ts";

test("README 'Run lazily' block runs as written", { skip: runtimeSkip(), timeout: 180_000 }, async () => {
  const readme = fs.readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8");
  const block = /```bash\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf("## Run lazily")))?.[1];
  assert.ok(block && block.includes("/tmp/nr") && block.includes("localhost:5000") && block.includes("umount"), "the block works in /tmp/nr against localhost:5000");
  const dir = await makeTempDir({ prefix: "nydus-readme-lazy-" });
  const reg = await startRegistry();
  try {
    const script = block.replaceAll("/tmp/nr", path.join(dir, "nr")).replaceAll("localhost:5000", reg.host);
    const env = { ...process.env, NYDUS_TS_RUN_DIR: path.join(dir, "run"), DOCKER_CONFIG: path.join(dir, "docker") };
    const out = execFileSync("bash", ["-e", "-c", script], { cwd: PROJECT_ROOT, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.match(out, /-rwxr-xr-x +1 +0 +0 +42 .* hello/, "ls");
    assert.match(out, /File: \/etc\/passwd/, "stat");
    assert.match(out, /"sha256": "[0-9a-f]{64}"/, "cat --json");
    assert.equal(fs.readFileSync(path.join(dir, "nr", "etc", "passwd"), "utf8").length, 30, "cp");
    assert.match(out, /mounted .*mnt \(daemon pid \d+/, "mount --daemon");
    assert.match(out, /chunks: \d+ cache hits/, "stats");
    assert.match(out, /unmounted .*mnt \(umount\); daemon pid \d+: exited/, "umount");
    assert.deepEqual(mountsUnder(dir), []);
  } finally {
    await reg.stop();
    await removeTree(dir);
  }
});
