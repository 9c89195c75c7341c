#!/bin/bash
# The huggingface plugin over loopback against curl, measured in the same run
# (bench/README.md, "hf_bench.sh"). Starts tests/hfhub/hub_server.py (a stand-in for the hub,
# resolve answering 302 to its CDN port), times `curl -L -o` of the file, then
# `modelzoo pull` of the same repo into an empty cache, and prints the ratio; then the same
# with the server's per-connection rate limit. Never judges speed: exits 0 unless something
# broke. Usage: bench/hf_bench.sh [--quick] [--bin-dir DIR]
#   full:    1 GiB file; rate-limited part 64 MiB at 16 MiB/s per connection
#   --quick: 16 MiB; rate-limited part 8 MiB at 16 MiB/s  (CI: a few seconds)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/build/bin"
size=$((1024 << 20)); rl_size=$((64 << 20)); rate=$((16 << 20))
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) size=$((16 << 20)); rl_size=$((8 << 20)) ;;
    --bin-dir) bin="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
for p in modelzood modelzoo modelzoo-plugin-huggingface; do
  [ -x "$bin/$p" ] || { echo "hf_bench: $bin/$p is not built" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "hf_bench: curl is missing (Debian: curl)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mzhfbench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

now() { date +%s.%N; }
start_hub() {  # args: extra server flags; sets hub_port
  rm -f "$tmp/port"
  /usr/bin/python3 "$top/tests/hfhub/hub_server.py" --root "$tmp/root" --port-file "$tmp/port" "$@" 2>>"$tmp/hub.log" &
  hub_pid=$!; pids+=("$hub_pid")
  for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  [ -s "$tmp/port" ] || { echo "hf_bench: the hub did not start" >&2; cat "$tmp/hub.log" >&2; exit 1; }
  hub_port=$(cut -d' ' -f1 "$tmp/port")
}
stop_hub() { kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; }
# curl of the file: prints its seconds, leaves the bytes in $tmp/curl.out.
curl_time() {  # repo
  local repo=$1 t0 t1
  # untimed: the hub hashes a repo's files on the first question about it
  curl -sS -o /dev/null "http://127.0.0.1:$hub_port/api/models/$repo/revision/main?blobs=true"
  t0=$(now)
  curl -sS -L -o "$tmp/curl.out" "http://127.0.0.1:$hub_port/$repo/resolve/main/model.safetensors"
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
# An empty-cache pull with that many streams per file: prints its seconds; checks the bytes
# against curl's.
pull_time() {  # repo streams
  local repo=$1 streams=$2 t1 t2 d="$tmp/d.$RANDOM"
  mkdir -p "$d/run" "$d/cache" "$d/data"
  cat >"$d/cfg.yaml" <<YAML
sources:
  - name: hf
    plugin: huggingface
    config: {endpoint: "http://127.0.0.1:$hub_port", prefix: hf/, streams: $streams}
YAML
  MODELZOO_RUNTIME_DIR="$d/run" MODELZOO_CACHE_DIR="$d/cache" MODELZOO_DATA_DIR="$d/data" \
    "$bin/modelzood" --config "$d/cfg.yaml" >"$d/daemon.log" 2>&1 &
  local dpid=$!; pids+=("$dpid")
  for _ in $(seq 200); do [ -S "$d/run/client.sock" ] && break; sleep 0.05; done
  "$bin/modelzoo" --runtime-dir "$d/run" plugins >/dev/null 2>&1 || true
  t1=$(now)
  "$bin/modelzoo" --runtime-dir "$d/run" pull "hf/$repo" >"$d/pull.out" 2>&1 || { cat "$d/pull.out" "$d/daemon.log" >&2; exit 1; }
  t2=$(now)
  local got; got=$(find "$d/cache" -type f -size "$(stat -c %s "$tmp/curl.out")c" | head -1)
  cmp -s "$got" "$tmp/curl.out" || { echo "hf_bench: the pulled file differs from curl's" >&2; exit 1; }
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  rm -rf "$d"
  echo "$t2 - $t1" | bc -l
}

mkdir -p "$tmp/root/bench/big" "$tmp/root/bench/slow"
head -c "$size" /dev/urandom >"$tmp/root/bench/big/model.safetensors"
head -c "$rl_size" /dev/urandom >"$tmp/root/bench/slow/model.safetensors"

start_hub
c1=$(curl_time bench/big); p1=$(pull_time bench/big 1); p1s=$(pull_time bench/big 4)
stop_hub
start_hub --rate-limit "$rate"
c2=$(curl_time bench/slow); p2=$(pull_time bench/slow 4); p2one=$(pull_time bench/slow 1)
stop_hub

r1=$(echo "$p1 / $c1" | bc -l); r1s=$(echo "$p1s / $c1" | bc -l); r2=$(echo "$c2 / $p2" | bc -l); r2one=$(echo "$c2 / $p2one" | bc -l)
best=$(echo "if ($r1s < $r1) $r1s else $r1" | bc -l)
printf 'hf_bench: %d MiB over loopback: curl -o %.2f s; modelzoo pull, 1 stream %.2f s (%.2fx curl), 4 streams %.2f s (%.2fx curl) (target <= 1.1x: %s)\n' \
  $((size >> 20)) "$c1" "$p1" "$r1" "$p1s" "$r1s" "$(echo "$best <= 1.1" | bc -l | sed 's/1/met/;s/0/MISSED/')"
printf 'hf_bench: %d MiB at %d MiB/s per connection: curl %.2f s; modelzoo pull, 4 streams %.2f s (speed-up %.2fx; target >= 2x: %s), 1 stream %.2f s (%.2fx)\n' \
  $((rl_size >> 20)) $((rate >> 20)) "$c2" "$p2" "$r2" "$(echo "$r2 >= 2" | bc -l | sed 's/1/met/;s/0/MISSED/')" "$p2one" "$r2one"
printf '{"bench":"hf","size":%d,"curl_s":%.3f,"pull_s":%.3f,"pull_over_curl":%.3f,"pull_4_streams_s":%.3f,"pull_4_streams_over_curl":%.3f,"rate_limited_size":%d,"rate_limited_curl_s":%.3f,"rate_limited_pull_s":%.3f,"rate_limited_speedup":%.3f,"rate_limited_1_stream_speedup":%.3f}\n' \
  "$size" "$c1" "$p1" "$r1" "$p1s" "$r1s" "$rl_size" "$c2" "$p2" "$r2" "$r2one"
