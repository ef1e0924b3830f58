#!/usr/bin/env bash
# The main job: install what is missing, build, and run the ring-of-8
# experiment into runs/ring8.h5, then summarise the log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
mkdir -p runs
./build/bin/agon run experiments/ring8.yaml -o runs/ring8.h5 --overwrite
./build/bin/agon show runs/ring8.h5 --no-config
