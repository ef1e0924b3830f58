#!/usr/bin/env bash
# Reproduction 2 (docs/results.md): the generator's gradient norm under the
# minimax and the non-saturating loss while D wins (G frozen), same seed.
#   bash tools/repro/saturation.sh [OUT_DIR]     (default runs/repro/saturation)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/repro/saturation}
bash tools/build.sh >/dev/null
mkdir -p "$out"
./build/bin/agon run experiments/repro/saturation.yaml -o "$out/minimax.h5" --overwrite --quiet
./build/bin/agon run experiments/repro/saturation.yaml --set loss.plugin=nonsaturating \
  -o "$out/nonsaturating.h5" --overwrite --quiet
/usr/bin/python3 tools/repro/figures.py saturation "$out"
