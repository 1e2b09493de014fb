/**
 * Credentials from a parsed Docker `config.json` (`~/.docker/config.json` or `$DOCKER_CONFIG`).
 * The CLI reads the file; this module only looks the registry up.
 */
import type { Credentials } from "./options.ts";

const DOCKER_HUB_KEYS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

/** A config key (`https://index.docker.io/v1/`, `http://host:5000/v2/`, `host:5000`) reduced to its host. */
function keyHost(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//, "");
  const slash = k.indexOf("/");
  return slash >= 0 ? k.slice(0, slash) : k;
}

function sameRegistry(a: string, b: string): boolean {
  return a === b || (DOCKER_HUB_KEYS.has(a) && DOCKER_HUB_KEYS.has(b));
}

function entryCredentials(entry: Record<string, unknown>): Credentials | undefined {
  if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") return { identityToken: entry.identitytoken };
  if (typeof entry.registrytoken === "string" && entry.registrytoken !== "") return { registryToken: entry.registrytoken };
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const text = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  if (typeof entry.username === "string" && entry.username !== "" && typeof entry.password === "string") {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/**
 * Looks up the credentials for `registry` in a parsed Docker config: `auths` keyed by host or
 * URL (`https://index.docker.io/v1/` serves `docker.io`), with a base64 `auth` (`user:pass`),
 * `username`/`password`, or `identitytoken`. An exact key wins over a normalised match.
 * Credential helpers (`credsStore`, `credHelpers`) are not run.
 * @param json the parsed file (anything; malformed parts are ignored)
 * @param registry the registry name as in references, e.g. `docker.io`, `127.0.0.1:5000`
 * @returns credentials, or undefined when the config has none for this registry
 * @example credentialsFromDockerConfig({ auths: { "h:5000": { auth: btoa("u:p") } } }, "h:5000") // { username: "u", password: "p" }
 */
export function credentialsFromDockerConfig(json: unknown, registry: string): Credentials | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const auths = (json as Record<string, unknown>).auths;
  if (typeof auths !== "object" || auths === null) return undefined;
  const want = registry.toLowerCase();
  const entries = Object.entries(auths as Record<string, unknown>).filter(([, v]) => typeof v === "object" && v !== null) as [string, Record<string, unknown>][];
  const exact = entries.find(([k]) => k === registry);
  const ordered = exact ? [exact, ...entries] : entries;
  for (const [key, entry] of ordered) {
    if (!sameRegistry(keyHost(key), want)) continue;
    const creds = entryCredentials(entry);
    if (creds) return creds;
  }
  return undefined;
}
