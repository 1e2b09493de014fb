/**
 * Looking inside a converted Nydus image stored in an OCI layout: its merged bootstrap,
 * `check` over its blobs, and a kernel mount of it (through the format core's cache views).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { extractBootstrap } from "../../src/convert/bootstrap_layer.ts";
import { openRafs } from "../../src/rafs/open.ts";
import type { RafsImage } from "../../src/rafs/model.ts";
import { cliOk } from "./cli.ts";
import { readLayoutJson } from "./images.ts";
import { mountErofs } from "./oracles.ts";
import { snapshotTree, type TreeSnapshot } from "./tree_snapshot.ts";

export interface NydusManifestView {
  manifest: any;
  config: any;
  bootstrap: Uint8Array;
  /** sha256 of the uncompressed bootstrap tar. */
  diffId: string;
  image: RafsImage;
  /** Written to a file for the CLI. */
  bootstrapFile: string;
}

export async function readNydusManifest(layout: string, manifestDigest: string, work: string): Promise<NydusManifestView> {
  const manifest = readLayoutJson(layout, manifestDigest);
  const config = readLayoutJson(layout, manifest.config.digest);
  const last = manifest.layers.at(-1);
  const file = path.join(layout, "blobs", "sha256", last.digest.slice(7));
  const { bootstrap, diffId } = await extractBootstrap(fs.createReadStream(file), `layer ${last.digest}`);
  await fsp.mkdir(work, { recursive: true });
  const bootstrapFile = path.join(work, `${manifestDigest.slice(7, 19)}.boot`);
  await fsp.writeFile(bootstrapFile, bootstrap);
  return { manifest, config, bootstrap, diffId, image: openRafs(bootstrap), bootstrapFile };
}

/** `check` of the merged bootstrap against the layout's blobs (every chunk digest). */
export async function checkNydusManifest(layout: string, view: NydusManifestView): Promise<any> {
  return (await cliOk(["check", view.bootstrapFile, "--blob-dir", path.join(layout, "blobs", "sha256"), "--json"])).json;
}

/** Mounts the merged bootstrap with the kernel and snapshots the tree. */
export async function snapshotNydusManifest(layout: string, view: NydusManifestView, work: string): Promise<TreeSnapshot> {
  const views = path.join(work, `views-${path.basename(view.bootstrapFile)}`);
  await cliOk(["export", view.bootstrapFile, "--blob-dir", path.join(layout, "blobs", "sha256"), "--cache-dir", views]);
  const m = await mountErofs(view.bootstrapFile, view.image.blobs.map((b) => path.join(views, `${b.blobId}.blob.data`)));
  try {
    return await snapshotTree(m.mountpoint);
  } finally {
    await m.close();
  }
}
