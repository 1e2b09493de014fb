import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { startRegistry } from "../../test/support/registry.ts";
import { RegistryError } from "../internal/errors.ts";
import { parseReference } from "../reference/reference.ts";
import { collectAll, pieces, tinyImage } from "./_testing.ts";
import type { Credentials, RegistryOptions, RequestInfo } from "./options.ts";
import { registrySink } from "./sink.ts";
import { registrySource } from "./source.ts";

/** Pushes a tiny image and pulls it back through a fresh source. */
async function roundTrip(host: string, repo: string, options: RegistryOptions): Promise<void> {
  const img = tinyImage(repo);
  const ref = parseReference(`${host}/${repo}:v1`);
  const sink = registrySink(ref, options);
  const src = registrySource(ref, options);
  try {
    await sink.pushBlob(img.layer.desc, () => pieces(img.layer.bytes));
    await sink.pushBlob(img.config.desc, () => pieces(img.config.bytes));
    await sink.pushManifest(img.manifest.desc, img.manifest.bytes, { tag: "v1" });
    const desc = await src.resolve();
    assert.equal(desc.digest, img.manifest.desc.digest);
    assert.deepEqual(await collectAll(await src.fetchBlob(img.layer.desc)), Buffer.from(img.layer.bytes));
  } finally {
    await sink.close?.();
    await src.close?.();
  }
}

const rejectsWith = (re: RegExp) => (e: unknown) => e instanceof RegistryError && re.test(e.message);

test("htpasswd basic auth: right, wrong and missing credentials", async () => {
  const reg = await startRegistry({ auth: "htpasswd" });
  try {
    const creds = (c: Credentials) => ({ plainHttp: true, credentials: (r: string) => (r === reg.host ? c : undefined) });
    await roundTrip(reg.host, "basic/ok", creds({ username: reg.username!, password: reg.password! }));
    const wrong = registrySource(parseReference(`${reg.host}/basic/ok:v1`), creds({ username: reg.username!, password: "nope" }));
    await assert.rejects(wrong.resolve(), (e: unknown) => rejectsWith(new RegExp(`^Cannot get manifest .*: credentials rejected for ${reg.host}`))(e) && (e as RegistryError).status === 401);
    const none = registrySource(parseReference(`${reg.host}/basic/ok:v1`), { plainHttp: true });
    await assert.rejects(none.resolve(), rejectsWith(new RegExp(`: authentication required for ${reg.host}`)));
    await wrong.close?.();
    await none.close?.();
  } finally {
    await reg.stop();
  }
});

test("bearer tokens from a token server against the real registry: cached per scope, token or access_token", async () => {
  const reg = await startRegistry({ auth: "token" });
  try {
    const log: RequestInfo[] = [];
    const options = { plainHttp: true, credentials: () => ({ username: reg.username!, password: reg.password! }), onRequest: (i: RequestInfo) => log.push(i) };
    await roundTrip(reg.host, "tok/app", options);
    const tokenGets = log.filter((l) => l.url.startsWith(reg.tokenServer!.realm));
    // One token for the sink's pull,push scope and one for the source's pull scope.
    assert.equal(tokenGets.length, 2);
    assert.equal(reg.tokenServer!.stats.get, 2);

    const anon = registrySource(parseReference(`${reg.host}/tok/app:v1`), { plainHttp: true });
    await assert.rejects(anon.resolve(), rejectsWith(new RegExp(`authentication required for ${reg.host}`)));
    await anon.close?.();
    const bad = registrySource(parseReference(`${reg.host}/tok/app:v1`), { plainHttp: true, credentials: () => ({ username: "testuser", password: "bad" }) });
    await assert.rejects(bad.resolve(), rejectsWith(/^Cannot get a token for .*: credentials rejected/));
    await bad.close?.();
    const identity = registrySource(parseReference(`${reg.host}/tok/app:v1`), { plainHttp: true, credentials: () => ({ identityToken: reg.tokenServer!.identityToken }) });
    assert.equal((await identity.resolve()).mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(reg.tokenServer!.stats.refresh, 1);
    await identity.close?.();
  } finally {
    await reg.stop();
  }
  for (const tokenField of ["token", "access_token"] as const) {
    const only = await startRegistry({ auth: "token", tokenField });
    try {
      await roundTrip(only.host, `field/${tokenField}`, { plainHttp: true, credentials: () => ({ username: only.username!, password: only.password! }) });
    } finally {
      await only.stop();
    }
  }
});

test("TLS: with the CA, with insecure, without CA, and HTTP/HTTPS mismatches", async () => {
  const reg = await startRegistry({ tls: true, auth: "htpasswd" });
  const plain = await startRegistry();
  try {
    const credentials = () => ({ username: reg.username!, password: reg.password! });
    const ca = await fs.readFile(reg.caFile!, "utf8");
    await roundTrip(reg.host, "tls/ca", { ca: [ca], credentials });
    await roundTrip(reg.host, "tls/insecure", { insecure: true, credentials });

    const noCa = registrySource(parseReference(`${reg.host}/tls/ca:v1`), { credentials, retries: 0 });
    await assert.rejects(noCa.resolve(), rejectsWith(/TLS certificate of .* cannot be verified .*--ca.*--insecure/));
    await noCa.close?.();

    const httpToTls = registrySource(parseReference(`${reg.host}/tls/ca:v1`), { plainHttp: true, credentials, retries: 0 });
    await assert.rejects(httpToTls.resolve(), (e: unknown) => rejectsWith(/speaks HTTPS.*drop --plain-http/)(e) && (e as RegistryError).status === 400);
    await httpToTls.close?.();

    const httpsToPlain = registrySource(parseReference(`${plain.host}/x/y:v1`), { retries: 0 });
    await assert.rejects(httpsToPlain.resolve(), rejectsWith(/TLS handshake .* plain HTTP \(use --plain-http or registry.insecure=true\)/));
    await httpsToPlain.close?.();
  } finally {
    await reg.stop();
    await plain.stop();
  }
});
