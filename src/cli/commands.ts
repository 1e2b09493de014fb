/**
 * nydus-ts command line (loaded by main.ts). Thin: parses flags, builds option objects, calls
 * the library, prints the result (text or --json). Command names and flags follow upstream
 * `nydus-image` where it has them.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { json, lazyFlags, list, mountArguments, MOUNT_CACHE_HELP } from "./mount_command.ts";
import { reportError } from "./output.ts";

const program = new Command();
program
  .name("nydus-ts")
  .description("Build, convert, check, inspect, unpack and export Nydus (RAFS v6) images, and run them lazily: ls/cat/stat/cp without pulling, FUSE mount.")
  .version("0.1.0")
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) })
  .exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

/** Parses "1048576", "0x100000" or "1MiB"-free numbers; commander argParser. */
export function parseSize(value: string): number {
  const n = /^0x[0-9a-f]+$/i.test(value) ? parseInt(value, 16) : /^[0-9]+$/.test(value) ? parseInt(value, 10) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`"${value}" is not a number (decimal or 0x hex)`);
  return n;
}


program
  .command("create")
  .description("build a RAFS v6 bootstrap and a data blob from a tar layer (file, .tar.gz, or - for stdin) or a directory")
  .argument("<source>", "tar file, gzip'ed tar, '-' (stdin), or directory")
  .addOption(new Option("-t, --type <type>", "source type").choices(["tar", "dir", "tar-rafs", "dir-rafs", "targz-rafs"]).default("tar"))
  .requiredOption("-B, --bootstrap <file>", "bootstrap file to write")
  .requiredOption("-D, --blob-dir <dir>", "directory for the data blob (named by its blob id)")
  .addOption(new Option("-c, --compressor <name>", "chunk compressor").choices(["none", "lz4_block", "zstd"]).default("zstd"))
  .addOption(new Option("-d, --digester <name>", "chunk digest algorithm").choices(["blake3", "sha256"]).default("blake3"))
  .addOption(new Option("-S, --chunk-size <size>", "chunk size: power of two, 0x1000..0x1000000").argParser(parseSize).default(0x100000, "0x100000"))
  .option("-p, --parent-bootstrap <file>", "bootstrap of the lower layers: merge onto it and reuse its chunks")
  .option("-M, --chunk-dict <file>", "bootstrap whose chunks are referenced instead of stored again")
  .option("--prefetch-files <file>", "file listing absolute paths (one per line) for the prefetch table")
  .addOption(new Option("--features <list>", "comma-separated blob features").choices(["blob-toc"]))
  .option("--repeatable", "do not store uid/gid explicitly (upstream --repeatable)")
  .addOption(json())
  .action(async (source: string, opts) => {
    const { runCreate } = await import("./create.ts");
    await runCreate(source, opts).catch((e) => reportError(e, opts));
  });

program
  .command("merge")
  .description("merge layer bootstraps (bottom layer first) into one bootstrap, applying whiteouts")
  .argument("<bootstraps...>", "layer bootstraps, bottom first")
  .requiredOption("-B, --bootstrap <file>", "merged bootstrap to write")
  .option("--prefetch-files <file>", "file listing absolute paths (one per line) for the prefetch table")
  .addOption(json())
  .action(async (bootstraps: string[], opts) => {
    const { runMerge } = await import("./merge.ts");
    await runMerge(bootstraps, opts).catch((e) => reportError(e, opts));
  });

program
  .command("inspect")
  .description("show a bootstrap's superblock, blobs, tree and per-file chunks (v6 and v5)")
  .argument("<bootstrap>", "bootstrap file")
  .option("--path <path>", "only this path (a file shows its chunks)")
  .addOption(json())
  .action(async (bootstrap: string, opts) => {
    const { runInspect } = await import("./inspect.ts");
    await runInspect(bootstrap, opts).catch((e) => reportError(e, opts));
  });

