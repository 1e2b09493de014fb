export * from "./endpoint.ts";
export * from "./buildkit_output.ts";
export * from "./chunk_dict.ts";
export * from "./merge_manifest.ts";
export * from "./scheme_probe.ts";
