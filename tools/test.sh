#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test;
# then the sanitizer build of the suite and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."
# What only the tests need (Slurm, Chromium), then what the build needs.
bash tools/deps.sh --test
bash tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
bash tools/sanitize.sh
# A short run of the config-loader fuzzer (libFuzzer, ASan + UBSan).
bash tools/fuzz.sh 60
