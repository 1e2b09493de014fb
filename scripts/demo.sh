#!/usr/bin/env bash
# The main job on the embedded default: convert the OCI image layout examples/oci-image
# (or the image given as $1: any `convert --source` word) into a Nydus image in an OCI
# layout, check it against the source file by file, read it lazily (ls, cat), then open its
# merged bootstrap: list it and unpack it. No registry needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
src="${1:-oci:examples/oci-image:v1}"
out="${DEMO_OUT:-$(mktemp -d /tmp/nydus-ts-demo.XXXXXX)}"
cli=bin/nydus-ts.js

echo "== convert: $src -> oci:$out/nydus:v1"
$cli convert --source "$src" --target "oci:$out/nydus:v1" --all-platforms
echo
echo "== check: Nydus rules, every blob and chunk digest, and the files against the source"
$cli check --target "oci:$out/nydus:v1" --source "$src"
echo
echo "== the merged bootstrap (image/image.boot in the last layer)"
manifest=$(node -e 'const i=require(process.argv[1]);console.log(i.manifests.find(m=>m.annotations["org.opencontainers.image.ref.name"]==="v1").digest.slice(7))' "$out/nydus/index.json")
bootlayer=$(node -e 'const m=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(m.layers?m.layers.at(-1).digest.slice(7):"")' "$out/nydus/blobs/sha256/$manifest")
if [ -n "$bootlayer" ]; then
  mkdir -p "$out/bootstrap"
  tar -xzf "$out/nydus/blobs/sha256/$bootlayer" -C "$out/bootstrap"
  $cli inspect "$out/bootstrap/image/image.boot"
  echo
  echo "== read it lazily, without unpacking: ls, then cat of the first regular file (only its chunks are read)"
  $cli ls "oci:$out/nydus:v1" /
  first=$($cli inspect "$out/bootstrap/image/image.boot" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const f=JSON.parse(s).nodes.find(f=>f.type==="reg"&&f.size>0);console.log(f?f.path:"")})')
  if [ -n "$first" ]; then
    echo "-- $first:"
    $cli cat "oci:$out/nydus:v1" "$first" | head -c 300
    echo
  fi
  echo
  echo "== unpack the Nydus image"
  $cli unpack "$out/bootstrap/image/image.boot" --blob-dir "$out/nydus/blobs/sha256" --output "$out/unpacked"
  (cd "$out/unpacked" && find . | sort)
else
  echo "(the result is an index: one manifest per platform; see $out/nydus)"
fi
echo
echo "output kept in $out"
