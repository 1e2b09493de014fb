#!/usr/bin/env bash
# Regenerates examples/oci-image: a two-layer OCI image layout (gzip layers) made from
# examples/rootfs, the default input of `npm run demo`. Deterministic: sorted names,
# owner 0:0, mtime 0, gzip -n. Layer 2 adds a file and deletes one of layer 1 (a whiteout).
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/oci-image
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out/blobs/sha256" "$tmp/l1" "$tmp/l2/etc" "$tmp/l2/usr/share/doc/nydus-ts"
cp -a examples/rootfs/. "$tmp/l1/"
printf 'added by layer 2\n' > "$tmp/l2/usr/share/doc/nydus-ts/LAYER2.txt"
: > "$tmp/l2/etc/.wh.os-release"
tarit() { tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax --pax-option=delete=atime,delete=ctime -C "$1" -cf "$2" .; }
put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$out/blobs/sha256/$d"; echo "$d"; }
layers=() diffs=() sizes=()
for l in l1 l2; do
  tarit "$tmp/$l" "$tmp/$l.tar"
  diffs+=("$(sha256sum "$tmp/$l.tar" | cut -d' ' -f1)")
  gzip -n -6 -c "$tmp/$l.tar" > "$tmp/$l.tar.gz"
  layers+=("$(put "$tmp/$l.tar.gz")")
  sizes+=("$(stat -c %s "$tmp/$l.tar.gz")")
done
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/hello"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"COPY rootfs /"},{"created":"1970-01-01T00:00:00Z","created_by":"RUN rm /etc/os-release && echo added > /usr/share/doc/nydus-ts/LAYER2.txt"}]}' "${diffs[0]}" "${diffs[1]}" > "$tmp/config.json"
cfg=$(put "$tmp/config.json"); cfgsize=$(stat -c %s "$tmp/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cfg" "$cfgsize" "${layers[0]}" "${sizes[0]}" "${layers[1]}" "${sizes[1]}" > "$tmp/manifest.json"
man=$(put "$tmp/manifest.json"); mansize=$(stat -c %s "$tmp/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}\n' "$man" "$mansize" > "$out/index.json"
echo "wrote $out (manifest sha256:$man)"
