export * from "./media_type.ts";
export * from "./types.ts";
export * from "./store.ts";
export * from "./verify.ts";
export * from "./platform.ts";
