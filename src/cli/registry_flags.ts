/**
 * Registry flags shared by `convert` and `check`: plain HTTP, TLS verification, extra CAs,
 * and credentials from `--creds`, or from the Docker config file (`$DOCKER_CONFIG/config.json`,
 * else `~/.docker/config.json`).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { InvalidInputError } from "../internal/errors.ts";
import { credentialsFromDockerConfig } from "../remote/docker_config.ts";
import type { Credentials, RegistryOptions } from "../remote/options.ts";

export interface RegistryFlags {
  plainHttp?: boolean;
  ca?: string[];
  creds?: string;
}

/** `USER:PASS` → credentials. */
export function parseCreds(text: string, flag: string): Credentials {
  const i = text.indexOf(":");
  if (i <= 0) throw new InvalidInputError(`Cannot use ${flag}: expected USER:PASSWORD`);
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

function dockerConfig(): unknown {
  const dir = process.env.DOCKER_CONFIG ?? path.join(os.homedir(), ".docker");
  const file = path.join(dir, "config.json");
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new InvalidInputError(`Cannot read Docker credentials from "${file}": ${(err as Error).message}`, { cause: err });
  }
}

/** Registry options for one side (source or target). */
export function registryOptions(flags: RegistryFlags, side: { insecure?: boolean; creds?: string; flag: string }, signal?: AbortSignal): RegistryOptions {
  const explicit = side.creds ?? flags.creds;
  const creds = explicit ? parseCreds(explicit, side.creds ? side.flag : "--creds") : undefined;
  let config: unknown;
  let configRead = false;
  return {
    plainHttp: flags.plainHttp,
    insecure: side.insecure,
    ca: (flags.ca ?? []).map((f) => {
      try {
        return fs.readFileSync(f);
      } catch (err) {
        throw new InvalidInputError(`Cannot read CA certificate "${f}": ${(err as Error).message}`, { cause: err });
      }
    }),
    credentials: (registry) => {
      if (creds) return creds;
      if (!configRead) {
        config = dockerConfig();
        configRead = true;
      }
      return config === undefined ? undefined : credentialsFromDockerConfig(config, registry);
    },
    signal,
  };
}
