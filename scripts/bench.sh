#!/usr/bin/env bash
# npm run bench: nydus-ts create vs tar -x + mkfs.erofs (see bench/main.ts for the knobs).
# Prints a markdown table and writes it to bench/results.md. Never part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

NYDUS_SETUP_BENCH=1 bash scripts/setup.sh
# GNU time gives the peak RSS ("Maximum resident set size").
if [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench: /usr/bin/time missing (Debian package 'time'); run as root or install it" >&2
    exit 1
  fi
  echo "bench: installing time" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
fi

exec node --import tsx bench/main.ts "$@"
