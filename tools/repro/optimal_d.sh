#!/usr/bin/env bash
# Reproduction 1 (docs/results.md): D against the optimal D* for a frozen G
# on the 1-D mixture, and V(D, G) against -log 4 + 2 JS.
#   bash tools/repro/optimal_d.sh [OUT_DIR]     (default runs/repro/optimal_d)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/repro/optimal_d}
bash tools/build.sh >/dev/null
mkdir -p "$out"
./build/bin/agon run experiments/repro/optimal_d.yaml -o "$out/optimal_d.h5" --overwrite --quiet
/usr/bin/python3 tools/repro/figures.py optimal_d "$out"
