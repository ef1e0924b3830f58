#!/usr/bin/env bash
# Crash safety and exact resume, end to end.
#
# The kill test: a run is killed with SIGKILL at 20 random moments.  Every
# log must be readable by agon (show), by h5py (SWMR) and by h5dump (after
# the data-preserving `h5clear -s --increment=0`), and hold every row up to
# the last flush the writer completed (AGON_FLUSH_TRACE), each row equal to
# the uninterrupted run's.  Then each killed log is resumed, and its final
# datasets must equal the uninterrupted run's bit for bit; h5diff must find
# no difference but timestamps, the process id and the command line.
# Also: Ctrl-C and resume, resume refusals word for word.
# usage: e2e_resume.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
KILLS=${AGON_KILLS:-20}
T=$(pwd)/tmp_e2e_resume
rm -rf "$T" && mkdir -p "$T"
cd "$T"

if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "SKIPPED: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)"
  exit 77
fi

. "$SRC/tests/e2e_helpers.bash"

# Every source of state a resume must restore: epochs of a finite dataset
# (the data stream's place), Adam's moments and step counts, the latent
# stream, a metric that draws real samples once before training and one
# that draws fixed latents, sample and parameter snapshots.  Checkpoints
# come more rarely than flushes, so a resume also cuts rows back.
cat >kr.yaml <<'EOF'
description: kill and resume test bed
seed: 3
dataset: {plugin: fashion_mnist, limit: 1000}
generator: {plugin: mlp, hidden: [64], output_activation: tanh}
discriminator: {plugin: mlp, hidden: [64], activation: leaky_relu}
loss: {plugin: nonsaturating}
g_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
d_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
train: {steps: 500, batch_size: 32, latent_dim: 16}
log: {every: 1, samples_every: 50, n_samples: 16, params_every: 100,
      flush_seconds: 0.02, checkpoint_seconds: 0.2}
metrics:
  - {plugin: precision_recall, every: 50, n_real: 200, n_fake: 200, features: raw}
  - {plugin: latent_interpolation, every: 50}
EOF

