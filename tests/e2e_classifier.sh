#!/usr/bin/env bash
# End to end: trains the real Fashion-MNIST domain classifier with
# experiments/classifiers/fmnist.yaml into BUILD_DIR/classifiers/fmnist.h5
# (the fixture fmnist_classifier that image-metric tests depend on), and
# fails unless its test accuracy is at least 0.88 and `agon classifier show`
# reports the same accuracy.  Exits 77 (skipped) when Debian's
# dataset-fashion-mnist package is not installed.
# usage: e2e_classifier.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
DATA=/usr/share/datasets/fashion-mnist
OUT=$BUILD/classifiers/fmnist.h5
MIN=0.88

if [ ! -d "$DATA" ]; then
  echo "SKIP: $DATA is missing (apt-get install dataset-fashion-mnist); the classifier is not trained"
  exit 77
fi

T=$(pwd)/tmp_e2e_classifier
rm -rf "$T" && mkdir -p "$T"
cd "$T"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "[  OK  ] $1"; }
bad() { fail=$((fail + 1)); echo "[ FAIL ] $1"; }

start=$(date +%s)
"$AGON" classifier train "$SRC/experiments/classifiers/fmnist.yaml" -o "$OUT" --overwrite \
  >train.out 2>train.err
rc=$?
end=$(date +%s)
cat train.out
if [ $rc -ne 0 ]; then
  bad "train: exit $rc: $(cat train.err)"
else
  ok "train ($((end - start)) s)"
fi
[ -s train.err ] && bad "train wrote to stderr: $(cat train.err)"

epochs=$(grep -c '^epoch [0-9]*/[0-9]*  train loss [0-9.]*  test accuracy [0-9.]*  [0-9.]* s$' train.out)
want_epochs=$(sed -n 's|^epoch 1/\([0-9]*\) .*|\1|p' train.out)
if [ -n "$want_epochs" ] && [ "$epochs" = "$want_epochs" ]; then
  ok "one line per epoch ($epochs)"
else
  bad "epoch lines: $epochs, expected ${want_epochs:-?}"
fi

acc=$(sed -n "s|^$OUT: test accuracy \([0-9.]*\) on 10000 test samples, after [0-9]* epochs on 60000 training samples in [0-9.]* s$|\1|p" train.out)
if [ -z "$acc" ]; then
  bad "no final line '$OUT: test accuracy A on 10000 test samples, ...'"
elif awk -v a="$acc" -v m="$MIN" 'BEGIN { exit !(a >= m) }'; then
  ok "test accuracy $acc >= $MIN"
else
  bad "test accuracy $acc < $MIN"
fi
last=$(tail -n 2 train.out | head -n 1 | sed -n 's|.*test accuracy \([0-9.]*\) .*|\1|p')
[ -n "$acc" ] && [ "$last" = "$acc" ] && ok "final accuracy is the last epoch's" \
  || bad "last epoch's accuracy '$last' differs from the final line's '$acc'"

[ -f "$OUT" ] && ok "wrote $OUT" || bad "no $OUT"
ls "$(dirname "$OUT")" | grep -q 'tmp' && bad "a temporary file was left next to $OUT"

if "$AGON" classifier show "$OUT" >show.out 2>show.err; then
  ok "show"
else
  bad "show: $(cat show.err)"
fi
cat show.out
grep -q "^  test accuracy   $acc (10000 test samples, split test)$" show.out \
  && ok "show prints the test accuracy $acc" || bad "show does not print test accuracy $acc"
grep -q '^  classes         10$' show.out && ok "show prints 10 classes" || bad "show: classes"
grep -q '^  input           \[1, 28, 28\]$' show.out && ok "show prints the input shape" \
  || bad "show: input shape"
sha=$(sha256sum "$OUT" | cut -d' ' -f1)
grep -q "^  sha256          $sha$" show.out && ok "show prints the file's sha256" \
  || bad "show: sha256 is not $sha"
grep -q '^  output: classifiers/fmnist.h5$' show.out && ok "show prints the training config" \
  || bad "show: config"

