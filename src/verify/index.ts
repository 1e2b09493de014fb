export * from "./image_check.ts";
