/**
 * Lazy runtime storage: blob backends, the verified on-disk blob cache, file reads, prefetch,
 * metrics, and opening a Nydus image from a registry or layout.
 */
export * from "./backend.ts";
export * from "./cache.ts";
export * from "./chunk_map.ts";
export * from "./image.ts";
export * from "./metrics.ts";
export * from "./prefetch.ts";
export * from "./reader.ts";
export * from "./slots.ts";
export * from "./verify.ts";
export * from "./shared_ready.ts";
export * from "./sync_reader.ts";
