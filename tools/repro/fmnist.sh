#!/usr/bin/env bash
# Reproduction 5 (docs/results.md): DCGAN on Fashion-MNIST, minimax vs
# non-saturating, measured with the domain classifier over training.
# Trains the classifier first unless classifiers/fmnist.h5 exists.
#   bash tools/repro/fmnist.sh [OUT_DIR]        (default runs/repro/fmnist)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/repro/fmnist}
bash tools/build.sh >/dev/null
mkdir -p "$out"
[ -f classifiers/fmnist.h5 ] || ./build/bin/agon classifier train experiments/classifiers/fmnist.yaml
# The two runs side by side, one thread each (a run's bits do not depend
# on its thread count).
./build/bin/agon run experiments/repro/fmnist_quality.yaml --set train.threads=1 \
  -o "$out/nonsaturating.h5" --overwrite --quiet &
ns=$!
./build/bin/agon run experiments/repro/fmnist_quality.yaml --set train.threads=1 \
  --set loss.plugin=minimax -o "$out/minimax.h5" --overwrite --quiet &
mm=$!
wait $ns
wait $mm
/usr/bin/python3 tools/repro/figures.py fmnist "$out"
