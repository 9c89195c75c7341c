#!/usr/bin/env bash
# Every test: install what is missing, build (warnings are errors), run the whole suite (with
# the bounded chaos run), quick benchmarks, a bounded fuzz run, then build again with
# AddressSanitizer + UndefinedBehaviorSanitizer and run the whole suite again, and build the
# threaded parts with ThreadSanitizer and run their tests.
#   scripts/test.sh              everything
#   scripts/test.sh --no-sanitize  the plain build, benchmarks and fuzzing only
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
jobs=$(nproc)
started=$SECONDS
phase() { echo "== $* (at $((SECONDS - started)) s)"; }
trap 'echo "scripts/test.sh: $((SECONDS - started)) s in all"' EXIT

run_suite() {  # build dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$top" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" -j"$jobs" --output-on-failure --timeout 300
}

# Release, as the README's main command (scripts/run.sh) builds it: GCC 12 warns differently at
# -O3 than at -O2 (PR105651 once broke that build alone), so the configuration users build is
# the one tested.
phase "build and test (Release)"
run_suite "$top/build" -DCMAKE_BUILD_TYPE=Release
phase "benchmarks, quick form (figures only, never a failure on speed)"
"$top/build/bin/modelzoo-bench" --quick || { echo "benchmark run broke" >&2; exit 1; }
"$top/build/bin/modelzoo-pull-bench" --quick || { echo "pull benchmark run broke" >&2; exit 1; }
"$top/build/bin/modelzoo-extension-bench" --quick || { echo "extension benchmark run broke" >&2; exit 1; }
"$top/bench/hf_bench.sh" --quick --bin-dir "$top/build/bin" || { echo "huggingface benchmark run broke" >&2; exit 1; }
"$top/bench/s3_bench.sh" --quick --bin-dir "$top/build/bin" || { echo "s3 benchmark run broke" >&2; exit 1; }
phase "fuzz, bounded"
# Every fuzz target for 10 s (2 at a time) on a copy of its seed corpus, after replaying every
# past crash; fails on any crash, leak or timeout (docs/fuzzing.md).
"$top/scripts/fuzz.sh" --seconds 10 || { echo "fuzzing found a problem (reproducer above)" >&2; exit 1; }
if [ "${1:-}" != "--no-sanitize" ]; then
  phase "build and test with ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DMODELZOO_SANITIZE=ON -DMODELZOO_BENCH=OFF
  phase "build and test the threaded parts with ThreadSanitizer"
  # The daemon (disk and background threads), the SDK (worker pool, download threads) and the
  # plugins, all built with TSan; the integration tests that drive them concurrently (the
  # subset is chosen in tests/integration/CMakeLists.txt). Every process writes its reports to
  # one directory, so a race in a plugin fails the step even when its test passed.
  cmake -S "$top" -B "$top/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODELZOO_TSAN=ON \
    -DMODELZOO_BENCH=OFF -DMODELZOO_UNIT_TESTS=OFF >/dev/null
  cmake --build "$top/build-tsan" -j"$jobs" --target integration_test
  reports=$(mktemp -d)
  TSAN_OPTIONS="suppressions=$top/tests/sanitizers/tsan.supp ignore_noninstrumented_modules=1 log_path=$reports/tsan" \
    MODELZOO_TEST_TIMER_SCALE=5 \
    ctest --test-dir "$top/build-tsan" -L '^integration$' -j"$jobs" --output-on-failure --timeout 300
  if compgen -G "$reports/tsan*" >/dev/null; then
    cat "$reports"/tsan*
    echo "ThreadSanitizer reported the problems above" >&2
    exit 1
  fi
  echo "ThreadSanitizer: no reports"
fi
