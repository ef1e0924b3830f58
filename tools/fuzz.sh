#!/usr/bin/env bash
# Fuzzes every parser a user's file reaches with libFuzzer, under
# AddressSanitizer and UndefinedBehaviorSanitizer (tests/fuzz/fuzz_*.c):
#   config     experiment files: the config loader, YAML round trip, schemas
#   idx        the IDX files of the fashion_mnist dataset
#   hdf5_data  the hdf5 dataset's checks (structure-aware)
#   log        run logs: show, export, compare, report, run --resume
#              (structure-aware edits of real logs)
#   sweep      sweep files: agon sweep --dry-run
#   elf        the plugin loader's check of a file's bytes
#
#   bash tools/fuzz.sh [SECONDS] [HARNESS...]      (default: 60, every harness)
#
# SECONDS is the whole run, split evenly over the harnesses; with none
# named, every harness runs, in an order that rotates with the day, so
# that over the days each gets the first slot.  `bash tools/fuzz.sh 1800
# idx` fuzzes the IDX reader for 30 minutes.
#
# Builds into build-fuzz with clang.  Each harness keeps its corpus in
# build-fuzz/corpus/<harness> between runs and starts from
# build-fuzz/seeds/<harness>: real files (the shipped experiment and sweep
# files, small IDX files, descriptions and edits of real logs; see
# tests/fuzz/seeds.py) and the inputs of tests/fuzz/regressions/<harness>/
# (each once a finding, fixed).  A corpus of more than ten files per second
# of the slot is replayed from a random sample of that many (what the run
# finds joins the whole corpus), so that a grown corpus fits the slot.
# A crash, leak, hang (10 s), memory over 2 GiB or failed property leaves
# its input in build-fuzz/artifacts/<harness>/ and makes the script fail,
# after every harness had its slot.  libFuzzer's output is in
# build-fuzz/logs/<harness>.log; its final stats are printed here.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "agon: usage: bash tools/fuzz.sh [SECONDS] [HARNESS...]; SECONDS is a whole number" >&2
  exit 2
fi
all=(config idx hdf5_data log sweep elf)
bash tools/deps.sh
if ! command -v clang >/dev/null 2>&1; then
  echo "agon: fuzzing needs clang (Debian package clang); install it with apt-get install clang" >&2
  exit 1
fi
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DAGON_FUZZ=ON -DAGON_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" >/dev/null

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  # Rotate with the day: day d starts with harness d mod N.
  built=()
  for h in "${all[@]}"; do
    [ -x "build-fuzz/tests/fuzz/fuzz_$h" ] && built+=("$h")
  done
  first=$(( $(date -u +%s) / 86400 % ${#built[@]} ))
  harnesses=("${built[@]:first}" "${built[@]:0:first}")
fi
for h in "${harnesses[@]}"; do
  if [ ! -x "build-fuzz/tests/fuzz/fuzz_$h" ]; then
    echo "agon: no fuzz harness '$h' (have: ${all[*]}; fuzz_elf needs core/elf_check.c)" >&2
    exit 2
  fi
done
slot=$(( seconds / ${#harnesses[@]} ))
[ "$slot" -ge 1 ] || slot=1

# The corpus of the experiment-file harness once lived in build-fuzz/corpus.
mkdir -p build-fuzz/corpus/config
find build-fuzz/corpus -maxdepth 1 -type f -exec mv -t build-fuzz/corpus/config {} +
find build-fuzz/seeds -maxdepth 1 -type f -delete 2>/dev/null || true

# Seeds, dictionary and input size of each harness.
seed() {
  local h=$1 dir=build-fuzz/seeds/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  case $h in
    config) find experiments -name '*.yaml' -exec cp {} "$dir"/ \; ;;
    # Debian's interpreter, which has h5py and numpy (the first python3 on
    # PATH may be another).
    idx | hdf5_data | log) /usr/bin/python3 tests/fuzz/seeds.py "$h" "$dir" ;;
    sweep) cp experiments/sweeps/*.yaml tests/sweeps/*.yaml "$dir"/ ;;
    elf) cp build-fuzz/plugins/*.so "$dir"/ ;;
  esac
  if [ -d "tests/fuzz/regressions/$h" ]; then
    find "tests/fuzz/regressions/$h" -type f -exec cp {} "$dir"/ \;
  fi
}
options() {
  case $1 in
    config) echo "-dict=$PWD/tests/fuzz/yaml.dict -max_len=65536" ;;
    idx) echo "-dict=$PWD/tests/fuzz/idx.dict -max_len=65536" ;;
    hdf5_data | log) echo "-max_len=4096 -len_control=0" ;;
    sweep) echo "-dict=$PWD/tests/fuzz/sweep.dict -max_len=65536" ;;
    elf) echo "-max_len=1048576" ;;
  esac
}

echo "agon fuzz: ${#harnesses[@]} harnesses, $slot s each: ${harnesses[*]}"
failed=()
for h in "${harnesses[@]}"; do
  seed "$h"
  corpus=$PWD/build-fuzz/corpus/$h
  artifacts=$PWD/build-fuzz/artifacts/$h
  log=$PWD/build-fuzz/logs/$h.log
  mkdir -p "$corpus" "$artifacts" build-fuzz/logs
  # A corpus larger than the slot can replay: a sample of it, and what
  # the run finds goes into a fresh folder that joins the corpus after.
  limit=$(( 10 * slot ))
  work=""
  inputs=("$corpus")
  if [ "$(find "$corpus" -type f | wc -l)" -gt "$limit" ]; then
    work=$(mktemp -d "$PWD/build-fuzz/sample-$h.XXXXXX")
    mkdir "$work/new" "$work/sample"
    find "$corpus" -type f | shuf -n "$limit" | xargs -r cp -t "$work/sample"
    inputs=("$work/new" "$work/sample")
  fi
  # Absolute paths throughout: the harnesses work in directories of their
  # own.  Leak checking stays on (libFuzzer's -detect_leaks=1 is the default).
  rc=0
  # shellcheck disable=SC2046
  ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/tests/fuzz/fuzz_$h" "${inputs[@]}" "$PWD/build-fuzz/seeds/$h" \
    $(options "$h") -artifact_prefix="$artifacts/" -max_total_time="$slot" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  if [ -n "$work" ]; then
    find "$work/new" -type f -exec cp -n -t "$corpus" {} +
    rm -rf "$work"
  fi
  echo "== fuzz_$h: $slot s, corpus $(find "$corpus" -type f | wc -l) files"
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  grep -E '^stat::' "$log" || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$h")
    echo "-- fuzz_$h FAILED (exit $rc); the end of $log:"
    tail -n 60 "$log"
    echo "-- reproduce: build-fuzz/tests/fuzz/fuzz_$h $artifacts/<file>"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "agon fuzz: findings in ${failed[*]} (inputs in build-fuzz/artifacts/)" >&2
  exit 1
fi
echo "agon fuzz: no finding in ${harnesses[*]}"
