#!/usr/bin/env bash
# Installs what nydus-ts needs on a fresh Debian machine, and nothing when it is all there:
# system packages (apt-get, as root) and npm dependencies (npm install, which builds the native codec).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_file() { [ -e "$1" ] || missing+=("$2"); }
need_file /usr/include/zstd.h libzstd-dev
need_file /usr/include/lz4.h liblz4-dev
need_cmd g++ g++
need_cmd make make
need_cmd python3 python3
need_cmd mkfs.erofs erofs-utils
need_cmd getfattr attr
need_cmd b3sum b3sum
need_cmd zstd zstd
need_cmd mknod coreutils
need_cmd losetup mount
# Image tooling the convert tests use as peers (registry, copy/inspect, build, pull).
need_cmd docker-registry docker-registry
need_cmd skopeo skopeo
need_cmd umoci umoci
need_cmd buildah buildah
need_cmd containerd containerd
need_cmd htpasswd apache2-utils
need_cmd openssl openssl
need_cmd curl curl
need_cmd busybox busybox-static
need_cmd gzip gzip
if [ "${NYDUS_SETUP_BENCH:-0}" = 1 ]; then
  need_cmd debootstrap debootstrap
fi

if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages: $pkgs (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  echo "setup: installing $pkgs" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# npm install (from the lock file) when node_modules is missing or older than the lock file, or
# the addon is not built; it builds the addon too. Not `npm ci`: the registry reachable here has
# only the linux-x64 builds of @napi-rs/blake-hash, so the lock file lacks the other platforms'
# optional packages and npm ci's strict sync check refuses it, while npm install accepts it.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f build/Release/nydus_codec.node ]; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund >/dev/null
elif [ native/codec.c -nt build/Release/nydus_codec.node ] || [ binding.gyp -nt build/Release/nydus_codec.node ]; then
  echo "setup: rebuilding the native codec" >&2
  npm run --silent install >/dev/null
fi

# Compile src/ to dist/ (bin/nydus-ts.js runs dist/ when it is newer than every source file).
if [ ! -f dist/.built ] || [ -n "$(find src -name '*.ts' ! -name '*.test.ts' -newer dist/.built -print -quit)" ]; then
  echo "setup: npm run build" >&2
  npm run --silent build >/dev/null
fi
