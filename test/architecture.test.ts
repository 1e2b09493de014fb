/**
 * Keeps the layers pointing one way (docs/ARCHITECTURE.md): every non-test source file
 * may import only the folders listed for its own folder, and only `cli/` reads the
 * environment. Like go-containerregistry's depcheck test.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "./support/paths.ts";

/** folder → folders (or single files "folder/file.ts") it may import. */
const ALLOWED: Record<string, readonly string[]> = {
  internal: [],
  digest: ["internal"],
  compression: ["internal"],
  io: ["internal"],
  tar: ["internal"],
  // The shared in-memory model is types only; the format codecs use its FileKind/BlobInfo.
  erofs: ["internal", "rafs/model.ts"],
  blob: ["internal", "compression", "digest", "io", "rafs/model.ts"],
  rafs: ["internal", "erofs", "digest", "compression", "io"],
  builder: ["internal", "rafs", "blob", "erofs", "tar", "digest", "compression", "io"],
  local: ["internal", "rafs", "blob", "builder", "compression", "digest", "io", "tar"],
  oci: ["internal"],
  reference: ["internal"],
  remote: ["internal", "oci", "reference", "io", "digest"],
  layout: ["internal", "oci", "io", "digest", "tar"],
  archive: ["internal", "oci", "io", "digest", "tar", "layout"],
  convert: ["internal", "oci", "builder", "rafs", "blob", "tar", "compression", "digest", "io", "local"],
  export: ["internal", "oci", "reference", "remote", "layout", "archive", "convert", "rafs"],
  verify: ["internal", "oci", "convert", "local", "rafs", "blob", "builder", "tar", "digest", "io", "compression"],
  storage: ["internal", "rafs", "blob", "compression", "digest", "io", "oci", "reference", "remote", "layout", "convert/bootstrap_layer.ts"],
  fs: ["internal", "rafs", "storage", "io"],
  cli: ["*"],
};

const SRC = path.join(PROJECT_ROOT, "src");
const isSource = (f: string) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !path.basename(f).startsWith("_");

test("imports point one way", () => {
  const problems: string[] = [];
  for (const folder of fs.readdirSync(SRC)) {
    const allowed = ALLOWED[folder];
    if (!allowed) {
      problems.push(`src/${folder}: folder missing from the import rules (add it to ALLOWED and docs/ARCHITECTURE.md)`);
      continue;
    }
    for (const file of fs.readdirSync(path.join(SRC, folder), { recursive: true }) as string[]) {
      if (!isSource(file)) continue;
      const text = fs.readFileSync(path.join(SRC, folder, file), "utf8");
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        const spec = m[1]!;
        if (!spec.startsWith(".")) continue;
        const target = path.relative(SRC, path.resolve(path.join(SRC, folder, path.dirname(file)), spec));
        if (target.startsWith("..")) {
          problems.push(`src/${folder}/${file}: imports "${spec}" from outside src/`);
          continue;
        }
        const [targetFolder] = target.split(path.sep);
        if (targetFolder === folder || allowed.includes("*")) continue;
        if (!allowed.includes(targetFolder!) && !allowed.includes(target.split(path.sep).join("/"))) {
          problems.push(`src/${folder}/${file}: may not import "${spec}" (${folder} → ${targetFolder})`);
        }
      }
      if (folder !== "cli" && /process\.env/.test(text)) problems.push(`src/${folder}/${file}: reads process.env (only cli/ may)`);
    }
  }
  assert.deepEqual(problems, []);
});

