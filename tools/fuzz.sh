#!/usr/bin/env bash
# Fuzzes the experiment-file loader with libFuzzer (tests/fuzz/fuzz_config.c)
# under AddressSanitizer and UndefinedBehaviorSanitizer.
#   bash tools/fuzz.sh [SECONDS]        (default 60)
# Builds into build-fuzz with clang, seeds the corpus with every shipped
# experiment file and the inputs of tests/fuzz/regressions (each once a
# finding, fixed, with a unit test of its own), and keeps the grown corpus
# in build-fuzz/corpus between runs.  A crash, leak, hang (10 s) or failed property leaves its input in
# build-fuzz/ (crash-*, leak-*, timeout-*) and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash tools/deps.sh
if ! command -v clang >/dev/null 2>&1; then
  echo "agon: fuzzing needs clang (Debian package clang); install it with apt-get install clang" >&2
  exit 1
fi
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DAGON_FUZZ=ON -DAGON_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null
mkdir -p build-fuzz/corpus build-fuzz/seeds
find experiments -name '*.yaml' -exec cp {} build-fuzz/seeds/ \;
cp tests/fuzz/regressions/* build-fuzz/seeds/
cd build-fuzz
# Absolute paths: the harness works in a directory of its own.  Leak
# checking stays on (libFuzzer's -detect_leaks=1 is the default).
ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 ./tests/fuzz/fuzz_config "$PWD/corpus" "$PWD/seeds" \
  -dict="$PWD/../tests/fuzz/yaml.dict" -artifact_prefix="$PWD/" -max_total_time="$seconds" \
  -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
