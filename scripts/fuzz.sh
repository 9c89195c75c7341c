#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, -fsanitize=fuzzer,address,undefined) in
# build-fuzz and runs each for a bounded time against a COPY of its seed corpus and its past
# crashes (the checked-in corpus never grows by itself). Prints per target: executions, exec/s,
# corpus size, coverage gained, and any crash, leak, timeout or OOM with its reproducer.
# Exits non-zero when a target found anything (or a past crash fails again). docs/fuzzing.md.
#
#   scripts/fuzz.sh                      every target, 10 s each (what CI runs)
#   scripts/fuzz.sh --seconds 600        longer runs
#   scripts/fuzz.sh --seconds 60 fuzz_envelope fuzz_gguf
#   scripts/fuzz.sh --keep               keep what the runs found in build-fuzz/fuzz-run (default too)
#   scripts/fuzz.sh --merge              afterwards, minimise each run's corpus into tests/fuzz/corpus/<t>/
#                                        (to check in deliberately; never done otherwise)
# Environment: FUZZ_JOBS (targets run at once; default: number of cores).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=10
merge=0
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --merge) merge=1; shift ;;
    --keep) shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
"$top/scripts/deps.sh"
build="$top/build-fuzz"
jobs=${FUZZ_JOBS:-$(nproc)}

t0=$(date +%s)
CC=clang CXX=clang++ cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODELZOO_FUZZ=ON \
  -DMODELZOO_WERROR=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz >/dev/null
echo "fuzz: built the targets in $(( $(date +%s) - t0 )) s"

if ((${#targets[@]} == 0)); then
  for f in "$top"/tests/fuzz/fuzz_*.cc; do targets+=("$(basename "$f" .cc)"); done
fi

run="$build/fuzz-run"
mkdir -p "$run"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fuzz_one() {  # target
  local t=$1 bin="$build/bin/$1" dir="$run/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$top/tests/fuzz/corpus/$t"/* "$dir/corpus/" 2>/dev/null || true
  local regs="$top/tests/fuzz/regressions/$t" dict=() status=0
  [ -f "$top/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$top/tests/fuzz/dict/$t.dict")
  # Every past crash must pass first.
  if [ -d "$regs" ] && compgen -G "$regs/*" >/dev/null; then
    "$bin" -runs=0 -close_fd_mask=3 "$regs" >"$dir/regressions.log" 2>&1 || status=1
  fi
  local before
  before=$(find "$dir/corpus" -type f | wc -l)
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -close_fd_mask=3 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${dict[@]}" "$dir/corpus" >"$dir/fuzz.log" 2>&1 || status=1
  local after execs rate inited done
  after=$(find "$dir/corpus" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz.log" | tail -1)
  inited=$(grep -m1 -o 'INITED cov: [0-9]*' "$dir/fuzz.log" | grep -o '[0-9]*$' || echo 0)
  done=$(grep -o 'cov: [0-9]*' "$dir/fuzz.log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  local found
  found=$(find "$dir/artifacts" -type f | sort | tr '\n' ' ')
  printf '%-20s %10s execs %7s exec/s  corpus %4d -> %-5d cov %5s -> %-5s (+%d)  %s\n' \
    "$t" "${execs:-?}" "${rate:-?}" "$before" "$after" "$inited" "$done" "$(( ${done:-0} - ${inited:-0} ))" \
    "$( ((status == 0)) && echo ok || echo "FAILED ${found:-(see $dir/fuzz.log, $dir/regressions.log)}")"
  echo $status >"$dir/status"
}

echo "fuzz: ${#targets[@]} targets, $seconds s each, $jobs at a time; work in $run"
failed=0
names=()
for t in "${targets[@]}"; do
  if [ ! -x "$build/bin/$t" ]; then echo "fuzz: no target $t" >&2; exit 2; fi
  fuzz_one "$t" &
  names+=("$t")
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
done
wait
for t in "${names[@]}"; do
  if [ "$(cat "$run/$t/status" 2>/dev/null)" != 0 ]; then
    failed=1
    echo "fuzz: $t failed (log $run/$t/fuzz.log); reproduce with $build/bin/$t FILE" >&2
  fi
done

if ((merge)); then
  for t in "${targets[@]}"; do
    mkdir -p "$run/$t/merged"
    "$build/bin/$t" -merge=1 -close_fd_mask=3 "$run/$t/merged" "$top/tests/fuzz/corpus/$t" "$run/$t/corpus" >/dev/null 2>&1
    echo "fuzz: $t: minimised corpus of $(find "$run/$t/merged" -type f | wc -l) inputs in $run/$t/merged (copy into tests/fuzz/corpus/$t to keep it)"
  done
fi
echo "fuzz: done in $(( $(date +%s) - t0 )) s"
exit $failed
