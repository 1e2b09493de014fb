#!/usr/bin/env bash
# The main job on the embedded default: build examples/rootfs (or the directory/tar given
# as $1) into a Nydus image, list it back, verify it, and unpack it again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
src="${1:-examples/rootfs}"
out="${DEMO_OUT:-$(mktemp -d /tmp/nydus-ts-demo.XXXXXX)}"
type=dir; [ -f "$src" ] && type=tar
cli=bin/nydus-ts.js

echo "== create: $src ($type) -> $out"
$cli create "$src" --type "$type" --bootstrap "$out/image.boot" --blob-dir "$out/blobs"
echo
echo "== inspect"
$cli inspect "$out/image.boot"
echo
echo "== check (metadata, blob id, every chunk digest)"
$cli check "$out/image.boot" --blob-dir "$out/blobs"
echo
echo "== unpack and compare with the source"
$cli unpack "$out/image.boot" --blob-dir "$out/blobs" --output "$out/unpacked"
if [ "$type" = dir ]; then
  diff -r --no-dereference "$src" "$out/unpacked" && echo "unpacked tree is identical to $src"
fi
echo
echo "output kept in $out"
