#!/usr/bin/env bash
# Reproduction 3 (docs/results.md): mode hopping on the ring of 8, with D
# frozen from step 1500 and with 5 G steps per D step; prints where the
# high-quality samples sit (per-mode histogram) over time.
#   bash tools/repro/hopping.sh [OUT_DIR]       (default runs/repro/hopping)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/repro/hopping}
bash tools/build.sh >/dev/null
mkdir -p "$out"
./build/bin/agon run experiments/repro/mode_hopping.yaml -o "$out/frozen_d.h5" --overwrite \
  --quiet &
frozen=$!
./build/bin/agon run experiments/repro/mode_hopping_gsteps.yaml -o "$out/g_steps.h5" \
  --overwrite --quiet
wait $frozen
/usr/bin/python3 tools/repro/figures.py hopping "$out"
