export * from "./hasher.ts";
