#!/usr/bin/env bash
# The test suite again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer (Debug, into ./build-san).  Any memory error,
# leak or undefined behaviour fails the test that ran into it.
# e2e_classifier (training the real Fashion-MNIST classifier, minutes under
# the sanitizers) is left to the plain build; e2e_resume kills and resumes 5
# runs here instead of 20.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DAGON_SANITIZE=ON >/dev/null
cmake --build build-san -j "$(nproc)" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 AGON_KILLS=5 \
  ctest --test-dir build-san --output-on-failure -j "$(nproc)" -E '^e2e_classifier$'
