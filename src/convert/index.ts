export * from "./convert.ts";
export * from "./push.ts";
export * from "./types.ts";
export * from "./layer_cache.ts";
export * from "./bootstrap_layer.ts";
export * from "./empty_layer.ts";
