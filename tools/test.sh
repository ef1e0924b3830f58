#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test
# (with the portable kernels, then with the machine's native ones); then the
# sanitizer build of the suite and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."
# What only the tests need (Slurm, Chromium), then what the build needs.
bash tools/deps.sh --test
bash tools/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# Again with the machine's own OpenBLAS kernels (train.kernels: native):
# no test may depend on the kernel family, and on a CPU with AVX-512 this
# runs the SkylakeX-type kernels, whose small products allocate.  The
# classifier training (minutes) is left to the pass above.
AGON_KERNELS=native ctest --test-dir build --output-on-failure -j "$(nproc)" -E '^e2e_classifier$'
# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
bash tools/sanitize.sh
# A short fuzzing run, split over every parser's harness (libFuzzer, ASan +
# UBSan; the order rotates with the day).
bash tools/fuzz.sh 60
