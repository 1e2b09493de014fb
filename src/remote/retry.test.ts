import { test } from "node:test";
import assert from "node:assert/strict";
import { startFaultProxy } from "../../test/support/fault_proxy.ts";
import { startRegistry } from "../../test/support/registry.ts";
import { NotFoundError, RegistryError } from "../internal/errors.ts";
import { MediaType } from "../oci/media_type.ts";
import { describeBytes } from "../oci/index.ts";
import { parseReference } from "../reference/reference.ts";
import { bytesOf, collectAll, pieces, tinyImage } from "./_testing.ts";
import type { RequestInfo } from "./options.ts";
import { registrySink } from "./sink.ts";
import { registrySource } from "./source.ts";

test("30 % injected faults (500, 429, reset, truncate): 5 MiB push + pull + manifest still succeed and verify", async () => {
  const reg = await startRegistry();
  const proxy = await startFaultProxy(reg.url, { seed: 7, rate: 0.3 });
  const log: RequestInfo[] = [];
  const options = { plainHttp: true, retries: 10, retryDelayMs: 1, onRequest: (i: RequestInfo) => log.push(i) };
  const ref = parseReference(`${proxy.host}/faulty/app:v1`);
  const sink = registrySink(ref, options);
  const chunkedSink = registrySink(ref, { ...options, uploadMode: "chunked", chunkSize: 1024 * 1024 });
  const src = registrySource(ref, options);
  try {
    const img = tinyImage("faults", 5 * 1024 * 1024);
    const extra = bytesOf(3 * 1024 * 1024 + 17, "faults-chunked");
    const extraDesc = describeBytes(MediaType.OciLayerGzip, extra);
    await sink.pushBlob(img.layer.desc, () => pieces(img.layer.bytes));
    await chunkedSink.pushBlob(extraDesc, () => pieces(extra));
    await sink.pushBlob(img.config.desc, () => pieces(img.config.bytes));
    await sink.pushManifest(img.manifest.desc, img.manifest.bytes, { tag: "v1" });
    assert.deepEqual(await src.resolve(), img.manifest.desc);
    assert.deepEqual(await collectAll(await src.fetchBlob(img.layer.desc)), Buffer.from(img.layer.bytes));
    assert.deepEqual(await collectAll(await src.fetchBlob(extraDesc)), Buffer.from(extra));
    assert.deepEqual(Buffer.from(await src.fetchBytes(img.config.desc)), Buffer.from(img.config.bytes));

    // And the registry itself (no proxy) holds exactly the right bytes.
    const direct = registrySource(parseReference(`${reg.host}/faulty/app:v1`), { plainHttp: true });
    assert.deepEqual(await collectAll(await direct.fetchBlob(img.layer.desc)), Buffer.from(img.layer.bytes));
    await direct.close?.();

    const injected = proxy.stats.injected;
    const total = Object.values(injected).reduce((a, b) => a + b, 0);
    assert.ok(total >= 5, `faults injected: ${JSON.stringify(injected)}`);
    for (const kind of ["500", "429", "reset", "truncate"]) assert.ok((injected[kind] ?? 0) > 0, `no ${kind} injected: ${JSON.stringify(injected)}`);
    assert.ok(log.some((l) => l.status === 0), "some requests failed without an answer");
  } finally {
    await sink.close?.();
    await chunkedSink.close?.();
    await src.close?.();
    await proxy.stop();
    await reg.stop();
  }
});

test("truncated blob downloads resume with Range and deliver each byte once", async () => {
  const reg = await startRegistry();
  const proxy = await startFaultProxy(reg.url, { seed: 3, rate: 0.5, faults: ["truncate"], only: (r) => r.method === "GET" && /\/blobs\//.test(r.url ?? "") });
  const log: RequestInfo[] = [];
  try {
    const bytes = bytesOf(4 * 1024 * 1024, "resume");
    const desc = describeBytes(MediaType.OciLayerGzip, bytes);
    const sink = registrySink(parseReference(`${reg.host}/r/x:v1`), { plainHttp: true });
    await sink.pushBlob(desc, () => pieces(bytes));
    await sink.close?.();
    const src = registrySource(parseReference(`${proxy.host}/r/x:v1`), { plainHttp: true, retries: 10, retryDelayMs: 1, onRequest: (i) => log.push(i) });
    for (let i = 0; i < 4; i++) assert.deepEqual(await collectAll(await src.fetchBlob(desc)), Buffer.from(bytes));
    await src.close?.();
    assert.ok((proxy.stats.injected.truncate ?? 0) > 0);
    assert.ok(log.some((l) => l.status === 206), "a resumed request answered 206");
  } finally {
    await proxy.stop();
    await reg.stop();
  }
});

test("an upload whose answer was lost fails without retries, and a re-run skips the blob that landed", async () => {
  const reg = await startRegistry();
  const proxy = await startFaultProxy(reg.url, { seed: 1, rate: 1, faults: ["truncate"], only: (r) => r.method === "PUT" });
  try {
    const bytes = bytesOf(2 * 1024 * 1024, "lost-answer");
    const desc = describeBytes(MediaType.OciLayerGzip, bytes);
    const viaProxy = registrySink(parseReference(`${proxy.host}/lost/x:v1`), { plainHttp: true, retries: 0 });
    await assert.rejects(viaProxy.pushBlob(desc, () => pieces(bytes)), (e: unknown) => e instanceof RegistryError && e.temporary && e.status === 0);
    await viaProxy.close?.();
    const log: RequestInfo[] = [];
    let opened = 0;
    const again = registrySink(parseReference(`${reg.host}/lost/x:v1`), { plainHttp: true, onRequest: (i) => log.push(i) });
    await again.pushBlob(desc, () => (opened++, pieces(bytes)));
    await again.close?.();
    assert.equal(opened, 0);
    assert.deepEqual(log.filter((l) => new URL(l.url).pathname !== "/v2/").map((l) => `${l.method} ${l.status}`), ["HEAD 200"]);

    // With retries, the sink notices by itself that the blob landed.
    const other = bytesOf(100_000, "lost-answer-2");
    const otherDesc = describeBytes(MediaType.OciLayerGzip, other);
    const retrying = registrySink(parseReference(`${proxy.host}/lost/y:v1`), { plainHttp: true, retries: 3, retryDelayMs: 1 });
    await retrying.pushBlob(otherDesc, () => pieces(other));
    assert.equal(await retrying.hasBlob(otherDesc), true);
    await retrying.close?.();
  } finally {
    await proxy.stop();
    await reg.stop();
  }
});

test("4xx answers are not retried", async () => {
  const reg = await startRegistry();
  const log: RequestInfo[] = [];
  const src = registrySource(parseReference(`${reg.host}/none/x:v1`), { plainHttp: true, retries: 5, onRequest: (i) => log.push(i) });
  try {
    await assert.rejects(src.resolve(), NotFoundError);
    assert.deepEqual(log.map((l) => `${l.method} ${l.status}`), ["GET 200", "GET 404"]);
  } finally {
    await src.close?.();
    await reg.stop();
  }
});
