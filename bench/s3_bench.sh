#!/bin/bash
# The s3 plugin over loopback against Debian's awscli, measured in the same run
# (bench/README.md, "s3_bench.sh"). Starts s3rver (tests/s3/s3rver.js; npm tools installed by
# tests/npm/install.sh into the build tree), times `aws s3 cp` of one object, then
# `modelzoo pull` of the same model into an empty cache (4 streams and 1), and prints the
# ratios; then lists a bucket of many small objects and reports the plugin's peak RSS. Never
# judges speed: exits 0 unless something broke.
# Usage: bench/s3_bench.sh [--quick] [--bin-dir DIR]
#   full:    1 GiB object; 10 000 objects listed
#   --quick: 32 MiB; 1 000 objects  (CI)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/build/bin"
size=$((1024 << 20)); objects=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) size=$((32 << 20)); objects=1000 ;;
    --bin-dir) bin="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
for p in modelzood modelzoo modelzoo-plugin-s3; do
  [ -x "$bin/$p" ] || { echo "s3_bench: $bin/$p is not built" >&2; exit 1; }
done
aws=/usr/bin/aws
[ -x "$aws" ] || { echo "s3_bench: Debian's awscli is missing (scripts/deps.sh)" >&2; exit 1; }
rc=0; npm=$("$top/tests/npm/install.sh" "$(dirname "$bin")") || rc=$?
if [ "$rc" -eq 77 ]; then echo "s3_bench: skipped (no npm tools)"; exit 0; fi
[ "$rc" -eq 0 ] || exit "$rc"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mzs3bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
now() { date +%s.%N; }

node --openssl-legacy-provider "$top/tests/s3/s3rver.js" "$npm" "$tmp/data" "$tmp/port" --bucket models 2>"$tmp/s3rver.log" &
pids+=("$!")
for _ in $(seq 400); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "s3_bench: s3rver did not start" >&2; cat "$tmp/s3rver.log" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$tmp/port")"
awsc() { AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null \
  AWS_SHARED_CREDENTIALS_FILE=/dev/null "$aws" --endpoint-url "$url" "$@"; }

# The model: one object, its sha256 in modelzoo.yaml (what a publisher writes once).
mkdir -p "$tmp/up/bench/big/1.0.0"
head -c "$size" /dev/urandom >"$tmp/up/bench/big/1.0.0/model.bin"
printf 'sha256:\n  model.bin: %s\n' "$(sha256sum "$tmp/up/bench/big/1.0.0/model.bin" | cut -d' ' -f1)" >"$tmp/up/bench/big/1.0.0/modelzoo.yaml"
awsc s3 sync "$tmp/up" s3://models/zoo/ --only-show-errors
rm -rf "$tmp/up"

t0=$(now); awsc s3 cp s3://models/zoo/bench/big/1.0.0/model.bin "$tmp/aws.out" --only-show-errors; t1=$(now)
aws_s=$(echo "$t1 - $t0" | bc -l)

start_daemon() {  # streams; sets d and dpid
  d="$tmp/d.$RANDOM"
  mkdir -p "$d/run" "$d/cache" "$d/data"
  cat >"$d/cfg.yaml" <<YAML
sources:
  - name: bucket
    plugin: s3
    config: {bucket: models, prefix: zoo, endpoint: "$url", access_key_id: S3RVER, secret_access_key: S3RVER, streams: $1}
YAML
  MODELZOO_RUNTIME_DIR="$d/run" MODELZOO_CACHE_DIR="$d/cache" MODELZOO_DATA_DIR="$d/data" \
    "$bin/modelzood" --config "$d/cfg.yaml" >"$d/daemon.log" 2>&1 &
  dpid=$!; pids+=("$dpid")
  for _ in $(seq 200); do [ -S "$d/run/client.sock" ] && break; sleep 0.05; done
  "$bin/modelzoo" --runtime-dir "$d/run" plugins >/dev/null 2>&1 || true
}
stop_daemon() { kill "$dpid"; wait "$dpid" 2>/dev/null || true; rm -rf "$d"; }
pull_time() {  # streams
  start_daemon "$1"
  local t1 t2
  t1=$(now)
  "$bin/modelzoo" --runtime-dir "$d/run" pull bench/big >"$d/pull.out" 2>&1 || { cat "$d/pull.out" "$d/daemon.log" >&2; exit 1; }
  t2=$(now)
  local got; got=$(find "$d/cache" -type f -size "$(stat -c %s "$tmp/aws.out")c" | head -1)
  cmp -s "$got" "$tmp/aws.out" || { echo "s3_bench: the pulled file differs from awscli's" >&2; exit 1; }
  stop_daemon
  echo "$t2 - $t1" | bc -l
}
p4=$(pull_time 4); p1=$(pull_time 1)
rm -f "$tmp/aws.out"
r4=$(echo "$p4 / $aws_s" | bc -l); r1=$(echo "$p1 / $aws_s" | bc -l)

# A listing of many objects: models of 5 files each (keys as a sync writes them).
mkdir -p "$tmp/many"
for ((i = 0; i < objects / 5; i++)); do
  mkdir -p "$tmp/many/org/m$i/1.0.0"
  for f in a b c d e; do echo "$i$f" >"$tmp/many/org/m$i/1.0.0/$f.txt"; done
done
awsc s3 sync "$tmp/many" s3://models/zoo/ --only-show-errors
rm -rf "$tmp/many"
start_daemon 4
pid=$("$bin/modelzoo" --runtime-dir "$d/run" --json plugins | /usr/bin/python3 -c \
  'import json,sys; print([p["pid"] for p in json.load(sys.stdin)["plugins"] if p["name"]=="bucket"][0])')
rss0=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
t1=$(now)
listed=$("$bin/modelzoo" --runtime-dir "$d/run" --json models | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["models"]))')
t2=$(now)
rss1=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
stop_daemon
list_s=$(echo "$t2 - $t1" | bc -l)

printf 's3_bench: %d MiB over loopback: aws s3 cp %.2f s; modelzoo pull, 4 streams %.2f s (%.2fx aws), 1 stream %.2f s (%.2fx aws)\n' \
  $((size >> 20)) "$aws_s" "$p4" "$r4" "$p1" "$r1"
printf 's3_bench: listing %d objects (%d models): %.2f s; plugin peak RSS %d KiB before, %d KiB after\n' \
  $((objects + 1)) "$listed" "$list_s" "$rss0" "$rss1"
printf '{"bench":"s3","size":%d,"aws_cp_s":%.3f,"pull_4_streams_s":%.3f,"pull_4_streams_over_aws":%.3f,"pull_1_stream_s":%.3f,"pull_1_stream_over_aws":%.3f,"objects_listed":%d,"models":%d,"list_s":%.3f,"plugin_peak_rss_kib_before":%d,"plugin_peak_rss_kib_after":%d}\n' \
  "$size" "$aws_s" "$p4" "$r4" "$p1" "$r1" $((objects + 1)) "$listed" "$list_s" "$rss0" "$rss1"
