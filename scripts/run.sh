#!/usr/bin/env bash
# The main job: install what is missing, build, start modelzood with its embedded default
# configuration, pull the demo model, and keep the daemon serving until Ctrl-C.
#   scripts/run.sh          daemon keeps running in the foreground after the demo pull
#   scripts/run.sh --once   stop the daemon after the demo pull (for scripts)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
build="$top/build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMODELZOO_TESTS=OFF -DMODELZOO_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
bin="$build/bin"

"$bin/modelzood" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  "$bin/modelzoo" status >/dev/null 2>&1 && break
  kill -0 $daemon 2>/dev/null || { echo "modelzood exited; see its log above" >&2; exit 1; }
  sleep 0.1
done
"$bin/modelzoo" plugins
"$bin/modelzoo" show demo/tiny
path=$("$bin/modelzoo" pull demo/tiny)
echo "demo/tiny is in $path:"
ls -l "$path"
if [ "${1:-}" = "--once" ]; then exit 0; fi
echo "modelzood is running (pid $daemon). Try: $bin/modelzoo events   -- Ctrl-C stops it."
wait $daemon
