#!/bin/bash
# Fidelity of tests/hfhub/hub_server.py: the official JavaScript client @huggingface/hub
# (pinned by tests/npm/package-lock.json, installed by tests/npm/install.sh into the build tree) lists and
# downloads from it. Usage: js_client_test.sh BUILD_DIR. Needs node and npm (Debian: nodejs,
# npm; scripts/deps.sh) and the npm registry once, for the install. Missing: exit 77 (ctest
# SKIP), except under CI=true where it is a failure.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: js_client_test.sh BUILD_DIR}
rc=0; npm_dir=$("$src/tests/npm/install.sh" "$build") || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
cp "$src/tests/npm/fidelity.mjs" "$npm_dir/"
tmp=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/acme/tiny" "$tmp/root/acme/a1" "$tmp/root/acme/a2"
echo '{"hidden": 8}' >"$tmp/root/acme/tiny/config.json"
head -c 200000 /dev/urandom >"$tmp/root/acme/tiny/model.safetensors"
echo a >"$tmp/root/acme/a1/README.md"; echo b >"$tmp/root/acme/a2/README.md"
/usr/bin/python3 "$src/tests/hfhub/hub_server.py" --root "$tmp/root" --port-file "$tmp/port" --max-page 2 2>"$tmp/log" &
pid=$!
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { cat "$tmp/log" >&2; exit 1; }
port=$(cut -d' ' -f1 "$tmp/port")
# Pages of 2 models: listModels must follow the Link header to see all 3.
node "$npm_dir/fidelity.mjs" "http://127.0.0.1:$port" "$tmp/root" || { cat "$tmp/log" >&2; exit 1; }
