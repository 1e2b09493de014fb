export * from "./reader_at.ts";
