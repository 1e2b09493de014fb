/**
 * Progress bars: drawn on stderr when it is a terminal, silent with --json (the CLI's output
 * convention, cli/output.ts). The terminal is a real pseudo-terminal from util-linux `script`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { file, random, text } from "../textures/spec.ts";
import { writeSourceLayout } from "../support/images.ts";
import { PROJECT_ROOT } from "../support/paths.ts";
import { makeTempDir, removeTree } from "../support/tmp.ts";

let work: string;
let src: string;
const hasScript = spawnSync("script", ["--version"]).status === 0;

before(async () => {
  work = await makeTempDir({ prefix: "nydus-ts-progress-" });
  src = path.join(work, "src");
  await writeSourceLayout(src, "v1", [{ layers: [{ name: "l1", entries: [file("a.bin", random(3_000_000, 7)), file("b.txt", text("b\n"))] }] }]);
});
after(() => removeTree(work));

/** Runs `nydus-ts ARGS` with stdout and stderr on a pseudo-terminal; returns what the terminal showed. */
function onTerminal(args: string[]): string {
  const cli = [process.execPath, path.join(PROJECT_ROOT, "bin", "nydus-ts.js"), ...args].map((a) => `'${a}'`).join(" ");
  return execFileSync("script", ["-qefc", cli, "/dev/null"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

test("convert draws per-layer progress bars on a terminal, and none with --json", { skip: hasScript ? false : "util-linux script is not installed" }, () => {
  const shown = onTerminal(["convert", "--source", `oci:${src}:v1`, "--target", `oci:${path.join(work, "dst1")}:v1`]);
  assert.match(shown, /\[[\u2588\u2591]+\] 100% [\d.]+\/[\d.]+ MiB/, `a finished bar in:\n${shown}`);
  const quiet = onTerminal(["convert", "--json", "--source", `oci:${src}:v1`, "--target", `oci:${path.join(work, "dst2")}:v1`]);
  assert.doesNotMatch(quiet, /MiB/);
  const result = JSON.parse(quiet.replace(/\r\n/g, "\n")) as { targets: { digest: string }[] };
  assert.match(result.targets[0]!.digest, /^sha256:[0-9a-f]{64}$/);
});
