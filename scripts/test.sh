#!/usr/bin/env bash
# The whole test suite: set-up (scripts/setup.sh) then every *.test.ts under src/ and test/.
# Extra arguments are passed to `node --test` (e.g. a single file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "typecheck: tsc -p tsconfig.json" >&2
npx --no-install tsc -p tsconfig.json
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find src test -name '*.test.ts' | sort)
fi
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
