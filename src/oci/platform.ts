/**
 * Platforms: `os/arch[/variant]` strings, matching, and the host default.
 */
import type { ImageConfig, Platform } from "./types.ts";

/** Parses `linux/amd64`, `linux/arm64/v8`, `amd64` (os defaults to linux). */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().split("/");
  if (parts.length === 1 && parts[0]) return { os: "linux", architecture: normalizeArch(parts[0]) };
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new SyntaxError(`Cannot parse platform "${text}": expected os/arch[/variant]`);
  }
  const p: Platform = { os: parts[0]!, architecture: normalizeArch(parts[1]!) };
  if (parts[2]) p.variant = parts[2];
  return p;
}

function normalizeArch(a: string): string {
  if (a === "x86_64" || a === "x86-64") return "amd64";
  if (a === "aarch64") return "arm64";
  return a;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "unknown";
  return [p.os, p.architecture, p.variant].filter((s) => s).join("/");
}

/** The host platform as a Go toolchain would name it (`linux/amd64`, `linux/arm64`). */
export function hostPlatform(): Platform {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return { os: process.platform === "win32" ? "windows" : process.platform, architecture: map[process.arch] ?? process.arch };
}

/**
 * Whether `candidate` satisfies `wanted`: same os and architecture; a wanted variant must
 * match (arm64's `v8` equals no variant).
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (!wanted.variant) return true;
  const norm = (v: string | undefined) => (candidate.architecture === "arm64" && (v === "v8" || !v) ? "v8" : v);
  return norm(wanted.variant) === norm(candidate.variant);
}

/** The platform an image config declares (os, architecture, variant). */
export function configPlatform(config: Pick<ImageConfig, "os" | "architecture" | "variant">): Platform {
  const p: Platform = { os: config.os, architecture: config.architecture };
  if (config.variant) p.variant = config.variant;
  return p;
}
