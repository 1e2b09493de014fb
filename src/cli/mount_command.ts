/**
 * The flags of the lazy commands and of `mount`, defined once: the command line (commands.ts)
 * declares its commands with them, and `nydus-ts serve` parses a client's `mount` arguments
 * with the very same definitions.
 */
import { Command, Option } from "commander";

/** `--json`, as every command spells it. */
export const json = (): Option => new Option("--json", "print a machine-readable JSON result on stdout");

/** Collects a repeatable option's values. */
export const list = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Registry, cache and mirror flags of the lazy commands (ls, cat, stat, cp, mount), and --json. */
export function lazyFlags(cmd: Command, cacheDirHelp = "blob cache directory (default: a temporary one, removed at exit)"): Command {
  return cmd
    .option("--cache-dir <dir>", cacheDirHelp)
    .option("--plain-http", "use plain HTTP for the registry")
    .option("--insecure", "skip TLS verification for the registry")
    .option("--ca <file>", "extra trusted CA certificate (PEM); repeatable", list)
    .option("--creds <user:pass>", "registry credentials (default: ~/.docker/config.json)")
    .option("--platform <os/arch>", "platform to pick from an index (default: the host's)")
    .option("--mirror <url>", "registry mirror tried before the origin, http(s)://HOST[:PORT]; repeatable, in order", list)
    .option("--mirror-header <header>", "\"Name: value\" sent to every mirror (e.g. X-Dragonfly-Registry); repeatable", list)
    .addOption(json());
}

/** Help text of mount's --cache-dir: its cache is kept. */
export const MOUNT_CACHE_HELP = "blob cache directory, kept across mounts (default: $XDG_CACHE_HOME/nydus-ts/cache or ~/.cache/nydus-ts/cache)";

/** `mount`'s arguments and own flags, on a command that has the lazy flags. */
export function mountArguments(cmd: Command): Command {
  return cmd
    .argument("<source>", "REF | oci:DIR[:TAG]")
    .argument("<mountpoint>", "existing directory")
    .option("--prefetch", "fetch the files of the image's prefetch table in the background, behind on-demand reads")
    .option("--prefetch-paths <p1,p2>", "prefetch these absolute paths (directories: their whole subtree) instead")
    .option("--daemon", "run detached (output to a log file in the run dir); return once the mount serves")
    .option("--server <socket>", "have a running 'nydus-ts serve --socket SOCKET' serve the mount (no process start); return once it serves");
}
