#!/usr/bin/env bash
# End-to-end tests of the agon program: runs, logs read back, errors
# checked word for word with their exit codes.
# usage: e2e_cli.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_cli
rm -rf "$T" && mkdir -p "$T"
cd "$T"

. "$SRC/tests/e2e_helpers.bash"

contains() { # NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: '$3' not in $2: $(head -c 600 "$2")"; fi
}
matches() { # NAME FILE EXTENDED-REGEX (of a whole line)
  if grep -qEx -- "$3" "$2"; then ok "$1"; else bad "$1: /$3/ not in $2: $(head -c 600 "$2")"; fi
}

# ---- help, plugins, validate ---------------------------------------------
expect "help" 0 "" -- "$AGON" --help
contains "help lists exit codes" out.txt "  6  training diverged (non-finite value)"
expect "unknown command" 2 "agon: unknown command 'rn'; did you mean 'run'? (see agon --help)" -- "$AGON" rn
expect "unknown option" 2 "agon: unknown option '--frobnicate' (see agon --help)" -- "$AGON" run x.yaml --frobnicate
expect "plugins" 0 "" -- "$AGON" plugins
for name in minimax nonsaturating mlp gaussian_mixture mode_coverage adam sgd; do
  contains "plugins lists $name" out.txt "$name"
done
expect "validate ring8" 0 "" -- "$AGON" validate "$SRC/experiments/ring8.yaml"
contains "validate prints resolved defaults" out.txt "freeze_d_from: -1"
if [ "$(tail -n 1 out.txt)" = "# memory: about 8.2 MB (G 2.6 MB, D 4.4 MB, optimizer state 339.8 kB, checkpoint 505.4 kB, step 149.5 kB, samples 270.3 kB)" ]; then
  ok "validate ends with the memory estimate, a YAML comment"
