import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { startFaultProxy } from "../../test/support/fault_proxy.ts";
import { startRegistry } from "../../test/support/registry.ts";
import { MediaType } from "../oci/media_type.ts";
import { describeBytes } from "../oci/index.ts";
import { parseReference } from "../reference/reference.ts";
import { bytesOf, collectAll, pieces } from "./_testing.ts";
import { registrySink } from "./sink.ts";
import { registrySource } from "./source.ts";

test("blob GET follows a 307 to another host without sending Authorization there", async () => {
  const reg = await startRegistry();
  const seen: (string | undefined)[] = [];
  // The blob host: records the Authorization header of each request, injects nothing.
  const blobHost = await startFaultProxy(reg.url, { seed: 1, rate: 1, only: (req) => (seen.push(req.headers.authorization), false) });
  const frontAuth: (string | undefined)[] = [];
  const front = http.createServer((req, res) => {
    frontAuth.push(req.headers.authorization);
    if (!req.headers.authorization) return void res.writeHead(401, { "www-authenticate": 'Basic realm="front"' }).end();
    res.writeHead(307, { location: `${blobHost.url}${req.url}` }).end();
  });
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  const frontHost = `127.0.0.1:${(front.address() as AddressInfo).port}`;
  try {
    const bytes = bytesOf(200_000, "redirect");
    const desc = describeBytes(MediaType.OciLayerGzip, bytes);
    const sink = registrySink(parseReference(`${reg.host}/r/x:v1`), { plainHttp: true });
    await sink.pushBlob(desc, () => pieces(bytes));
    await sink.close?.();
    const src = registrySource(parseReference(`${frontHost}/r/x:v1`), { plainHttp: true, credentials: () => ({ username: "u", password: "p" }) });
    assert.deepEqual(await collectAll(await src.fetchBlob(desc)), Buffer.from(bytes));
    await src.close?.();
    assert.equal(frontAuth.at(-1), `Basic ${Buffer.from("u:p").toString("base64")}`);
    assert.ok(seen.length > 0);
    assert.deepEqual(seen, seen.map(() => undefined));
  } finally {
    front.closeAllConnections();
    await new Promise((r) => front.close(r));
    await blobHost.stop();
    await reg.stop();
  }
});
