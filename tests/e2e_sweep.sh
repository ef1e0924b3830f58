#!/usr/bin/env bash
# agon sweep, local backend: the shipped loss comparison (2 losses x 2 data
# sets x 5 seeds, shortened) at -j 2; a relaunch runs nothing; a deleted log
# is run again, alone; a plugin that segfaults in one configuration fails
# exactly those runs; Ctrl-C stops the runs with resumable logs and a
# relaunch resumes them to the logs of an uninterrupted sweep; the random
# axis; agon compare on the sweep; errors word for word.
# usage: e2e_sweep.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_sweep
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"
# The probe crashes with a real SIGSEGV under AddressSanitizer too.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"

# Sorted sha256 of every log in a folder: what "unchanged" means below.
sums() { (cd "$1" && sha256sum ./*.h5 | sort); }

# ---- the loss comparison, shortened ------------------------------------------
# The shipped loss comparison, shortened: fewer steps, narrower networks.
SHORT=(--set train.steps=100 --set train.batch_size=128 --set 'generator.hidden=[64,64]'
       --set 'discriminator.hidden=[64,64]' --set log.samples_every=50
       --set 'metrics[0].every=50' --set 'metrics[0].n_samples=500' --set 'metrics[1].every=100')
LC="$SRC/experiments/sweeps/loss_comparison.yaml"
"$AGON" sweep "$LC" -o lc -j 2 "${SHORT[@]}" >first.out 2>first.err
rc=$?
[ $rc = 0 ] && ok "sweep of 20 runs at -j 2: exit 0" || bad "sweep exit $rc: $(cat first.err)"
n=$(ls lc/*.h5 | wc -l)
[ "$n" = 20 ] && ok "20 logs" || bad "$n logs, expected 20"
grep -q "^agon sweep: 20 runs: 20 completed, 0 diverged, 0 failed, 0 interrupted" first.out &&
  ok "summary: 20 completed" || bad "summary: $(tail -1 first.out)"
# Every log is named by its run id, holds a completed run, and together
# they are the whole product of the axes.
$PY - lc <<'PY' && ok "logs: named by run id, completed, the 2x2x5 product" || bad "logs do not match the sweep"
import glob, os, sys, h5py, yaml
seen = set()
for p in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(p, "r") as f:
        a = f.attrs
        assert os.path.basename(p) == a["run_id"] + ".h5", p
        assert a["status"] == "completed", (p, a["status"])
        assert a["steps_done"] == 100
        c = yaml.safe_load(f["config"][()].decode())
        seen.add((c["loss"]["plugin"], c["dataset"]["layout"], c["dataset"]["std"], c["seed"]))
want = {(l, lay, std, s) for l in ("minimax", "nonsaturating")
        for lay, std in (("ring", 0.02), ("grid", 0.05)) for s in range(5)}
assert seen == want, seen ^ want
PY
[ -s lc/base.yaml ] && grep -q "plugin: nonsaturating" lc/base.yaml && ok "base.yaml: the resolved base" ||
  bad "base.yaml missing"
sums lc >sums1

expect "relaunch runs nothing" 0 "" -- "$AGON" sweep "$LC" -o lc -j 2 "${SHORT[@]}"
grep -q "20 already done, 0 to run" out.txt && ! grep -q "^completed " out.txt &&
  ok "relaunch: 20 already done, nothing started" || bad "relaunch output: $(cat out.txt)"
sums lc >sums2
cmp -s sums1 sums2 && ok "relaunch changed no log" || bad "relaunch changed logs"

victim=$(ls lc/*.h5 | sed -n 7p)
vid=$(basename "$victim" .h5)
mv "$victim" deleted.h5
expect "relaunch after deleting one log" 0 "" -- "$AGON" sweep "$LC" -o lc -j 2 "${SHORT[@]}"
started=$(grep -c "^completed " out.txt)
[ "$started" = 1 ] && grep -q "^completed   $vid " out.txt && ok "exactly the deleted run ran again ($vid)" ||
  bad "relaunch ran $started runs: $(cat out.txt)"
sums lc | grep -v "$vid" >sums3
grep -v "$vid" sums1 | cmp -s - sums3 && ok "the other 19 logs are untouched" || bad "other logs changed"
"$PY" "$SRC/tests/h5_compare.py" deleted.h5 "lc/$vid.h5" >cmp.txt &&
  ok "the rerun log equals the deleted one, dataset for dataset" || bad "rerun differs: $(cat cmp.txt)"

expect "dry run" 0 "" -- "$AGON" sweep "$LC" -o lc --dry-run "${SHORT[@]}"
[ "$(grep -c '  completed   loss.plugin=' out.txt)" = 20 ] &&
  grep -q "^20 runs in $T/lc: 20 completed, 0 diverged, 0 running, 0 to run" out.txt &&
  ok "dry run lists 20 completed runs" || bad "dry run: $(cat out.txt)"

expect "compare on the sweep" 0 "" -- "$AGON" compare lc --by loss.plugin,dataset.layout --metric mode_coverage/modes
[ "$(grep -cE '^(minimax|nonsaturating) +(ring|grid) +5 ' out.txt)" = 4 ] &&
  ok "compare: 4 groups of 5 runs" || bad "compare table: $(cat out.txt)"

# The report of the sweep: one curve chart per series the logs hold, four
# groups, rendered by Chromium into a non-blank screenshot.
expect "report of the sweep" 0 "" -- "$AGON" report lc -o lc/report.html
grep -q "^20 runs in 4 groups, 0 files skipped: " out.txt && ok "report: 20 runs in 4 groups" ||
  bad "report summary: $(cat out.txt)"
if command -v chromium >/dev/null; then
  chromium_page "$T/lc/report.html" --dump-dom >dom.html
  chromium_page "$T/lc/report.html" --screenshot="$T/shot.png" >/dev/null
  SRC="$SRC" $PY - lc <<'PY' && ok "Chromium renders one chart per series, non-blank" || bad "report rendering ($(tail -2 chromium.err))"
import glob, os, re, sys, h5py
import numpy as np
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests"))
from png_decode import decode_png
series = set()
for p in glob.glob(sys.argv[1] + "/*.h5"):
    with h5py.File(p, "r") as f:
        series |= {"scalars/" + c for c in f["scalars"] if c != "step"}
        for name, g in f["metrics"].items():
            if isinstance(g, h5py.Group):
                series |= {name + "/" + c for c, d in g.items()
                           if c != "step" and isinstance(d, h5py.Dataset) and d.ndim == 1}
dom = open("dom.html", encoding="utf-8").read()
drawn = re.findall(r'<svg class="agon-chart" data-series="([^"]+)"', dom)
assert sorted(drawn) == sorted(series), (sorted(drawn), sorted(series))
px = decode_png("shot.png").reshape(-1, 3)
codes = px[:, 0].astype(np.int64) * 65536 + px[:, 1] * 256 + px[:, 2]
values, counts = np.unique(codes, return_counts=True)
assert len(values) > 200 and 1 - counts.max() / len(codes) > 0.05, (len(values), counts.max())
PY
else
  echo "(Chromium is not installed: the rendering is not checked here; tools/deps.sh --test installs it)"
fi

# ---- a plugin that segfaults in one configuration ----------------------------
CRASH=$SRC/tests/sweeps/crash.yaml
PROBES=(--plugin-path "$BUILD/tests/probes")
"$AGON" sweep "$CRASH" -o crash -j 2 "${PROBES[@]}" >crash.out 2>crash.err
rc=$?
[ $rc = 8 ] && ok "segfaulting runs: exit 8" || bad "segfault sweep exit $rc: $(cat crash.err)"
nf=$(grep -c "failed: killed by signal 11 (Segmentation fault); run d_optimizer.segv_at=30 seed=[012]; its output is in $T/crash/[0-9a-f]*.err$" crash.err)
[ "$nf" = 3 ] && ok "the 3 runs with segv_at=30 failed with signal 11, one line each" ||
  bad "failure lines: $(cat crash.err)"
grep -q "^agon sweep: 6 runs: 3 completed, 0 diverged, 3 failed" crash.out &&
  ok "the other 3 runs completed" || bad "crash summary: $(tail -1 crash.out)"
for f in crash/*.err; do
  id=$(basename "$f" .err)
  if grep -q "segv_at=30" "$f"; then
    [ "$(cat crash/$id.exit)" = 139 ] || bad "$id.exit is $(cat crash/$id.exit), expected 139"
  fi
done
sums crash >csum1
"$AGON" sweep "$CRASH" -o crash --dry-run "${PROBES[@]}" >out.txt 2>&1
[ "$(grep -c 'failed      d_optimizer.segv_at=30 seed=[012]  \[killed by signal 11 (Segmentation fault), will start over\]$' out.txt)" = 3 ] &&
  ok "dry run: the crashed runs will start over" || bad "dry run after crash: $(cat out.txt)"
"$AGON" sweep "$CRASH" -o crash -j 2 "${PROBES[@]}" >out.txt 2>err.txt
rc=$?
[ $rc = 8 ] && [ "$(grep -c '^failed ' out.txt)" = 3 ] && ! grep -q "^completed " out.txt &&
  ok "relaunch reruns only the 3 failed runs (exit 8 again)" || bad "relaunch of crash sweep: rc $rc $(cat out.txt)"
grep -o '[0-9a-f]\{16\}\.h5: failed' crash.err | cut -c1-16 >failed_ids
grep -v -F -f failed_ids csum1 >csum1.ok
sums crash | grep -F -f csum1.ok | cmp -s - csum1.ok && ok "completed logs untouched by the relaunch" ||
  bad "completed logs changed"

# A run that fails with an error of its own (a data file that does not
# exist, found only when the run loads it): its message is the reason given.
cat >missing.yaml <<YAML
experiment: $SRC/tests/experiments/tiny_ring.yaml
set:
  train.steps: 50
grid:
  dataset: [{plugin: gaussian_mixture}, {plugin: hdf5, file: $T/nowhere.h5}]
YAML
"$AGON" sweep missing.yaml -o missing -j 2 >out.txt 2>err.txt
rc=$?
[ $rc = 8 ] && [ "$(wc -l <err.txt)" = 1 ] &&
  grep -q "^$T/missing/[0-9a-f]*\.h5: failed: .*nowhere\.h5.*; run dataset={plugin: hdf5, file: $T/nowhere.h5}; its output is in " err.txt &&
  grep -q "^agon sweep: 2 runs: 1 completed, 0 diverged, 1 failed" out.txt &&
  ok "a run's own error is its reason (exit 8, the other run completed)" || bad "missing data: rc $rc $(cat err.txt)"

# ---- Ctrl-C, then resume -----------------------------------------------------
LONG=$SRC/tests/sweeps/long.yaml
rm -f reached go
"$AGON" sweep "$LONG" -o long -j 2 "${PROBES[@]}" >long.out 2>long.err &
sweep_pid=$!
# Stop once both runs wait at step 2000 (probe_pause), however fast this
# machine is.
for i in $(seq 1200); do
  [ "$(cat reached 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.05
done
BUSY="$T/long: another agon sweep is running here; wait for the other agon sweep of this folder to end"
expect "a second sweep of the same folder" 5 "$BUSY" -- "$AGON" sweep "$LONG" -o long -j 2 "${PROBES[@]}"
# A refused launch writes nothing into the folder, not even the base.yaml
# that another `set` would change; nor does a dry run.
base=$(sha256sum <long/base.yaml)
files=$(ls -A long)
expect "a second sweep of the same folder, with another set" 5 "$BUSY" -- \
  "$AGON" sweep "$LONG" -o long -j 2 "${PROBES[@]}" --set log.samples_every=500
[ "$(sha256sum <long/base.yaml)" = "$base" ] && ok "the refused sweep left base.yaml as it was" ||
  bad "the refused sweep rewrote base.yaml"
expect "a dry run of the busy folder, with another set" 0 "" -- \
  "$AGON" sweep "$LONG" -o long --dry-run "${PROBES[@]}" --set log.samples_every=500
[ "$(sha256sum <long/base.yaml)" = "$base" ] && [ "$(ls -A long)" = "$files" ] &&
  ok "the dry run wrote nothing into the folder" || bad "the dry run changed the folder: $(ls -A long)"
kill -INT $sweep_pid
touch go
wait $sweep_pid
rc=$?
[ $rc = 130 ] && ok "Ctrl-C: exit 130" || bad "Ctrl-C exit $rc: $(cat long.err)"
grep -q "agon sweep: interrupted; the stopped runs are marked interrupted and resume when the same sweep is launched again" long.err &&
  ok "Ctrl-C: one line saying how to resume" || bad "Ctrl-C stderr: $(cat long.err)"
ps -eo args | grep -v grep | grep -q "long/.*\.h5" && bad "children still running after Ctrl-C" ||
  ok "no child left running"
$PY - long <<'PY' && ok "both logs say interrupted" || bad "logs after Ctrl-C not interrupted"
import glob, sys, h5py
ps = sorted(glob.glob(sys.argv[1] + "/*.h5"))
assert len(ps) == 2
for p in ps:
    with h5py.File(p, "r") as f:
        assert f.attrs["status"] == "interrupted", f.attrs["status"]
        assert 0 < f.attrs["steps_done"] < 4000
PY
"$AGON" sweep "$LONG" -o long --dry-run "${PROBES[@]}" >out.txt
[ "$(grep -c 'interrupted loss.plugin=.*stopped after step [0-9]*, will resume\]$' out.txt)" = 2 ] &&
  ok "dry run: both will resume" || bad "dry run after Ctrl-C: $(cat out.txt)"
expect "relaunch resumes" 0 "" -- "$AGON" sweep "$LONG" -o long -j 2 "${PROBES[@]}"
grep -q "resume" long/*.err && ok "relaunch ran agon run --resume" || bad "no resume in .err"
expect "an uninterrupted sweep for reference" 0 "" -- "$AGON" sweep "$LONG" -o ref -j 2 "${PROBES[@]}"
same=0
for f in ref/*.h5; do
  "$PY" "$SRC/tests/h5_compare.py" "$f" "long/$(basename "$f")" >cmp.txt && same=$((same + 1))
done
[ $same = 2 ] && ok "resumed logs equal the uninterrupted sweep's, dataset for dataset" ||
  bad "resumed logs differ: $(cat cmp.txt)"

# ---- the random axis ---------------------------------------------------------
cat >rand.yaml <<YAML
experiment: $SRC/experiments/ring8.yaml
random:
  count: 6
  seed: 11
  params:
    g_optimizer.lr: {log_uniform: [1.0e-5, 1.0e-3]}
    d_optimizer.beta1: {uniform: [0.0, 0.9]}
    loss.plugin: {choice: [minimax, nonsaturating]}
seeds: [3, 9]
YAML
"$AGON" sweep rand.yaml -o rand --dry-run >r1.txt && "$AGON" sweep rand.yaml -o rand --dry-run >r2.txt
cmp -s r1.txt r2.txt && [ "$(grep -c pending r1.txt)" = 12 ] && [ ! -e rand ] &&
  ok "random axis: 6 samples x 2 seeds, the same every time; a dry run creates nothing" ||
  bad "random dry runs: $(cat r1.txt)"
$PY - r1.txt <<'PY' && ok "random values inside their ranges, both choices drawn" || bad "random values out of range"
import re, sys
lrs, b1s, losses = [], [], set()
for line in open(sys.argv[1]):
    m = re.search(r"g_optimizer.lr=(\S+) d_optimizer.beta1=(\S+) loss.plugin=(\S+) seed=(\d+)", line)
    if m:
        lrs.append(float(m.group(1))); b1s.append(float(m.group(2))); losses.add(m.group(3))
assert len(lrs) == 12 and all(1e-5 <= x <= 1e-3 for x in lrs) and all(0 <= x <= 0.9 for x in b1s)
assert len(set(lrs)) == 6 and losses == {"minimax", "nonsaturating"}
PY

# ---- errors ------------------------------------------------------------------
printf 'experiment: %s/experiments/ring8.yaml\ngrd:\n  loss.plugin: [minimax]\n' "$SRC" >typo.yaml
expect "unknown key" 3 "typo.yaml:3:3: grd: unknown key 'grd' (did you mean 'grid'?); a sweep file has experiment, out, set, grid, zip, seeds, random, slurm and description" -- \
  "$AGON" sweep typo.yaml --dry-run
printf 'experiment: %s/experiments/ring8.yaml\ngrid:\n  loss.plugin: [minimax, minimx]\n' "$SRC" >badval.yaml
expect "invalid value, positioned in the sweep file" 3 "badval.yaml:3:26: loss.plugin: unknown loss 'minimx'; did you mean 'minimax'? (run loss.plugin=minimx)" -- \
  "$AGON" sweep badval.yaml --dry-run
printf 'experiment: %s/experiments/ring8.yaml\nzip:\n  loss.plugin: [minimax, nonsaturating]\n  seed: [1]\n' "$SRC" >zip.yaml
expect "zip lengths" 3 "zip.yaml:4:9: zip.seed: has 1 values but loss.plugin has 2; zipped lists are taken together and must have equal lengths" -- \
  "$AGON" sweep zip.yaml --dry-run
printf 'experiment: nowhere.yaml\n' >noexp.yaml
expect "missing experiment" 5 "noexp.yaml:1:13: experiment: cannot open 'nowhere.yaml': No such file or directory; the path is relative to the sweep file" -- \
  "$AGON" sweep noexp.yaml --dry-run
expect "-j 0" 2 "agon sweep: -j takes a number of runs at once (1 to 4096), not '0' (see agon sweep --help)" -- \
  "$AGON" sweep "$LC" -j 0
expect "--wait without slurm" 2 "agon sweep: --wait applies to --backend slurm only (see agon sweep --help)" -- \
  "$AGON" sweep "$LC" --wait
expect "no sweep file" 2 "agon sweep: sweep needs a sweep file (see agon sweep --help)" -- "$AGON" sweep
touch afile
expect "a folder that cannot be made" 5 "afile/x: cannot create the sweep's folder: Not a directory; choose another with -o DIR" -- \
  "$AGON" sweep "$LC" -o afile/x
printf 'experiment: %s/experiments/ring8.yaml\nseeds: [1, -2]\n' "$SRC" >negseed.yaml
expect "a negative seed" 3 "negseed.yaml:2:12: seeds[1]: expected a non-negative integer seed" -- \
  "$AGON" sweep negseed.yaml --dry-run
# Values that need quotes in a flow value keep their type through --set:
# a plain string with brackets stays one string; a negative number stays a
# number (the schema's range check, not a type error, refuses it).
printf 'experiment: %s/experiments/ring8.yaml\ngrid:\n  description:\n    - ring of 8 [radius 2] std 0.02\n' "$SRC" >quote.yaml
"$AGON" sweep quote.yaml -o quote -j 1 --set train.steps=2 --set 'metrics=[]' --set log.samples_every=0 >/dev/null 2>err.txt
$PY - quote <<'PY' && ok "a plain string with brackets round-trips through --set" || bad "flow string: $(cat err.txt)"
import glob, sys, h5py, yaml
[p] = glob.glob(sys.argv[1] + "/*.h5")
with h5py.File(p, "r") as f:
    c = yaml.safe_load(f["config"][()].decode())
assert c["description"] == "ring of 8 [radius 2] std 0.02", c["description"]
PY
printf 'experiment: %s/experiments/ring8.yaml\ngrid:\n  g_optimizer.beta1: [-0.5]\n' "$SRC" >neg.yaml
expect "a negative number stays a number" 3 "neg.yaml:3:23: g_optimizer.beta1: -0.5 is out of range [0, 1]; use a value from 0 to 1 (run g_optimizer.beta1=-0.5)" -- \
  "$AGON" sweep neg.yaml --dry-run

echo "e2e_sweep: $pass passed, $fail failed"
[ $fail = 0 ]