else bad "validate ends with the memory estimate: $(tail -n 1 out.txt)"; fi
for f in "$SRC"/experiments/*.yaml; do
  expect "validate $(basename "$f")" 0 "" -- "$AGON" validate "$f"
done

# ---- config errors: one positioned line each, exit 3 ----------------------
cat >bad_loss.yaml <<EOF
base: $SRC/experiments/ring8.yaml
loss:
  plugin: nonsaturatng
EOF
expect "unknown loss" 3 "bad_loss.yaml:3:11: loss.plugin: unknown loss 'nonsaturatng'; did you mean 'nonsaturating'?" -- "$AGON" validate bad_loss.yaml

cat >bad_keys.yaml <<EOF
base: $SRC/experiments/ring8.yaml
train:
  d_stpes: 2
  steps: many
  batch_size: 0
EOF
# Keys are checked in the merged map's order: the base's keys first.
expect "several errors at once" 3 "bad_keys.yaml:4:10: train.steps: expected an integer, got 'many'
bad_keys.yaml:5:15: train.batch_size: 0 is out of range [1, 1048576]; use a value from 1 to 1048576
bad_keys.yaml:3:3: train.d_stpes: unknown key 'd_stpes' for train; did you mean 'd_steps'?" -- "$AGON" validate bad_keys.yaml

cat >bad_top.yaml <<EOF
base: $SRC/experiments/ring8.yaml
trian: {steps: 5}
EOF
expect "unknown top-level key" 3 "bad_top.yaml:2:8: trian: unknown top-level key; did you mean 'train'?" -- "$AGON" validate bad_top.yaml

expect "--set typed by the schema" 3 "--set:1:1: train.d_steps: expected an integer, got 'two'" -- \
  "$AGON" validate "$SRC/experiments/ring8.yaml" --set train.d_steps=two
expect "--set without =" 3 "*" -- "$AGON" validate "$SRC/experiments/ring8.yaml" --set train.d_steps
expect "missing experiment file" 5 "*" -- "$AGON" validate does_not_exist.yaml
contains "missing file message names it" err.txt "does_not_exist.yaml"

cat >minimal.yaml <<EOF
dataset: {plugin: gaussian_mixture}
generator: {plugin: mlp}
discriminator: {plugin: mlp}
loss: {plugin: nonsaturating}
metrics:
  - plugin: mode_coverage
EOF
expect "minimal experiment validates" 0 "" -- "$AGON" validate minimal.yaml
if "$PY" - out.txt <<'EOF'
import sys
text = open(sys.argv[1]).read()
assert "d_optimizer:\n  plugin: adam\n" in text, text
assert "g_optimizer:\n  plugin: adam\n" in text, text
assert "  every: 1000\n" in text, text
EOF
then ok "defaults: adam optimizers, metric every 1000"; else bad "defaults: adam optimizers, metric every 1000"; fi
expect "metric every 0" 3 "--set:1:1: metrics[0].every: 0 is out of range [1, 1e12]; metrics run every N >= 1 steps and at the last step" -- \
  "$AGON" validate minimal.yaml --set metrics[0].every=0
expect "metric used twice" 3 "*" -- \
  "$AGON" validate minimal.yaml --set 'metrics=[{plugin: mode_coverage}, {plugin: mode_coverage}]'
contains "metric used twice names it" err.txt "metric name 'mode_coverage' is used twice; give one of them 'name: OTHER'"
expect "simultaneous needs single steps" 3 "*" -- \
  "$AGON" validate minimal.yaml --set train.update=simultaneous --set train.d_steps=2
contains "simultaneous message says what to do" err.txt "set d_steps and g_steps to 1 or use update: alternating"
expect "metric default interval" 0 "" -- "$AGON" run minimal.yaml -o every.h5 --set train.steps=2500 --set train.batch_size=16 --set metrics[0].n_samples=50 --quiet
if "$PY" -c "import h5py,sys; s=list(h5py.File('every.h5','r')['metrics/mode_coverage/step'][:]); sys.exit(0 if s==[1000,2000,2500] else 1)"; then
  ok "metric runs every 1000 steps and at the last"; else bad "metric runs every 1000 steps and at the last"; fi

cat >bad_d.yaml <<EOF
base: $SRC/experiments/ring8.yaml
discriminator:
  output_activation: sigmoid
EOF
expect "plugin-level check at validate" 3 "*" -- "$AGON" validate bad_d.yaml
contains "discriminator must output a logit" err.txt "discriminator.output_activation"

FIX=$3/tests/fixtures
expect "broken plugin on the search path" 4 "$FIX/wrong_abi/wrong_abi.so: plugin abi failed: built for agon plugin ABI 999, this agon has ABI 3; rebuild the plugin against this agon's headers" -- \
  "$AGON" validate "$SRC/experiments/ring8.yaml" --plugin-path "$FIX/wrong_abi"
expect "plugins lists what loaded despite a broken file" 4 "*" -- "$AGON" plugins --plugin-path "$FIX/wrong_abi"
contains "plugins still lists the good ones" out.txt "gaussian_mixture"
contains "plugins names the broken file" err.txt "wrong_abi.so: plugin abi failed"

expect "missing plugin dir" 4 "*" -- "$AGON" plugins --plugin-path "$T/nope"
contains "missing plugin dir names it" err.txt "$T/nope"

# ---- memory: sized before anything large is allocated -----------------------
cat >big.yaml <<EOF
base: $SRC/experiments/ring8.yaml
generator:
  hidden: [65536, 65536]
EOF
cat >huge.yaml <<EOF
base: $SRC/experiments/ring8.yaml
train:
  latent_dim: 1048576
  batch_size: 1048576
EOF
# 13.2 TB is more than any machine gives, so no limit is needed.
expect "an experiment larger than the machine is refused" 3 "*" -- "$AGON" validate huge.yaml
matches "the refusal names the key that dominates" err.txt \
  "huge\.yaml:4:15: train\.batch_size: a run would need about 13\.2 TB of memory for train\.batch_size 1048576, more than the [0-9.]+ [kMGT]B (this machine can give|the (address-space|data-size) limit leaves \(ulimit -[vd]\)); lower train\.batch_size or train\.latent_dim"
# Under an address-space limit, whatever the machine has: refused at once
# (exit 3), not by a failing allocation (exit 1) or the OOM killer.  The
# sanitizers reserve terabytes of address space, so there a limit cannot
# be set.
if grep -q '^AGON_SANITIZE:BOOL=ON' "$3/CMakeCache.txt" 2>/dev/null; then
  ok "memory-limit checks skipped: a sanitizer build cannot run under ulimit -v"
else
  limited() { (ulimit -v 1000000 && "$@"); }
  refused='big\.yaml:3:11: generator\.hidden: a run would need about 121\.5 GB of memory for train\.batch_size 512, more than the [0-9.]+ MB the address-space limit leaves \(ulimit -v\); lower generator\.hidden or train\.batch_size'
  expect "validate refuses what the limit cannot hold" 3 "*" -- limited "$AGON" validate big.yaml
  matches "validate names the widest layers and the limit" err.txt "$refused"
  expect "run refuses before allocating" 3 "*" -- limited "$AGON" run big.yaml -o big.h5 --progress none
  matches "run names the widest layers and the limit" err.txt "$refused"
  if [ ! -e big.h5 ]; then ok "a refused run writes no log"; else bad "a refused run wrote big.h5"; fi
  expect "what fits the limit validates" 0 "" -- limited "$AGON" validate "$SRC/experiments/fmnist_dcgan.yaml"
  contains "its estimate is printed" out.txt "# memory: about 124.7 MB (G 47.4 MB, D 58.3 MB, optimizer state 7.3 MB, checkpoint 11.0 MB, step 479.0 kB, samples 226.3 kB)"
  expect "what fits the limit runs" 0 "" -- limited "$AGON" run "$SRC/experiments/ring8.yaml" -o limited.h5 --set train.steps=20 --progress none
fi

# ---- a short run, read back -------------------------------------------------
short=(--set train.steps=300 --set log.samples_every=100 --set metrics[0].every=100 --progress none)
expect "short run" 0 "" -- "$AGON" run "$SRC/experiments/ring8.yaml" -o a.h5 "${short[@]}"
contains "run summary" out.txt "a.h5: completed, 300 steps"
expect "show" 0 "" -- "$AGON" show a.h5
contains "show status" out.txt "completed"
contains "show metric" out.txt "mode_coverage"
contains "show config" out.txt "plugin: nonsaturating"
contains "show a metric's tensor outputs" out.txt "metric mode_coverage @ step 300: modes"
contains "show a metric's tensor shapes" out.txt "  tensors histogram [8]"
expect "run with tensor-only metrics" 0 "" -- "$AGON" run "$SRC/experiments/ring8.yaml" -o t.h5 \
  --set train.steps=20 --progress none \
  --set 'metrics=[{plugin: d_landscape, every: 10, grid: 16}, {plugin: latent_interpolation, every: 10, points: 5}]'
expect "show tensor-only metrics" 0 "" -- "$AGON" show t.h5 --no-config
contains "show d_landscape" out.txt "metric d_landscape @ step 20: tensors d [16, 16]"
contains "show latent_interpolation" out.txt "metric latent_interpolation @ step 20: tensors samples [5, 2], endpoints [2, 64]"
# A run killed with SIGKILL: show tells a live writer from a dead one.
"$AGON" run "$SRC/experiments/ring8.yaml" -o killed.h5 --set train.steps=1000000 \
  --set log.flush_seconds=0.2 --progress none >/dev/null 2>&1 &
writer=$!
# Waits for the event (the live log), never for a fixed time: at most 60 s.
for _ in $(seq 600); do
  [ -f killed.h5 ] && "$AGON" show killed.h5 --no-config 2>/dev/null | grep -q "steps so far" && break
  sleep 0.1
done
expect "show a live run" 0 "" -- "$AGON" show killed.h5 --no-config
contains "show names the live writer" out.txt "killed.h5: running (pid $writer), "
kill -9 "$writer"
wait "$writer" 2>/dev/null
expect "show a killed run" 0 "" -- "$AGON" show killed.h5 --no-config
contains "show says interrupted" out.txt "killed.h5: interrupted at step "
contains "show names the dead writer" out.txt "(its writer, pid $writer, is gone); the log holds every step up to its last flush"
if h5dump -H a.h5 >/dev/null 2>&1; then ok "h5dump reads the log"; else bad "h5dump reads the log"; fi
if "$PY" - a.h5 <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["status"] == "completed", f.attrs["status"]
assert f.attrs["steps_done"] == 300
assert f.attrs["format_version"] == 1
assert len(f.attrs["run_id"]) == 16
steps = f["scalars/step"][:]
assert list(steps) == list(range(1, 301)), steps[:5]
for s in ["loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"]:
    v = f["scalars/" + s][:]
    assert v.shape == (300,) and np.all(np.isfinite(v)), s
assert list(f["metrics/mode_coverage/step"][:]) == [100, 200, 300]
assert f["metrics/mode_coverage"].attrs["n_samples"] == "2500"
assert f["metrics/mode_coverage"].attrs["plugin"] == "mode_coverage"
assert f["samples/x"].shape == (4, 1024, 2), f["samples/x"].shape
assert list(f["samples/step"][:]) == [0, 100, 200, 300]
assert "plugin: nonsaturating" in f["config"][()].decode()
for p in ["gaussian_mixture", "mlp", "nonsaturating", "adam", "mode_coverage"]:
    assert len(f["provenance/plugins/" + p].attrs["sha256"]) == 64, p
assert f["final/generator/0.weight"].shape == (128, 64)
EOF
then ok "log layout read back with h5py"; else bad "log layout read back with h5py"; fi

# ---- reproducibility ---------------------------------------------------------
"$AGON" run "$SRC/experiments/ring8.yaml" -o b.h5 "${short[@]}" >/dev/null 2>&1
if "$PY" "$SRC/tests/h5_compare.py" a.h5 b.h5 >cmp.txt; then
  ok "same config and seed: identical datasets"
else bad "same config and seed: identical datasets: $(cat cmp.txt)"; fi
# h5diff, the HDF5 tool, agrees: only the timestamps, the loop time, the process id and the command line
# (which names the output file) differ.
h5diff a.h5 b.h5 >h5diff.txt 2>&1
if [ -s h5diff.txt ] && ! grep -vqE '^attribute: <(command|start_time|end_time|train_seconds|pid) of </>> and <(command|start_time|end_time|train_seconds|pid) of </>>$|^[0-9]+ differences? found$' h5diff.txt; then
  ok "h5diff: only timestamps and command differ"
else bad "h5diff: only timestamps and command differ: $(head -c 800 h5diff.txt)"; fi
"$AGON" run "$SRC/experiments/ring8.yaml" -o c.h5 "${short[@]}" --set 'metrics=[]' >/dev/null 2>&1
if "$PY" "$SRC/tests/h5_compare.py" a.h5 c.h5 --only scalars --only samples --only final >cmp.txt; then
  ok "metric off: training bit-identical"
else bad "metric off: training bit-identical: $(cat cmp.txt)"; fi
"$AGON" run "$SRC/experiments/ring8.yaml" -o d.h5 "${short[@]}" --set seed=1 >/dev/null 2>&1
if ! "$PY" "$SRC/tests/h5_compare.py" a.h5 d.h5 --only scalars >cmp.txt; then
  ok "another seed: different trajectory"
else bad "another seed: different trajectory"; fi

# An existing log is never replaced by accident.
expect "existing output refused" 5 "a.h5: already exists; choose another output path (-o) or pass --overwrite to replace it" -- \
  "$AGON" run "$SRC/experiments/ring8.yaml" -o a.h5 "${short[@]}" --set seed=5
if "$PY" "$SRC/tests/h5_compare.py" a.h5 b.h5 >cmp.txt; then
  ok "refused run left the existing log untouched"
else bad "refused run left the existing log untouched: $(cat cmp.txt)"; fi
expect "--overwrite replaces" 0 "" -- "$AGON" run "$SRC/experiments/ring8.yaml" -o b.h5 "${short[@]}" --overwrite
if "$PY" "$SRC/tests/h5_compare.py" a.h5 b.h5 >cmp.txt; then
  ok "overwritten log identical to the first"
else bad "overwritten log identical to the first: $(cat cmp.txt)"; fi

# ---- divergence ----------------------------------------------------------------
expect "divergence exits 6" 6 "*" -- "$AGON" run "$SRC/experiments/ring8.yaml" -o div.h5 \
  --set train.steps=200 --set 'd_optimizer={plugin: sgd, lr: 1e30}' \
  --set 'g_optimizer={plugin: sgd, lr: 1e30}' --progress none
contains "divergence message names step and series" err.txt "is not finite"
expect "show diverged" 0 "" -- "$AGON" show div.h5 --no-config
contains "show says diverged" out.txt "diverged"
if h5dump -H div.h5 >/dev/null 2>&1; then ok "diverged log readable"; else bad "diverged log readable"; fi

# ---- output errors ---------------------------------------------------------------
expect "unwritable output" 5 "*" -- "$AGON" run "$SRC/experiments/ring8.yaml" -o "$T/no/such/dir/x.h5" --set train.steps=5 --progress none
contains "unwritable output names the path" err.txt "$T/no/such/dir/x.h5"
expect "show a non-log" 5 "*" -- "$AGON" show bad_loss.yaml

# ---- hostile input --------------------------------------------------------------
mkfifo fifo.yaml
expect "a FIFO is not read (no hang)" 5 "fifo.yaml: cannot read file: not a regular file (a FIFO, device or socket); check the path" -- \
  timeout 20 "$AGON" validate fifo.yaml
echo precious >notes.txt
expect "--overwrite never replaces a non-log file" 5 "notes.txt: is not an HDF5 run log, so --overwrite will not replace it; choose another output path (-o)" -- \
  "$AGON" run "$SRC/experiments/ring8.yaml" -o notes.txt --overwrite --set train.steps=5
contains "the non-log file is intact" notes.txt "precious"
expect "metric name must be a group name" 3 "--set:1:1: metrics[0].name: metric name '../x' must be 1 to 64 of a-z, 0-9 and _ (it names the log group /metrics/<name>)" -- \
  "$AGON" validate minimal.yaml --set 'metrics[0].name=../x'
expect "help after a command" 0 "" -- "$AGON" run --help
contains "help after a command prints usage" out.txt "usage: agon COMMAND"
expect "empty -o" 2 "agon: -o needs a file name, not an empty string (see agon --help)" -- "$AGON" run minimal.yaml -o ''
expect "empty --set value" 2 "agon: --set train.steps= needs a value after '='; to use the default, leave the --set out (see agon --help)" -- \
  "$AGON" validate minimal.yaml --set train.steps=
expect "empty --set= value" 2 "agon: --set train.steps= needs a value after '='; to use the default, leave the --set out (see agon --help)" -- \
  "$AGON" validate minimal.yaml --set=train.steps=
many_sets=()
for _ in $(seq 1025); do many_sets+=("--set=seed=1"); done
expect "more --set= options than agon keeps" 2 "agon: too many --set options (see agon --help)" -- \
  "$AGON" validate minimal.yaml "${many_sets[@]}"
many_dirs=()
for _ in $(seq 65); do many_dirs+=("--plugin-path=."); done
expect "more --plugin-path= options than agon keeps" 2 "agon: too many --plugin-path options (see agon --help)" -- \
  "$AGON" validate minimal.yaml "${many_dirs[@]}"
expect "NaN for a number" 3 "--set:1:1: g_optimizer.lr: .nan is not a number; use a value from 0 to inf" -- \
  "$AGON" validate minimal.yaml --set g_optimizer.lr=.nan
expect "settings without a plugin use the default optimizer" 0 "" -- "$AGON" validate minimal.yaml --set g_optimizer.lr=1e-4
if "$PY" - out.txt <<'EOF'
import sys
text = open(sys.argv[1]).read()
assert "g_optimizer:\n  lr: 1e-4\n  plugin: adam\n" in text, text
EOF
then ok "--set g_optimizer.lr keeps adam"; else bad "--set g_optimizer.lr keeps adam"; fi
expect "float beyond float32" 3 "--set:1:1: dataset.radius: 1e39 is too large for agon's 32-bit floats (at most 3.4e38 in magnitude)" -- \
  "$AGON" validate minimal.yaml --set dataset.radius=1e39
"$AGON" validate minimal.yaml >/dev/full 2>full.err
rc=$?
if [ "$rc" = 5 ] && grep -q "cannot write the output" full.err; then ok "stdout write failure is reported"; else bad "stdout write failure is reported (exit $rc: $(cat full.err))"; fi
# A closed pipe on stdout does not kill a run before its log is finished.
"$AGON" run minimal.yaml -o piped.h5 --set train.steps=3000 --set train.batch_size=16 --progress plain | head -c 1 >/dev/null
if "$PY" -c "import h5py,sys; f=h5py.File('piped.h5','r'); sys.exit(0 if f.attrs['status']=='completed' else 1)"; then
  ok "closed stdout pipe: run still completes its log"; else bad "closed stdout pipe: run still completes its log"; fi

echo
echo "e2e_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
