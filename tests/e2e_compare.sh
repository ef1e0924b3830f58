#!/usr/bin/env bash
# agon compare: runs grouped by config keys, with n, mean, std, 95% CI,
# min and max, checked against an independent computation from the logs;
# text, CSV and Markdown; --best; skipped files; errors word for word.
# usage: e2e_compare.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_compare
rm -rf "$T" && mkdir -p "$T/runs"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

cat >c.yaml <<YAML
base: $SRC/tests/experiments/tiny_ring.yaml
train: {steps: 1500}
log: {every: 100, samples_every: 0}
metrics:
  - {plugin: mode_coverage, every: 500, n_samples: 400}
YAML
for loss in minimax nonsaturating; do
  for seed in 1 2 3; do
    "$AGON" run c.yaml -o runs/${loss}_$seed.h5 --set loss.plugin=$loss --set seed=$seed \
      --progress none >/dev/null 2>>runs.err || bad "run $loss $seed: $(cat runs.err)"
  done
done
printf 'junk' >runs/junk.h5

expect "compare by loss" 0 "runs/junk.h5: skipped: not an HDF5 file" -- \
  "$AGON" compare runs --by loss.plugin --metric mode_coverage/high_quality
cp out.txt text.txt
expect "compare as CSV" 0 "*" -- "$AGON" compare runs --by loss.plugin --metric mode_coverage/high_quality --format csv
cp out.txt table.csv
expect "compare --best max as CSV" 0 "*" -- "$AGON" compare runs --by loss.plugin --metric mode_coverage/high_quality --format csv --best max
cp out.txt best.csv
"$PY" - <<'PYEOF' && ok "groups, n, mean, std, ci95, min, max equal an independent computation" || bad "statistics"
import csv, glob, math, sys
import h5py
t975 = {2: 4.303}            # Student's t, two-sided 95%, 2 degrees of freedom
def stats(values):
    n = len(values); m = sum(values) / n
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return [n, m, s, t975[n - 1] * s / math.sqrt(n), min(values), max(values)]
final, best = {}, {}
for path in sorted(glob.glob("runs/*_*.h5")):
    with h5py.File(path, "r") as f:
        loss = path.split("/")[1].split("_")[0]
        col = f["metrics/mode_coverage/high_quality"][()]
        final.setdefault(loss, []).append(float(col[-1]))
        best.setdefault(loss, []).append(float(max(col)))
ok = True
for name, data in (("table.csv", final), ("best.csv", best)):
    rows = list(csv.reader(open(name)))
    ok &= rows[0] == ["loss.plugin", "n", "mean", "std", "ci95", "min", "max"]
    ok &= [r[0] for r in rows[1:]] == ["minimax", "nonsaturating"]
    for r in rows[1:]:
        want = stats(data[r[0]])
        got = [int(r[1])] + [float(x) for x in r[2:]]
        ok &= got[0] == want[0] and all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
                                        for a, b in zip(got[1:], want[1:]))
# The text table shows the same numbers to 4 significant digits, aligned.
lines = open("text.txt").read().splitlines()
ok &= lines[0].split() == ["loss.plugin", "n", "mean", "std", "ci95", "min", "max"]
for line in lines[1:]:
    parts = line.split()
    want = stats(final[parts[0]])
    ok &= all(float(p) == float("%.4g" % w) for p, w in zip(parts[1:], want))
ok &= len({len(l) for l in lines}) == 1
sys.exit(0 if ok else 1)
PYEOF
expect "Markdown" 0 "*" -- "$AGON" compare runs/minimax_1.h5 runs/minimax_2.h5 --by loss.plugin,seed --metric scalars/loss_d --format markdown
if [ "$(sed -n 1,2p out.txt)" = "| loss.plugin | seed | n | mean | std | ci95 | min | max |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" ] && [ "$(wc -l <out.txt)" = 4 ] && grep -q "^| minimax | 2 | 1 | " out.txt; then
  ok "Markdown: header, alignment row, one row per group"
else bad "Markdown: $(cat out.txt)"; fi
expect "no --by: one group of all runs" 0 "runs/junk.h5: skipped: not an HDF5 file" -- "$AGON" compare runs --metric mode_coverage/modes
if [ "$(sed -n 2p out.txt | awk '{print $1}')" = 6 ]; then ok "no --by: n is 6"; else bad "no --by: $(cat out.txt)"; fi

"$AGON" compare runs/minimax_1.h5 --metric divergence/js >out.txt 2>err.txt
rc=$?
if [ "$rc" = 5 ] && [ "$(cat err.txt)" = "runs/minimax_1.h5: skipped: no table /metrics/divergence
agon compare: no run log with divergence/js; give logs written by agon run" ]; then ok "no log has the metric: exit 5, each log named"
else bad "no log has the metric: exit $rc: $(cat err.txt)"; fi
USAGE="usage: agon compare RUN.h5|DIR... --metric TABLE/COLUMN [--by KEY[,KEY...]]
                    [--best max|min] [--format text|csv|markdown]"
expect "--metric is required" 2 "agon compare: --metric TABLE/COLUMN is missing; $USAGE" -- "$AGON" compare runs
expect "--metric needs TABLE/COLUMN" 2 "agon compare: --metric takes TABLE/COLUMN (mode_coverage/modes or scalars/loss_d), not 'modes'; $USAGE" -- \
  "$AGON" compare runs --metric modes
expect "--format" 2 "agon compare: --format takes text, csv or markdown, not 'xml'; $USAGE" -- \
  "$AGON" compare runs --metric scalars/loss_d --format xml
expect "missing input" 5 "nope: no such file or folder; give run logs or folders of them" -- \
  "$AGON" compare nope --metric scalars/loss_d

echo
echo "e2e_compare: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