program
  .command("check")
  .description("validate a bootstrap (and with --blob-dir every blob and chunk), or with --target a whole Nydus image (nydusify check)")
  .argument("[bootstrap]", "bootstrap file (local check)")
  .option("-D, --blob-dir <dir>", "directory holding the data blobs")
  .option("--target <ref>", "Nydus image to check: REF, oci:DIR[:TAG] or an archive")
  .option("--source <ref>", "the image it was converted from: compare configs and the files of both trees")
  .option("--platform <os/arch>", "platform to check in an index (default: the host's)")
  .option("--source-insecure", "skip TLS verification for the source registry")
  .option("--target-insecure", "skip TLS verification for the target registry")
  .option("--plain-http", "use plain HTTP for every registry")
  .option("--ca <file>", "extra trusted CA certificate (PEM); repeatable", (v: string, p: string[] = []) => [...p, v])
  .option("--creds <user:pass>", "registry credentials (default: ~/.docker/config.json)")
  .option("--work-dir <dir>", "where blobs are downloaded (default: a temporary directory, removed afterwards)")
  .addOption(json())
  .action(async (bootstrap: string | undefined, opts) => {
    if (opts.target) {
      const { runImageCheck } = await import("./image_check.ts");
      await runImageCheck(opts).catch((e) => reportError(e, opts));
      return;
    }
    const { runCheck } = await import("./check.ts");
    await runCheck(bootstrap, opts).catch((e) => reportError(e, opts));
  });

program
  .command("unpack")
  .description("extract the image's files into a directory or a tar file (never writes outside it)")
  .argument("<bootstrap>", "bootstrap file")
  .requiredOption("-D, --blob-dir <dir>", "directory holding the data blobs")
  .requiredOption("-o, --output <target>", "output directory, or a file ending in .tar")
  .addOption(json())
  .action(async (bootstrap: string, opts) => {
    const { runUnpack } = await import("./unpack.ts");
    await runUnpack(bootstrap, opts).catch((e) => reportError(e, opts));
  });

program
  .command("export")
  .description("write a single mountable EROFS block image (--block) or uncompressed blob-cache views (--cache-dir)")
  .argument("<bootstrap>", "bootstrap file")
  .requiredOption("-D, --blob-dir <dir>", "directory holding the data blobs")
  .option("--block <file>", "EROFS image with metadata and uncompressed data: mount -t erofs -o loop FILE MNT")
  .option("--cache-dir <dir>", "write <blob-id>.blob.data views for mount -o device=")
  .addOption(json())
  .action(async (bootstrap: string, opts) => {
    const { runExport } = await import("./export.ts");
    await runExport(bootstrap, opts).catch((e) => reportError(e, opts));
  });


program
  .command("convert")
  .description("convert an OCI/Docker image (registry, OCI layout, archive or stdin) into a Nydus image and push it")
  .requiredOption("--source <src>", "REF | docker://REF | oci:DIR[:TAG] | oci-archive:FILE[:TAG] | docker-archive:FILE[:NAME:TAG] | FILE | - (an OCI or Docker archive on stdin)")
  .option("--target <dst>", "REF (registry) or oci:DIR[:TAG] (OCI layout)")
  .option("--output <spec>", "BuildKit exporter syntax: type=nydus,name=REF[,registry.insecure=true][,oci-mediatypes=true][,merge-manifest=true] or type=nydus,dest=DIR")
  .option("--source-insecure", "skip TLS verification for the source registry")
  .option("--target-insecure", "skip TLS verification for the target registry (plain HTTP if it speaks only that)")
  .option("--plain-http", "use plain HTTP for every registry")
  .option("--ca <file>", "extra trusted CA certificate (PEM); repeatable", list)
  .option("--creds <user:pass>", "registry credentials for source and target (default: ~/.docker/config.json)")
  .option("--source-creds <user:pass>", "credentials for the source registry")
  .option("--target-creds <user:pass>", "credentials for the target registry")
  .option("--oci", "write OCI media types for a Docker source")
  .option("--merge-platform", "one index holding the original manifests and the Nydus ones (marked with the Nydus artifactType)")
  .option("--platform <list>", "platforms to convert from an index, e.g. linux/amd64,linux/arm64 (default: the host's)")
  .option("--all-platforms", "convert every platform of an index")
  .addOption(new Option("-c, --compressor <name>", "chunk compressor").choices(["none", "lz4_block", "zstd"]).default("zstd"))
  .addOption(new Option("-d, --digester <name>", "chunk digest algorithm").choices(["blake3", "sha256"]).default("blake3"))
  .addOption(new Option("--chunk-size, --fs-chunk-size <size>", "chunk size: power of two, 0x1000..0x1000000").argParser(parseSize).default(0x100000, "0x100000"))
  .addOption(new Option("--fs-version <n>", "RAFS version to write").choices(["5", "6"]).default("6"))
  .option("--chunk-dict <ref|file>", "reuse the chunks of a Nydus image (any --source form) or of a bootstrap file (blobs next to it)")
  .option("--build-cache <dir>", "layer cache directory: layers converted before are reused, not rebuilt")
  .option("--prefetch-patterns [file]", "absolute paths for the prefetch table, one per line, from FILE (or stdin)")
  .option("--output-json <file>", "also write the JSON result to FILE")
  .option("--work-dir <dir>", "directory for converted blobs before they are pushed (default: a temporary one, removed afterwards)")
  .addOption(new Option("--concurrency <n>", "layers converted at once").argParser((v) => parseSize(v)).default(2))
  .addOption(json())
  .addHelpText(
    "after",
    `
Examples:
  nydus-ts convert --source oci:./layout:v1 --target oci:./nydus-layout:v1
  nydus-ts convert --source localhost:5000/app:v1 --target localhost:5000/app:v1-nydus --plain-http
  buildctl build ... --output type=oci,dest=- | nydus-ts convert --source - --output type=nydus,name=localhost:5000/app,registry.insecure=true
  docker save app:v1 | nydus-ts convert --source - --target oci:./out:v1`,
  )
  .action(async (opts) => {
    // Layer workers load their modules while this thread loads the converter's.
    const { prewarmConvertWorkers } = await import("../convert/worker_pool.ts");
    prewarmConvertWorkers(opts.concurrency);
    const { runConvert } = await import("./convert.ts");
    // commander takes "--chunk-size, --fs-chunk-size" as short + long flag: both spellings land in `fsChunkSize`.
    await runConvert({ ...opts, chunkSize: opts.fsChunkSize }).catch((e) => reportError(e, opts));
  });