start=$(date +%s.%N)
"$AGON" run kr.yaml -o ref.h5 --progress none >/dev/null 2>ref.err || bad "reference run: $(cat ref.err)"
ref_seconds=$("$PY" -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
echo "reference run: $ref_seconds s"

# The checks on one killed log (h5py through SWMR, as the writer left it).
cat >check_killed.py <<'EOF'
import sys
import h5py
import numpy as np

ref_path, log_path, trace_path = sys.argv[1:4]
flushed = 0
try:
    lines = open(trace_path).read().split()
    flushed = int(lines[-1]) if lines else 0
except FileNotFoundError:
    pass
problems = []
with h5py.File(ref_path, "r") as ref, h5py.File(log_path, "r", swmr=True) as log:
    steps = log["scalars/step"][()]
    if len(steps) < flushed:
        problems.append(f"/scalars holds {len(steps)} rows, the writer had flushed {flushed}")
    if not np.array_equal(steps, np.arange(1, len(steps) + 1)):
        problems.append("/scalars/step is not 1..n")

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or name.startswith(("checkpoint", "config")):
            return
        if name.startswith("provenance"):
            return
        got = obj[()]
        want = ref[name][()]
        if got.shape[1:] != want.shape[1:] or len(got) > len(want):
            problems.append(f"{name}: shape {got.shape} vs the reference's {want.shape}")
        elif not np.array_equal(got, want[: len(got)]):
            problems.append(f"{name}: rows differ from the reference's")

    log.visititems(visit)
    # Every row of a flushed step is there, in every table.
    for group in ["scalars"] + [f"metrics/{m}" for m in log["metrics"]]:
        g = log[group]
        if "step" not in g:
            continue
        s = g["step"][()]
        want = ref[group]["step"][()]
        need = int(np.sum(want <= flushed))
        if len(s) < need:
            problems.append(f"/{group}: {len(s)} rows, {need} were flushed")
for p in problems:
    print(p)
print(f"rows {len(steps)} flushed {flushed}")
sys.exit(1 if problems else 0)
EOF

stop_at() { # a random moment inside the reference run, in seconds
  "$PY" -c "import random,sys; print('%.3f' % random.uniform(0.05, 0.9 * float(sys.argv[1])))" "$ref_seconds"
}

killed_ok=0
resumed_ok=0
i=0
attempts=0
while [ "$i" -lt "$KILLS" ] && [ "$attempts" -lt $((3 * KILLS)) ]; do
  attempts=$((attempts + 1))
  log=k$((i + 1)).h5
  rm -f "$log" trace$((i + 1))
  at=$(stop_at)
  AGON_FLUSH_TRACE=trace$((i + 1)) "$AGON" run kr.yaml -o "$log" --progress none >/dev/null 2>run.err &
  pid=$!
  sleep "$at"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  # A run that finished before its moment came was not killed: draw again.
  if [ $? != 137 ]; then
    echo "run finished before $at s; another moment"
    continue
  fi
  # Killed during set-up, before the log went live: the path holds only
  # the empty file that claimed it (the log is built under another name).
  if [ ! -s "$log" ]; then
    echo "killed at $at s before the log existed (empty placeholder); another moment"
    continue
  fi
  i=$((i + 1))
  show=$("$AGON" show "$log" --no-config 2>show$i.err | head -1)
  if ! echo "$show" | grep -qE "interrupted at step [0-9]+ \(its writer, pid $pid, is gone\)"; then
    bad "kill $i at $at s: agon show says: $show"
    continue
  fi
  if ! "$PY" check_killed.py ref.h5 "$log" trace$i >check$i.txt 2>&1; then
    bad "kill $i at $at s: h5py: $(head -3 check$i.txt)"
    continue
  fi
  cp "$log" dump$i.h5
  if ! h5clear -s --increment=0 dump$i.h5 >/dev/null 2>&1 ||
     ! h5dump -d /scalars/loss_d dump$i.h5 >dump$i.txt 2>&1; then
    bad "kill $i at $at s: h5dump: $(head -c 300 dump$i.txt)"
    continue
  fi
  killed_ok=$((killed_ok + 1))
  echo "kill $i at $at s: $show; $(tail -1 check$i.txt)"
  if ! "$AGON" run --resume "$log" --progress none >resume$i.out 2>resume$i.err; then
    bad "resume $i: $(cat resume$i.err)"
    continue
  fi
  if ! "$PY" "$SRC/tests/h5_compare.py" ref.h5 "$log" >cmp$i.txt 2>&1; then
    bad "resume $i: the log differs from the uninterrupted run's: $(head -3 cmp$i.txt)"
    continue
  fi
  resumed_ok=$((resumed_ok + 1))
done
if [ "$killed_ok" = "$KILLS" ]; then ok "kill test: $killed_ok of $KILLS killed logs readable with every flushed row"
else bad "kill test: $killed_ok of $KILLS killed logs readable with every flushed row"; fi
if [ "$resumed_ok" = "$KILLS" ]; then ok "kill and resume: $resumed_ok of $KILLS logs equal the uninterrupted run's"
else bad "kill and resume: $resumed_ok of $KILLS logs equal the uninterrupted run's"; fi

# h5diff agrees on the last one: only timestamps, loop time, pid, command.
h5diff ref.h5 "k$KILLS.h5" >h5diff.txt 2>&1
if ! grep -vqE '^attribute: <(command|start_time|end_time|train_seconds|pid) of </>> and <(command|start_time|end_time|train_seconds|pid) of </>>$|^[0-9]+ differences? found$' h5diff.txt; then
  ok "h5diff: a resumed log differs from the uninterrupted one only in timestamps, pid and command"
else bad "h5diff: $(head -c 800 h5diff.txt)"; fi
"$PY" - "k$KILLS.h5" <<'EOF' && ok "a resumed log records where it was resumed" || bad "a resumed log records where it was resumed"
import sys, h5py, re
a = h5py.File(sys.argv[1], "r").attrs
sys.exit(0 if a["status"] == "completed" and re.fullmatch(r"from step \d+ at \S+Z", a["resumed"]) else 1)
EOF

# Ctrl-C (SIGINT) finishes the log as interrupted with a checkpoint at that
# step; resuming it gives the same log.  The run waits at step 200 (the
# probe_pause metric) until the signal has been sent, so the signal lands
# mid-run on any machine, however fast.
PROBES=(--plugin-path "$BUILD/tests/probes")
cp kr.yaml kp.yaml
printf '  - {plugin: probe_pause, every: 200, reached: %s/reached, go: %s/go}\n' "$T" "$T" >>kp.yaml
touch go
"$AGON" run kp.yaml -o refp.h5 --progress none "${PROBES[@]}" >/dev/null 2>refp.err || bad "reference run with the pause: $(cat refp.err)"
rm -f go reached
"$AGON" run kp.yaml -o int.h5 --progress none "${PROBES[@]}" >/dev/null 2>int.err &
pid=$!
for _ in $(seq 1 1200); do [ -e reached ] && break; sleep 0.05; done
kill -INT "$pid"
touch go
wait "$pid"
rc=$?
status=$("$PY" -c "import h5py; f = h5py.File('int.h5','r'); print(f.attrs['status'], f.attrs['steps_done'])")
if [ "$rc" = 130 ] && [ "$status" = "interrupted 200" ]; then ok "SIGINT at step 200: exit 130, log interrupted at step 200"
else bad "SIGINT: exit $rc, status and steps $status: $(cat int.err)"; fi
expect "resume an interrupted run" 0 "" -- "$AGON" run --resume int.h5 --progress none "${PROBES[@]}"
if "$PY" "$SRC/tests/h5_compare.py" refp.h5 int.h5 >cmp_int.txt 2>&1; then ok "interrupt and resume: equal to the uninterrupted run"
else bad "interrupt and resume: $(head -3 cmp_int.txt)"; fi

# A writer that dies while finishing (after leaving SWMR, before its final
# status) leaves the file marked open for writing, which every reader
# refuses; agon clears the mark (no data changes) and the run resumes.
cp ref.h5 fin.h5
"$PY" - <<'EOF'
import os, h5py
with h5py.File("fin.h5", "r+") as f:
    f.attrs["status"] = "running"
    f.attrs["pid"] = 2 ** 31 - 2          # no such process
f = h5py.File("fin.h5", "r+", libver="latest")
os._exit(0)                               # dies holding the file open for writing
EOF
if ! "$PY" -c "import h5py; h5py.File('fin.h5', 'r', swmr=True)" 2>/dev/null; then ok "a writer dead while finishing: readers refuse the file"
else bad "a writer dead while finishing: readers refuse the file"; fi
"$AGON" show fin.h5 --no-config >out.txt 2>err.txt
if [ "$(cat err.txt)" = "fin.h5: its writer died while finishing it; cleared HDF5's open-for-writing mark (no data changed)" ] &&
   grep -q "^fin.h5: interrupted at step 500 " out.txt; then ok "agon show recovers it: one line on stderr, interrupted at step 500"
else bad "agon show recovers it: $(cat err.txt) $(head -1 out.txt)"; fi
expect "and it resumes" 0 "" -- "$AGON" run --resume fin.h5 --progress none
if "$PY" "$SRC/tests/h5_compare.py" ref.h5 fin.h5 >cmp_fin.txt 2>&1; then ok "resumed after dying while finishing: equal to the uninterrupted run"
else bad "resumed after dying while finishing: $(head -3 cmp_fin.txt)"; fi

# Refusals.
expect "resume a completed run" 2 "ref.h5: the run completed all 500 steps, so there is nothing to resume; to train it further, raise train.steps with --set and add --force" -- \
  "$AGON" run --resume ref.h5
cp ref.h5 longer.h5
expect "changed config is refused, keys named" 3 "longer.h5: the experiment differs from the run's config in 2 keys: train.steps (log: 500, now: 600), log.every (log: 1, now: 2); resume without an experiment file to use the run's own config, or add --force" -- \
  "$AGON" run --resume longer.h5 --set train.steps=600 --set log.every=2
expect "a completed run trains further with --force" 0 "" -- \
  "$AGON" run --resume longer.h5 --set train.steps=600 --force --progress none
"$PY" - <<'EOF' && ok "forced resume: 600 steps, the first 500 as before" || bad "forced resume: 600 steps, the first 500 as before"
import h5py, numpy as np, sys
a, b = h5py.File("ref.h5", "r"), h5py.File("longer.h5", "r")
s = b["scalars/step"][()]
ok = (b.attrs["steps_done"] == 600 and np.array_equal(s, np.arange(1, 601))
      and np.array_equal(a["scalars/loss_d"][()], b["scalars/loss_d"][:500]))
sys.exit(0 if ok else 1)
EOF
"$AGON" run kr.yaml -o other.h5 --progress none --set train.steps=20 >/dev/null 2>&1
expect "an experiment file must match the log" 3 "other.h5: the experiment differs from the run's config in 1 key: train.steps (log: 20, now: 500); resume without an experiment file to use the run's own config, or add --force" -- \
  "$AGON" run --resume other.h5 kr.yaml
printf 'not an hdf5 file\n' >garbage.h5
expect "resume a file that is not HDF5" 5 "garbage.h5: not a readable HDF5 file (truncated, damaged or another format); give the path of an agon run log" -- \
  "$AGON" run --resume garbage.h5
head -c 3000 ref.h5 >cut.h5
expect "resume a truncated log" 5 "cut.h5: not a readable HDF5 file (truncated, damaged or another format); give the path of an agon run log" -- \
  "$AGON" run --resume cut.h5
"$PY" -c "import h5py; h5py.File('other_layout.h5', 'w')['x'] = [1.0, 2.0]"
expect "resume an HDF5 file that is not a run log" 5 "other_layout.h5: an HDF5 file but not an agon run log (no format_version or /config); give the path of a log written by agon run" -- \
  "$AGON" run --resume other_layout.h5
expect "resume a missing log" 5 "nope.h5: cannot open run log: No such file or directory" -- \
  "$AGON" run --resume nope.h5
expect "resume takes no -o" 2 "agon: run --resume continues the log it names; it takes no -o or --overwrite (see agon --help)" -- \
  "$AGON" run --resume ref.h5 -o x.h5
expect "--force needs --resume" 2 "agon: --force only applies to run --resume (see agon --help)" -- \
  "$AGON" run kr.yaml --force
# A checkpoint whose hashes do not match is never used: with one slot
# damaged the other is taken, with both damaged nothing is.
"$AGON" run kr.yaml -o torn.h5 --progress none --set train.steps=40 >/dev/null 2>&1
"$PY" - <<'EOF'
import h5py
with h5py.File("torn.h5", "r+") as f:
    f.attrs["status"] = "interrupted"
    f["checkpoint/0/floats"][5] += 1.0
EOF
expect "a torn slot is skipped" 0 "" -- "$AGON" run --resume torn.h5 --progress none
"$PY" - <<'EOF'
import h5py
with h5py.File("torn.h5", "r+") as f:
    f.attrs["status"] = "interrupted"
    f["checkpoint/0/floats"][5] += 1.0
    f["checkpoint/1/words"][1] += 1
EOF
expect "no whole checkpoint" 5 "torn.h5: holds no whole checkpoint (both slots are damaged or were never written); start the run again with --overwrite" -- \
  "$AGON" run --resume torn.h5

echo
echo "e2e_resume: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
