#!/usr/bin/env bash
# Every test: install what is missing, build (warnings are errors), run the whole suite,
# then build again with AddressSanitizer + UndefinedBehaviorSanitizer and run it again.
#   scripts/test.sh              both builds
#   scripts/test.sh --no-sanitize  the plain build only
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
jobs=$(nproc)

run_suite() {  # build dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$top" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" -j"$jobs" --output-on-failure --timeout 300
}

echo "== build and test (RelWithDebInfo)"
run_suite "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== benchmarks, quick form (figures only, never a failure on speed)"
"$top/build/bin/modelzoo-bench" --quick || { echo "benchmark run broke" >&2; exit 1; }
"$top/build/bin/modelzoo-pull-bench" --quick || { echo "pull benchmark run broke" >&2; exit 1; }
"$top/build/bin/modelzoo-extension-bench" --quick || { echo "extension benchmark run broke" >&2; exit 1; }
echo "== fuzz, bounded"
# Every fuzz target for 20 s (2 at a time) on a copy of its seed corpus, after replaying every
# past crash; fails on any crash, leak or timeout (docs/fuzzing.md).
"$top/scripts/fuzz.sh" --seconds 20 || { echo "fuzzing found a problem (reproducer above)" >&2; exit 1; }
if [ "${1:-}" != "--no-sanitize" ]; then
  echo "== build and test with ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMODELZOO_SANITIZE=ON -DMODELZOO_BENCH=OFF
fi
