export * from "./blob_path.ts";
export * from "./layout_files.ts";
export * from "./layout_source.ts";
export * from "./layout_sink.ts";
export * from "./read_blob.ts";
export * from "./select_entry.ts";
export * from "./write_atomic.ts";
