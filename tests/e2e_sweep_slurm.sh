#!/usr/bin/env bash
# agon sweep --backend slurm against a real single-node Slurm started here:
# the shortened loss comparison as one job array gives the same completed
# logs as the local backend; a relaunch submits nothing; a deleted log is
# resubmitted alone; segfaulting runs are failed and visible; names with
# spaces, quotes, $(...) and backticks are data to sbatch and bash; runs
# cancelled with scancel are resumed by the next launch.
# usage: e2e_sweep_slurm.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
. "$SRC/tests/e2e_helpers.bash"
. "$SRC/tests/slurm_local.bash"
if ! slurm_have; then
  echo "SKIP: Slurm is not installed (munge, slurmctld, slurmd, slurm-client; bash tools/deps.sh --test installs them)"
  exit 77
fi
T=$(pwd)/tmp_e2e_sweep_slurm
if [ -d "$T/cluster" ]; then slurm_stop "$T/cluster"; fi
rm -rf "$T" && mkdir -p "$T"
cd "$T"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"
trap 'slurm_stop "$T/cluster"' EXIT
# 8 claimed CPUs on this machine's cores: short tasks overlap their
# start-up latency (a run's result does not depend on it).
slurm_start "$T/cluster" 8 || { bad "start a Slurm cluster: $(tail -3 "$T"/cluster/log/*.log)"; exit 1; }
ok "a private Slurm cluster is up ($(sinfo -h -o '%P %D %c %T'))"

# The shipped loss comparison, shortened: fewer steps, narrower networks.
SHORT=(--set train.steps=100 --set train.batch_size=128 --set 'generator.hidden=[64,64]'
       --set 'discriminator.hidden=[64,64]' --set log.samples_every=50
       --set 'metrics[0].every=50' --set 'metrics[0].n_samples=500' --set 'metrics[1].every=100')
LC="$SRC/experiments/sweeps/loss_comparison.yaml"
"$AGON" sweep "$LC" -o viaslurm --backend slurm --wait "${SHORT[@]}" >s1.out 2>s1.err
rc=$?
[ $rc = 0 ] && ok "20 runs as one job array, --wait: exit 0" || bad "slurm sweep exit $rc: $(cat s1.err) $(tail -3 s1.out)"
grep -q "^agon sweep: submitted 20 of 20 runs as Slurm job array [0-9]*" s1.out && ok "one array of 20 tasks" ||
  bad "submission line: $(head -1 s1.out)"
grep -q "^agon sweep: 20 runs: 20 completed, 0 diverged, 0 failed, 0 interrupted$" s1.out &&
  ok "--wait reports 20 completed" || bad "wait summary: $(tail -1 s1.out)"
[ "$(grep -c '^completed   [0-9a-f]\{16\}  loss.plugin=' s1.out)" = 20 ] && ok "--wait lists every run's state" ||
  bad "per-run lines: $(cat s1.out)"
[ "$(ls viaslurm/slurm/array-*.sh | wc -l)" = 1 ] && grep -q "^#SBATCH --array=0-19%20$" viaslurm/slurm/array-*.sh &&
  grep -q "^#SBATCH --time=00:30:00$" viaslurm/slurm/array-*.sh && ok "the job script carries the sweep file's slurm settings" ||
  bad "job script: $(head -12 viaslurm/slurm/array-*.sh)"

"$AGON" sweep "$LC" -o local -j 2 "${SHORT[@]}" >l.out 2>l.err || bad "local sweep: $(cat l.err)"
(cd viaslurm && ls *.h5) >slurm.list
(cd local && ls *.h5) >local.list
cmp -s slurm.list local.list && [ "$(wc -l <slurm.list)" = 20 ] && ok "Slurm and local give the same 20 run ids" ||
  bad "run ids differ: $(diff slurm.list local.list)"
same=0
for f in $(cat local.list); do
  "$PY" "$SRC/tests/h5_compare.py" "local/$f" "viaslurm/$f" >cmp.txt && same=$((same + 1))
done
[ $same = 20 ] && ok "every Slurm log equals its local twin, dataset for dataset" || bad "$((20 - same)) logs differ: $(cat cmp.txt)"

expect "relaunch under Slurm" 0 "" -- "$AGON" sweep "$LC" -o viaslurm --backend slurm --wait "${SHORT[@]}"
grep -q "^agon sweep: nothing to submit: 20 of 20 runs done, 0 queued or running$" out.txt &&
  ok "relaunch submits nothing" || bad "relaunch: $(cat out.txt)"
victim=$(sed -n 5p slurm.list)
rm "viaslurm/$victim"
expect "relaunch after deleting one log" 0 "" -- "$AGON" sweep "$LC" -o viaslurm --backend slurm --wait "${SHORT[@]}"
grep -q "^agon sweep: submitted 1 of 20 runs as Slurm job array" out.txt && ok "exactly the deleted run resubmitted" ||
  bad "resubmission: $(cat out.txt)"
