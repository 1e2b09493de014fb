/**
 * `WWW-Authenticate` parsing (RFC 7235): `Basic realm="x"` and
 * `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"`.
 */

/** One authentication challenge; parameter names are lowercase. */
export interface Challenge {
  /** Lowercase scheme, e.g. `basic`, `bearer`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header into its challenges (quoted values may contain commas,
 * `\"` escapes are honoured).
 * @example parseChallenges('Bearer realm="https://a/t",scope="repository:x:pull,push"')
 * // [{ scheme: "bearer", params: { realm: "https://a/t", scope: "repository:x:pull,push" } }]
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !" \t,=\"".includes(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const word = token();
    if (word === "") {
      i++;
      continue;
    }
    skipWs();
    if (header[i] === "=" && current) {
      i++;
      skipWs();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
