/** Paths used by tests: the project root and the upstream fixtures in ../shared. */
import path from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURES = path.resolve(PROJECT_ROOT, "..", "shared", "fixtures", "upstream");
/** Absolute path of an upstream fixture file (relative to shared/fixtures/upstream). */
export function fixture(rel: string): string {
  return path.join(FIXTURES, rel);
}
