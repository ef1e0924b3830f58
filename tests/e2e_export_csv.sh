#!/usr/bin/env bash
# agon export --csv: every table of a run log as CSV with a step column,
# read back against the log value for value (17 significant digits are
# exact); a log whose writer was killed; errors word for word.
# usage: e2e_export_csv.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_export_csv
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

cat >c.yaml <<YAML
base: $SRC/tests/experiments/tiny_ring.yaml
seed: 2
train: {steps: 300}
log: {every: 3, samples_every: 100, n_samples: 64}
YAML
"$AGON" run c.yaml -o c.h5 --progress none >/dev/null 2>run.err || bad "run: $(cat run.err)"
expect "export --csv" 0 "" -- "$AGON" export c.h5 --csv out/csv
if [ "$(cat out.txt)" = "out/csv/scalars.csv
out/csv/metrics_mode_coverage.csv" ]; then ok "export --csv prints the files written"
else bad "export --csv printed: $(cat out.txt)"; fi
check_csv() { # LOG DIR
  "$PY" - "$1" "$2" <<'PYEOF'
import csv, math, sys
import h5py
log, d = sys.argv[1:3]
problems = []
def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))
with h5py.File(log, "r", swmr=True) as f:
    tables = {"scalars": f["scalars"]}
    for name, g in f["metrics"].items():
        if "step" in g:
            tables["metrics_" + name] = g
    for stem, g in tables.items():
        cols = g.attrs["columns"].split(",")
        n = min(len(g[c]) for c in ["step"] + cols)
        with open(f"{d}/{stem}.csv") as fh:
            rows = list(csv.reader(fh))
        if rows[0] != ["step"] + cols:
            problems.append(f"{stem}: header {rows[0]}")
        if len(rows) - 1 != n:
            problems.append(f"{stem}: {len(rows) - 1} rows, the log has {n}")
        for i, row in enumerate(rows[1:n + 1]):
            if int(row[0]) != int(g["step"][i]):
                problems.append(f"{stem}: step of row {i}")
                break
            for c, text in zip(cols, row[1:]):
                if not same(float(text), float(g[c][i])):
                    problems.append(f"{stem}.{c} row {i}: {text} vs {g[c][i]!r}")
                    break
    import os
    extra = sorted(set(os.listdir(d)) - {s + ".csv" for s in tables})
    if extra:
        problems.append(f"unexpected files {extra}")
for p in problems[:5]:
    print(p)
sys.exit(1 if problems else 0)
PYEOF
}
check_csv c.h5 out/csv && ok "CSV values equal the log's exactly" || bad "CSV values equal the log's exactly"
expect "export --csv and --png together" 0 "" -- "$AGON" export c.h5 --csv both --png both/png --steps last
if grep -q "both/scalars.csv" out.txt && grep -q "both/png/samples_step300.png" out.txt; then ok "both outputs written"
else bad "both outputs written: $(cat out.txt)"; fi

# A log whose writer was killed: exported through SWMR, every whole row.
# Killed once it has flushed twice (the flush trace says when), however
# fast or slow the machine is.
rm -f k.trace
AGON_FLUSH_TRACE=k.trace "$AGON" run c.yaml -o k.h5 --progress none --set train.steps=100000000 \
  --set log.flush_seconds=0.05 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1200); do [ "$(cat k.trace 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
expect "export --csv of a killed run" 0 "" -- "$AGON" export k.h5 --csv killed
check_csv k.h5 killed && ok "killed run: CSV rows equal the log's" || bad "killed run: CSV rows equal the log's"

# Errors.
"$PY" -c "import h5py; h5py.File('plain.h5', 'w')['x'] = [1.0]"
expect "not a run log" 5 "plain.h5: no /scalars table; this is not an agon run log (docs/hdf5-layout.md), so there is nothing to export" -- \
  "$AGON" export plain.h5 --csv x
touch afile
expect "--csv folder is a file" 5 "afile: exists and is not a folder; give --csv a folder (it is created if missing)" -- \
  "$AGON" export c.h5 --csv afile
expect "--csv needs a value" 2 "agon export: --csv needs a folder name, not an empty string; usage: agon export RUN.h5 [--png DIR] [--csv DIR] [--steps all|last|S1,S2,...] [--cols N]
                   [--scale K] [--no-landscape]" -- "$AGON" export c.h5 --csv ""

echo
echo "e2e_export_csv: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
