/** Read-only filesystem over a RAFS image (kernel-free) and its FUSE server. */
export { RafsFs, Errno, encodeDev, type FileDataReader, type FsAttr, type FsEntry, type FsDirEntry, type FsStatfs, type RafsFsOptions } from "./rafs_fs.ts";
export { fileReaderFromChunks, type ChunkFileReaderOptions } from "./chunk_reader.ts";
export { mountFuse, type FuseMount, type FuseStats, type MountFuseOptions } from "./fuse/server.ts";
export { startFuseServer, type FuseServer } from "./fuse/start.ts";
