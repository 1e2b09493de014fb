export * from "./format.ts";
export * from "./writer.ts";
export * from "./reader.ts";
