import { test } from "node:test";
import assert from "node:assert/strict";
import { parseChallenges } from "./challenge.ts";
import { credentialsFromDockerConfig } from "./docker_config.ts";
import { parseErrorBody, parseRetryAfter, statusError } from "./errors.ts";
import { withDigestParam } from "./upload.ts";

test("WWW-Authenticate: Basic and Bearer with quoted commas", () => {
  assert.deepEqual(parseChallenges('Basic realm="basic-realm"'), [{ scheme: "basic", params: { realm: "basic-realm" } }]);
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.io/token",service="registry.io",scope="repository:a/b:pull,push"'), [
    { scheme: "bearer", params: { realm: "https://auth.io/token", service: "registry.io", scope: "repository:a/b:pull,push" } },
  ]);
  assert.deepEqual(parseChallenges('Bearer realm="x\\"y", error=insufficient_scope, Basic realm=r'), [
    { scheme: "bearer", params: { realm: 'x"y', error: "insufficient_scope" } },
    { scheme: "basic", params: { realm: "r" } },
  ]);
  assert.deepEqual(parseChallenges(""), []);
});

test("docker config: auth, username/password, identitytoken, key forms", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const config = {
    auths: {
      "https://index.docker.io/v1/": { auth: b64("hub:hubpass") },
      "127.0.0.1:5000": { auth: b64("u:p:with:colons") },
      "http://reg.example:8443/v2/": { username: "x", password: "y" },
      "token.example": { identitytoken: "refresh-me" },
      "empty.example": {},
    },
  };
  assert.deepEqual(credentialsFromDockerConfig(config, "docker.io"), { username: "hub", password: "hubpass" });
  assert.deepEqual(credentialsFromDockerConfig(config, "127.0.0.1:5000"), { username: "u", password: "p:with:colons" });
  assert.deepEqual(credentialsFromDockerConfig(config, "reg.example:8443"), { username: "x", password: "y" });
  assert.deepEqual(credentialsFromDockerConfig(config, "token.example"), { identityToken: "refresh-me" });
  assert.equal(credentialsFromDockerConfig(config, "empty.example"), undefined);
  assert.equal(credentialsFromDockerConfig(config, "other:5000"), undefined);
  assert.equal(credentialsFromDockerConfig(null, "docker.io"), undefined);
  assert.equal(credentialsFromDockerConfig({ auths: 3 }, "docker.io"), undefined);
  assert.deepEqual(credentialsFromDockerConfig({ auths: { "docker.io": { auth: b64("a:b") } } }, "docker.io"), { username: "a", password: "b" });
});

test("upload URLs: digest appended with & or ?", () => {
  const d = `sha256:${"0".repeat(64)}`;
  assert.equal(withDigestParam(new URL("http://h:1/v2/x/blobs/uploads/u?_state=a%3D%3D"), d).href, `http://h:1/v2/x/blobs/uploads/u?_state=a%3D%3D&digest=sha256%3A${"0".repeat(64)}`);
  assert.equal(withDigestParam(new URL("http://h:1/v2/x/blobs/uploads/u"), d).href, `http://h:1/v2/x/blobs/uploads/u?digest=sha256%3A${"0".repeat(64)}`);
});

test("error bodies, Retry-After and status messages", () => {
  const body = Buffer.from(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
  assert.deepEqual(parseErrorBody(body), { codes: ["MANIFEST_UNKNOWN"], messages: ["manifest unknown"] });
  assert.deepEqual(parseErrorBody(Buffer.from("<html>")), { codes: [], messages: [] });
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(undefined), undefined);
  const e = statusError({ action: "push x", registry: "r:1", status: 429, body, retryAfter: "0", hadCredentials: false, plainHttp: false });
  assert.equal(e.temporary, true);
  assert.equal(e.retryAfterMs, 0);
  assert.deepEqual(e.errorCodes, ["MANIFEST_UNKNOWN"]);
  const tlsPort = statusError({ action: "get x", registry: "r:1", status: 400, body: Buffer.from("Client sent an HTTP request to an HTTPS server.\n"), hadCredentials: false, plainHttp: true });
  assert.match(tlsPort.message, /^Cannot get x: r:1 speaks HTTPS.*drop --plain-http/);
  assert.equal(tlsPort.temporary, false);
  assert.match(statusError({ action: "a", registry: "r", status: 401, body: new Uint8Array(), hadCredentials: true, plainHttp: false }).message, /credentials rejected for r/);
});