"$PY" "$SRC/tests/h5_compare.py" "local/$victim" "viaslurm/$victim" >cmp.txt && ok "and it equals its local twin" ||
  bad "resubmitted run differs: $(cat cmp.txt)"

# ---- segfaults under Slurm --------------------------------------------------
CRASH=$SRC/tests/sweeps/crash.yaml
"$AGON" sweep "$CRASH" -o crash --backend slurm --wait --plugin-path "$BUILD/tests/probes" \
  --partition debug --throttle 4 --cpus 1 --time 5 --sbatch --mem=100 --sbatch --comment=agon-test >c.out 2>c.err
rc=$?
S=$(ls crash/slurm/array-*.sh)
grep -q "^#SBATCH --array=0-5%4$" "$S" && grep -q "^#SBATCH --partition=debug$" "$S" &&
  grep -q "^#SBATCH --time=5$" "$S" && grep -q "^#SBATCH --cpus-per-task=1$" "$S" &&
  grep -q "^#SBATCH --mem=100$" "$S" && grep -q "^#SBATCH --comment=agon-test$" "$S" &&
  ok "flags --partition, --throttle, --cpus, --time, --sbatch reach the job script" || bad "job script: $(grep SBATCH "$S")"
[ $rc = 8 ] && ok "segfaulting runs under Slurm: exit 8" || bad "crash sweep exit $rc: $(cat c.err)"
[ "$(grep -c 'failed: killed by signal 11 (Segmentation fault); run d_optimizer.segv_at=30 seed=[012]; .*launch the sweep again to resubmit it$' c.err)" = 3 ] &&
  ok "the 3 crashed tasks are named, one line each" || bad "crash lines: $(cat c.err)"
grep -q "^agon sweep: 6 runs: 3 completed, 0 diverged, 3 failed, 0 interrupted$" c.out && ok "the other 3 completed" ||
  bad "crash summary: $(tail -1 c.out)"

# ---- names that a shell would run, through sbatch ---------------------------
# sbatch reads the quoted #SBATCH values back whole (the job's name; its
# output lands in the sweep's own slurm/ folder) and bash runs no name.
shell_syntax_sweep "$SRC"
OUT="o $SHELL_SYNTAX"
expect "a sweep whose names hold shell syntax, under Slurm" 0 "" -- "$AGON" sweep "$SHELL_SWEEP" --backend slurm --wait
job=$(sed -n 's/.*Slurm job array \([0-9]*\).*/\1/p' out.txt)
grep -q "^agon sweep: 2 runs: 2 completed" out.txt && [ "$(ls "$OUT"/slurm/"${job}"_[01].out | wc -l)" = 2 ] &&
  scontrol -o show job "$job" | grep -qF "JobName=agon-s $SHELL_SYNTAX.yaml " && [ -z "$(find "$T" -name pwned)" ] &&
  ok "2 runs completed, Slurm's output in the sweep's folder, the job named whole, no name ran" ||
  bad "shell syntax under Slurm: $(cat out.txt) $(ls "$OUT"/slurm) $(find "$T" -name pwned)"

# ---- scancel, then relaunch -------------------------------------------------
LONG=$SRC/tests/sweeps/long.yaml
LONG_PROBES=(--plugin-path "$BUILD/tests/probes")
rm -f reached go
"$AGON" sweep "$LONG" -o long --backend slurm "${LONG_PROBES[@]}" >sub.out 2>sub.err || bad "submit: $(cat sub.err)"
job=$(sed -n 's/.*Slurm job array \([0-9]*\).*/\1/p' sub.out)
# Both tasks wait at step 2000 (probe_pause) until `go` exists: they are
# running when the dry run looks, however fast this machine is.
for i in $(seq 1200); do
  [ "$(cat reached 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.05
done
"$AGON" sweep "$LONG" -o long --backend slurm --dry-run "${LONG_PROBES[@]}" >out.txt
[ "$(grep -c '  running     loss.plugin=' out.txt)" = 2 ] && ok "dry run: both tasks running in Slurm" ||
  bad "dry run while running: $(cat out.txt)"
scancel "$job"
touch go
for i in $(seq 300); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.1; done
"$AGON" sweep "$LONG" -o long --backend slurm --dry-run "${LONG_PROBES[@]}" >out.txt
[ "$(grep -c 'interrupted loss.plugin=.*, will resume\]$' out.txt)" = 2 ] && ok "after scancel: both interrupted, will resume" ||
  bad "dry run after scancel: $(cat out.txt)"
expect "relaunch resumes the cancelled runs" 0 "" -- "$AGON" sweep "$LONG" -o long --backend slurm --wait "${LONG_PROBES[@]}"
grep -q "^agon sweep: 2 runs: 2 completed" out.txt && grep -q -- "'run' '--resume'" long/slurm/array-*.sh &&
  ok "resumed through Slurm to completion" || bad "after relaunch: $(cat out.txt)"

echo "e2e_sweep_slurm: $pass passed, $fail failed"
[ $fail = 0 ]
