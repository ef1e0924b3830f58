#!/usr/bin/env bash
# Reproduction 4 (docs/results.md): mode coverage on the ring of 8 and the
# grid of 25, minimax vs non-saturating loss, seeds 0-4: 20 runs, two at a
# time (each on one thread), then the table of modes captured, high-quality
# samples and KL at the last step, mean ± std over the seeds.
#   bash tools/repro/coverage.sh [OUT_DIR]      (default runs/repro/coverage)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/repro/coverage}
jobs=${AGON_REPRO_JOBS:-2}
bash tools/build.sh >/dev/null
mkdir -p "$out"
for exp in ring8 ring8_minimax grid25 grid25_minimax; do
  for seed in 0 1 2 3 4; do
    log="$out/${exp}_s${seed}.h5"
    /usr/bin/python3 tools/repro/figures.py completed "$log" && continue
    echo "experiments/$exp.yaml $seed $log"
  done
done | xargs -r -P "$jobs" -L 1 sh -c \
  './build/bin/agon run "$0" --set seed="$1" --set train.threads=1 -o "$2" --overwrite --quiet'
/usr/bin/python3 tools/repro/figures.py coverage "$out"
