export * from "./reader.ts";
export * from "./whiteout.ts";
