#!/usr/bin/env bash
# The kill test across a run's whole life (docs/reliability.md): a ring8
# run and a Fashion-MNIST image run are killed (SIGKILL, as from outside)
# at every phase, from before the claim of the path to after the final
# write, aimed with AGON_TEST_KILL_AT (core/kill_point_int.h) instead of
# the luck of timing.  After each kill, the next command a user would
# give is run: `agon run --resume` when `agon show` says the run was
# interrupted, a plain `agon run` (the same command line) when the path
# holds no log, nothing when the log is complete.  Every case must end
# with a completed log whose every dataset equals the uninterrupted run's
# bit for bit, and no .partial file may be left.
#
# usage: e2e_kill_phases.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_kill_phases
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

PHASES="start claimed building checkpointed live step:7 step:20 trained finishing final closed"

cat >ring.yaml <<YAML
base: $SRC/tests/experiments/tiny_ring.yaml
seed: 4
train: {steps: 30}
log: {every: 1, samples_every: 10, n_samples: 64, params_every: 10, flush_seconds: 0.01,
      checkpoint_seconds: 0.05}
metrics:
  - {plugin: mode_coverage, every: 10, n_samples: 300}
YAML
cat >image.yaml <<'YAML'
seed: 5
dataset: {plugin: fashion_mnist, limit: 500}
generator: {plugin: mlp, hidden: [32], output_activation: tanh}
discriminator: {plugin: mlp, hidden: [32], activation: leaky_relu}
loss: {plugin: nonsaturating}
g_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
d_optimizer: {plugin: adam, lr: 2.0e-4, beta1: 0.5}
train: {steps: 30, batch_size: 32, latent_dim: 16}
log: {every: 1, samples_every: 10, n_samples: 16, params_every: 10, flush_seconds: 0.01,
      checkpoint_seconds: 0.05}
metrics:
  - {plugin: precision_recall, every: 10, n_real: 100, n_fake: 100, features: raw}
  - {plugin: latent_interpolation, every: 10}
YAML

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "e2e_kill_phases: Fashion-MNIST (dataset-fashion-mnist) is missing; tools/deps.sh installs it" >&2
    exit 77
fi

status_of() { "$PY" -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r', swmr=True).attrs['status'])" "$1" 2>/dev/null; }

for exp in ring image; do
    "$AGON" run $exp.yaml -o ref_$exp.h5 --progress none >/dev/null 2>ref.err || bad "$exp: reference run: $(cat ref.err)"
    for phase in $PHASES; do
        name="$exp at $phase"
        log=k_${exp}_${phase/:/_}.h5
        AGON_TEST_KILL_AT=$phase "$AGON" run $exp.yaml -o "$log" --progress none >/dev/null 2>kill.err
        rc=$?
        [ "$rc" = 137 ] || { bad "$name: the run was not killed at its phase (exit $rc: $(cat kill.err))"; continue; }
        # What the user sees, and the next command.
        "$AGON" show --no-config "$log" >show.txt 2>show.err
        # Its answer: the status line, or the one-line refusal (stderr
        # may also carry a note before the status, e.g. a cleared mark).
        first=$(head -1 show.txt)
        [ -n "$first" ] || first=$(head -1 show.err)
        case "$first" in
        "$log: interrupted at step "*"(its writer, pid "*", is gone)"*)
            next=resume
            "$AGON" run --resume "$log" --progress none >/dev/null 2>next.err ;;
        "$log: cannot open run log: No such file or directory" | "$log: an empty file left by a run killed while setting up"*)
            next=rerun
            "$AGON" run $exp.yaml -o "$log" --progress none >/dev/null 2>next.err ;;
        "$log: completed, "*)
            next=none
            : >next.err ;;
        *)
            bad "$name: agon show said: $first / $(cat show.err)"
            continue ;;
        esac
        nrc=$?
        [ "$nrc" = 0 ] || { bad "$name: $next failed (exit $nrc): $(cat next.err)"; continue; }
        st=$(status_of "$log")
        if [ "$st" != completed ]; then
            bad "$name: after $next the status is '$st'"
        elif ! "$PY" "$SRC/tests/h5_compare.py" "ref_$exp.h5" "$log" >cmp.txt 2>&1; then
            bad "$name: after $next the log differs from the uninterrupted run: $(head -3 cmp.txt)"
        else
            ok "$name: $next gives the uninterrupted run's bits"
        fi
        leftover=$(ls ./*.partial 2>/dev/null)
        [ -z "$leftover" ] || { bad "$name: left behind: $leftover"; rm -f ./*.partial; }
    done
done

echo
echo "e2e_kill_phases: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
