export * from "./archive_source.ts";
export * from "./docker_archive.ts";
export * from "./member_name.ts";
export * from "./spool.ts";
