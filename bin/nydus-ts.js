#!/usr/bin/env node
// Launcher. Runs the compiled CLI from dist/ (`npm run build`, done by scripts/setup.sh) when it
// is at least as new as every source file: start-up is 0.07 s instead of 0.19 s through tsx.
// Otherwise (a fresh checkout, or sources edited since the build) it runs the TypeScript
// sources through tsx, so what runs is never older than the code.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function distIsFresh() {
  let built;
  try {
    built = fs.statSync(path.join(root, "dist", ".built")).mtimeMs;
  } catch {
    return false; // never built
  }
  const stack = [path.join(root, "src")];
  while (stack.length > 0) {
    const dir = stack.pop();
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && fs.statSync(p).mtimeMs > built) return false;
    }
  }
  return true;
}

if (process.env.NYDUS_TS_SOURCE !== "1" && distIsFresh()) {
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
}
