#!/bin/bash
# Installs the tests' npm tools (tests/npm/package.json, pinned by package-lock.json: the hub's
# JS client, s3rver, azurite) with `npm ci` into BUILD_DIR/npm, once per lock file; safe to run from
# several tests at once (a lock). The product never needs Node: only tests and tools do.
# Usage: install.sh BUILD_DIR. Prints the directory; exit 77 when node/npm or the npm registry
# is missing (ctest SKIP), except under CI=true where it is a failure (exit 1).
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: install.sh BUILD_DIR}
missing() {
  if [ "${CI:-}" = true ]; then echo "tests/npm/install.sh: $1 (CI=true: a failure)" >&2; exit 1; fi
  echo "tests/npm/install.sh: $1; skipped" >&2; exit 77
}
command -v node >/dev/null || missing "node is not installed (Debian: nodejs)"
command -v npm >/dev/null || missing "npm is not installed (Debian: npm)"
dir="$build/npm"
mkdir -p "$build"
exec 9>"$build/npm.lock"
flock 9
if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" 2>/dev/null || [ ! -f "$dir/.installed" ]; then
  rm -rf "$dir"; mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --silent >&2) || { rm -rf "$dir"; missing "npm ci failed (no access to the npm registry?)"; }
  touch "$dir/.installed"
fi
echo "$dir"