/** A lazy command (ls, cat, stat, cp, mount) with its registry, cache and mirror flags. */
function runtimeCommand(name: string, description: string, cacheDirHelp?: string): Command {
  return lazyFlags(program.command(name).description(description), cacheDirHelp);
}
const lazyIntro = "SOURCE is a registry REF or oci:DIR[:TAG] holding a Nydus image; only the bootstrap and the chunks read are fetched.";

runtimeCommand("ls", "list a directory of a Nydus image like ls -l, without pulling it (a file lists itself)")
  .argument("<source>", "REF | oci:DIR[:TAG]")
  .argument("[path]", "absolute path in the image", "/")
  .addHelpText("after", `\n${lazyIntro}\n\nExamples:\n  nydus-ts ls localhost:5000/app:v1-nydus /etc --plain-http\n  nydus-ts ls oci:./nydus-layout:v1 / --json`)
  .action(async (source: string, p: string, opts) => {
    const { runLs } = await import("./read.ts");
    await runLs(source, p, opts).catch((e) => reportError(e, opts));
  });

runtimeCommand("cat", "write a file of a Nydus image to stdout (read in ≤ 1 MiB pieces, verified chunk by chunk)")
  .argument("<source>", "REF | oci:DIR[:TAG]")
  .argument("<path>", "absolute path in the image (symlinks are followed inside the image)")
  .addHelpText("after", `\n${lazyIntro}\nWith --json the bytes are not printed; the JSON gives their size, SHA-256 and what was fetched.\n\nExamples:\n  nydus-ts cat localhost:5000/app:v1-nydus /etc/os-release --plain-http\n  nydus-ts cat localhost:5000/app:v1-nydus /bin/sh --plain-http --json`)
  .action(async (source: string, p: string, opts) => {
    const { runCat } = await import("./read.ts");
    await runCat(source, p, opts).catch((e) => reportError(e, opts));
  });

runtimeCommand("stat", "show every attribute of a path in a Nydus image: inode, mode, links, owners, size, times, device numbers, xattr names")
  .argument("<source>", "REF | oci:DIR[:TAG]")
  .argument("<path>", "absolute path in the image (a final symlink is not followed)")
  .addHelpText("after", `\n${lazyIntro}\n\nExamples:\n  nydus-ts stat localhost:5000/app:v1-nydus /etc/passwd --plain-http\n  nydus-ts stat oci:./nydus-layout:v1 /bin --json`)
  .action(async (source: string, p: string, opts) => {
    const { runStat } = await import("./read.ts");
    await runStat(source, p, opts).catch((e) => reportError(e, opts));
  });

runtimeCommand("cp", "copy a file or a directory tree out of a Nydus image, without pulling the rest (never writes outside DEST)")
  .argument("<source>", "REF | oci:DIR[:TAG]")
  .argument("<path>", "absolute path in the image")
  .argument("<dest>", "destination: a new name, or an existing directory to copy into")
  .addHelpText("after", `\n${lazyIntro}\nDirectories, regular files and symlinks are copied with modes, times (and owners as root); device nodes,\nfifos and sockets are skipped and listed; hard links become separate copies.\n\nExamples:\n  nydus-ts cp localhost:5000/app:v1-nydus /etc/os-release ./os-release --plain-http\n  nydus-ts cp localhost:5000/app:v1-nydus /etc ./etc-copy --plain-http --json`)
  .action(async (source: string, p: string, dest: string, opts) => {
    const { runCp } = await import("./cp.ts");
    await runCp(source, p, dest, opts).catch((e) => reportError(e, opts));
  });

