#!/usr/bin/env bash
# Writes tests/digests/<run>.digest anew from the build in BUILD_DIR
# (default ./build).  A change that alters results on purpose runs this
# and commits the new digests with it, saying why the bits changed.
# usage: bash tests/digests/update.sh [BUILD_DIR]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
. "$SRC/tests/digests/runs.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in "${DIGEST_RUNS[@]}"; do
  AGON_PLUGIN_PATH= digest_run "$run" "$BUILD/bin/agon" "$SRC" "$tmp/$run.h5" >/dev/null
  "$BUILD/tests/h5_digest" "$tmp/$run.h5" | sed "1s|.*|# $run: tests/digests/runs.bash; path, first row, rows, SHA-256 of the raw values|" \
    >"$SRC/tests/digests/$run.digest"
  echo "tests/digests/$run.digest: $(grep -vc '^#' "$SRC/tests/digests/$run.digest") lines"
done