# Without --overwrite an existing classifier is kept.
"$AGON" classifier train "$SRC/experiments/classifiers/fmnist.yaml" -o "$OUT" >again.out 2>again.err
rc=$?
[ $rc -eq 5 ] && [ "$(cat again.err)" = "$OUT: already exists; choose another output path (-o) or pass --overwrite to replace it" ] \
  && ok "existing output kept without --overwrite" || bad "second train: exit $rc: $(cat again.err)"

# Without test_dataset, the test data is the dataset's section with
# split: test, copied value for value (a path with YAML's special
# characters included).
ln -s "$DATA" "fm, data: 'x'"
cat >small.yaml <<'EOY'
dataset:
  plugin: fashion_mnist
  path: "fm, data: 'x'"
  limit: 600
  classes: [0, 1, 2]
model: {c1: 4, c2: 8, features: 8}
train: {epochs: 8, batch_size: 50}
optimizer: {plugin: adam, lr: 0.003}
EOY
"$AGON" classifier train small.yaml >small.out 2>small.err
rc=$?
[ $rc -eq 0 ] && [ -f classifiers/small.h5 ] && ok "default output classifiers/small.h5" \
  || bad "small: exit $rc: $(cat small.err)"
grep -q '^classifiers/small.h5: test accuracy [0-9.]* on 600 test samples, after 8 epochs on 600 training samples in [0-9.]* s$' small.out \
  && ok "default test_dataset: 600 test samples" || bad "small: $(tail -n 1 small.out)"
"$AGON" classifier show classifiers/small.h5 >small_show.out 2>&1
/usr/bin/python3 - small_show.out <<'EOPY' && ok "test_dataset copied with split: test" || bad "test_dataset copy: $(cat small_show.out)"
import sys
text = open(sys.argv[1]).read()
want = '''  test_dataset:
    plugin: fashion_mnist
    path: "fm, data: 'x'"
    limit: 600
    classes:
      - 0
      - 1
      - 2
    split: test
    stacked: false
'''
sys.exit(0 if want in text and "(600 test samples, split test)" in text else 1)
EOPY

# A resume checks the classifier file a metric reads: the hash the log
# recorded must be the file's (tampered here in the log, which is the same
# comparison as a file rebuilt since), unless --force, which notes both.
cat >cls_run.yaml <<EOF
base: $SRC/experiments/fmnist_dcgan.yaml
train: {steps: 20, batch_size: 16, latent_dim: 16}
generator: {plugin: dcgan, base_width: 4}
discriminator: {plugin: dcgan, base_width: 4}
dataset: {plugin: fashion_mnist, limit: 500}
log: {every: 1, samples_every: 0}
metrics:
  - {plugin: frechet, every: 10, features: classifier, classifier: $OUT, n_real: 200, n_fake: 200}
EOF
if "$AGON" run cls_run.yaml -o cls_run.h5 --progress none >run.out 2>run.err; then ok "a run with classifier features"
else bad "a run with classifier features: $(cat run.err)"; fi
/usr/bin/python3 - <<'EOPY'
import h5py
with h5py.File("cls_run.h5", "r+") as f:
    f.attrs["status"] = "interrupted"
    f["metrics/frechet"].attrs["feature_sha256"] = "cd" * 32
EOPY
"$AGON" run --resume cls_run.h5 --progress none >run.out 2>run.err
rc=$?
want="cls_run.h5: metric frechet's feature_sha256 is ${sha:0:16}... now but cdcdcdcdcdcdcdcd... in the log: the file it reads has changed since the run was trained; resume with that file, or add --force to go on with the new one (the log keeps both hashes)"
if [ $rc = 3 ] && [ "$(cat run.err)" = "$want" ]; then ok "resume refuses a classifier file other than the recorded one"
else bad "resume with another classifier: exit $rc: $(cat run.err)"; fi
if "$AGON" run --resume cls_run.h5 --progress none --force >run.out 2>run.err &&
   "$AGON" show cls_run.h5 --no-config | grep -qF "with --force: metric frechet feature_sha256 $sha (was $(printf 'cd%.0s' $(seq 32)))"; then
  ok "... resumes with --force, and show names both hashes"
else bad "forced resume with another classifier: $(cat run.err) $("$AGON" show cls_run.h5 --no-config | grep resumed)"; fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