mountArguments(runtimeCommand("mount", "mount a Nydus image read-only with FUSE, fetching chunks on demand (needs root and /dev/fuse)", MOUNT_CACHE_HELP))
  .addHelpText("after", `\n${lazyIntro}\nServes until 'nydus-ts umount MOUNTPOINT', an external umount, or SIGINT/SIGTERM (which unmount cleanly),\nthen prints the metrics (JSON with --json). While mounted, 'nydus-ts stats MOUNTPOINT' shows them live; the state file\nlives in $NYDUS_TS_RUN_DIR, else /run/nydus-ts when writable, else <tmpdir>/nydus-ts-run.\n\nExamples:\n  nydus-ts mount localhost:5000/app:v1-nydus /mnt/app --plain-http --daemon\n  nydus-ts mount localhost:5000/app:v1-nydus /mnt/app --plain-http --prefetch --cache-dir /var/cache/nydus &\n  nydus-ts mount app.example.com/app:v1 /mnt/app --mirror http://127.0.0.1:65001 --mirror-header "X-Dragonfly-Registry: https://app.example.com" --daemon`)
  .action(async (source: string, mountpoint: string, opts) => {
    // --server is main.ts's light client (serve_client.ts): it never gets here.
    if (opts.server) return reportError(new InvalidArgumentError("--server is handled before the command line is parsed; this is a bug"), opts);
    // --daemon is main.ts's light parent (it never gets here); anything else serves in this process.
    // The FUSE serving thread starts first, so that its start-up overlaps the loading of the runtime.
    const { startFuseServer } = await import("../fs/fuse/start.ts");
    let server;
    try {
      server = startFuseServer();
    } catch {
      // No /dev/fuse (or no permission): runMount reports it with the full context.
    }
    const { runMount } = await import("./mount.ts");
    await runMount(source, mountpoint, opts, server).catch((e: unknown) => reportError(e, opts));
  });

program
  .command("serve")
  .description("serve many FUSE mounts from one resident process (like nydusd's shared daemon): 'mount … --server SOCKET' asks it for one")
  .requiredOption("--socket <path>", "Unix socket to listen on (created mode 0600; a stale one is replaced)")
  .addOption(json())
  .addHelpText("after", `\nRuns in the foreground (start it with & or from a service manager) until SIGINT/SIGTERM, which unmount\nall its mounts. Each mount has its usual state file: 'nydus-ts stats' and 'nydus-ts umount' work as for any mount.\nRegistry credentials come from this process's ~/.docker/config.json or the mount's --creds.\n\nExamples:\n  nydus-ts serve --socket /run/nydus-ts.sock &\n  nydus-ts mount localhost:5000/app:v1-nydus /mnt/app --plain-http --server /run/nydus-ts.sock\n  nydus-ts umount /mnt/app`)
  .action(async (opts) => {
    const { runServe } = await import("./serve.ts");
    await runServe(opts).catch((e) => reportError(e, opts));
  });

program
  .command("umount")
  .description("unmount a nydus-ts mount and wait for its daemon to exit (prints its last metrics)")
  .argument("<mountpoint>", "the mounted directory")
  .option("-l, --lazy", "detach now even when busy (umount -l)")
  .option("--timeout <seconds>", "how long to wait for the daemon to exit", "30")
  .addOption(json())
  .addHelpText("after", `\nA mount whose daemon was killed is detached lazily and its stale state file removed.\n\nExamples:\n  nydus-ts umount /mnt/app\n  nydus-ts umount /mnt/app --lazy --json`)
  .action(async (mountpoint: string, opts) => {
    const { runUmount } = await import("./mount_ctl.ts");
    await runUmount(mountpoint, opts).catch((e) => reportError(e, opts));
  });

program
  .command("stats")
  .description("show the live metrics of a nydus-ts mount: bytes and requests fetched, cache hits and misses, verified chunks, per blob")
  .argument("<mountpoint>", "the mounted directory")
  .addOption(json())
  .addHelpText("after", `\nExamples:\n  nydus-ts stats /mnt/app\n  nydus-ts stats /mnt/app --json`)
  .action(async (mountpoint: string, opts) => {
    const { runStats } = await import("./mount_ctl.ts");
    await runStats(mountpoint, opts).catch((e) => reportError(e, opts));
  });

await program.parseAsync(process.argv);
