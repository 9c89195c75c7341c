#!/usr/bin/env bash
# Regenerates the seed corpus (tests/fuzz/corpus/*/seed-*) with the project's own encoders.
# Needs a configured ordinary build (default: build); the result is meant to be checked in.
#   tests/fuzz/make_corpus.sh [BUILD_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
cmake --build "$build" -j2 --target modelzoo-fuzz-make-corpus
find "$top/tests/fuzz/corpus" -name 'seed-*' -delete 2>/dev/null || true
"$build/bin/modelzoo-fuzz-make-corpus" "$top/tests/fuzz/corpus"
