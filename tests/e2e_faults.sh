#!/usr/bin/env bash
# Resource faults: a disk that fills up (a small tmpfs this test mounts), a
# read-only output directory, missing data files, a broken plugin file.
# Each gives one clear line and a documented exit code, and nothing already
# written is lost: the disk-full run stops with a whole log and a
# checkpoint, and once space is freed, resuming it gives the log of a run
# that never stopped.
# usage: e2e_faults.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
PY=/usr/bin/python3
T=$(pwd)/tmp_e2e_faults
for m in "$T/small" "$T/ro"; do umount "$m" 2>/dev/null; done
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"

cat >f.yaml <<'EOF'
seed: 5
dataset: {plugin: gaussian_mixture, layout: ring, modes: 8}
generator: {plugin: mlp, hidden: [64, 64]}
discriminator: {plugin: mlp, hidden: [64, 64], activation: leaky_relu}
loss: {plugin: nonsaturating}
g_optimizer: {plugin: adam, lr: 5.0e-4, beta1: 0.5}
d_optimizer: {plugin: adam, lr: 5.0e-4, beta1: 0.5}
train: {steps: 400, batch_size: 64, latent_dim: 8}
log: {every: 1, samples_every: 20, n_samples: 256, params_every: 5, flush_seconds: 0.05}
metrics:
  - {plugin: mode_coverage, every: 50, n_samples: 500}
EOF
"$AGON" run f.yaml -o ref.h5 --progress none >/dev/null 2>ref.err || bad "reference run: $(cat ref.err)"

# ---- a disk that fills up --------------------------------------------------------
mkdir -p small ro
# The reserve agon keeps to end this log cleanly is about 1.3 MB (1 MiB
# of it for HDF5's metadata); the whole log takes 4 MB or more (parameter
# snapshots every 5 steps, and metadata that grows with every flush), so
# 2.4 MB stop the run in its course however fast it flushes.
if mount -t tmpfs -o size=2400k tmpfs small 2>mount.err; then
  "$AGON" run f.yaml -o small/run.h5 --progress none >out.txt 2>err.txt
  rc=$?
  if [ "$rc" = 5 ] && [ "$(wc -l <err.txt)" = 1 ] &&
     grep -qE "^small/run.h5: the disk holding it has [0-9.]+ MB free, less than the [0-9.]+ MB the log needs to end cleanly; stopped after step [0-9]+ with a checkpoint; free some space, then continue with agon run --resume small/run.h5$" err.txt; then
    ok "disk full: exit 5 and one line: $(cat err.txt)"
  else bad "disk full: exit $rc: $(cat err.txt)"; fi
  "$PY" - <<'EOF' && ok "disk full: the log is whole (plain h5py), status failed, rows equal the reference's" || bad "disk full: the log is whole"
import sys, h5py, numpy as np
with h5py.File("small/run.h5", "r") as f, h5py.File("ref.h5", "r") as r:
    n = len(f["scalars/step"])
    ok = f.attrs["status"] == "failed" and 0 < n < 400 and f.attrs["steps_done"] == n
    ok = ok and np.array_equal(f["scalars/loss_d"][()], r["scalars/loss_d"][:n])
    ok = ok and np.array_equal(f["samples/x"][()], r["samples/x"][: len(f["samples/x"])])
    sys.exit(0 if ok else 1)
EOF
  h5dump -d /scalars/step small/run.h5 >dump.txt 2>&1 && ok "disk full: h5dump reads the log" || bad "disk full: h5dump: $(head -c 300 dump.txt)"
  mount -o remount,size=64m small
  expect "disk full: resumed once space is free" 0 "" -- "$AGON" run --resume small/run.h5 --progress none
  if "$PY" "$SRC/tests/h5_compare.py" ref.h5 small/run.h5 >cmp.txt 2>&1; then
    ok "disk full then resumed: equal to a run that never stopped"
  else bad "disk full then resumed: $(head -3 cmp.txt)"; fi
  umount small
else
  echo "SKIPPED (visible): disk-full checks, cannot mount a tmpfs here: $(cat mount.err)"
fi

# ---- a read-only output directory -------------------------------------------------------
if mount -t tmpfs -o ro,size=64k tmpfs ro 2>mount.err; then
  expect "read-only output directory" 5 "ro/x.h5: cannot create log file: Read-only file system; make the directory writable or choose another output path (-o)" -- \
    "$AGON" run f.yaml -o ro/x.h5 --progress none
  umount ro
else
  echo "SKIPPED (visible): read-only directory check, cannot mount a tmpfs here: $(cat mount.err)"
fi

# ---- missing data ---------------------------------------------------------------------------
expect "missing Fashion-MNIST files" 5 "/nope/fm/train-images-idx3-ubyte.gz: no such file; install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set dataset.path to a directory holding the Fashion-MNIST files" -- \
  "$AGON" run f.yaml -o m.h5 --set 'dataset={plugin: fashion_mnist, path: /nope/fm}' \
  --set 'metrics=[]' --progress none
[ ! -e m.h5 ] && ok "missing data: no log file left behind" || bad "missing data: a log file was left behind"

# ---- a broken plugin file, and an earlier log is kept ------------------------------------------
mkdir -p broken
printf 'not a shared object' >broken/junk.so
cp ref.h5 kept.h5
expect "a broken .so on the plugin path" 4 "$T/broken/junk.so: plugin open failed: not an ELF shared object (19 bytes, no ELF header); give the path of a plugin built with agon_add_plugin" -- \
  "$AGON" run f.yaml -o kept.h5 --overwrite --plugin-path "$T/broken" --progress none
cmp -s ref.h5 kept.h5 && ok "the log at -o is untouched by the failed start" || bad "the log at -o was changed by a failed start"

# An interrupted copy into the plugin folder: dlopen would map the cut
# segments and die of SIGBUS (exit 135, no message) on every command.
mkdir -p cut
plugin_dir=$(dirname "$(readlink -f "$AGON")")/../plugins
head -c 1000 "$plugin_dir/adam.so" >cut/a.so
shoff=$(readelf -h "$plugin_dir/adam.so" | sed -n 's/.*Start of section headers: *\([0-9]*\).*/\1/p')
expect "a truncated plugin (agon plugins)" 4 "$T/cut/a.so: plugin open failed: truncated: its section headers (at byte $shoff) end past its 1000 bytes; copy the plugin again (an interrupted copy leaves such a file) or rebuild it" -- \
  "$AGON" plugins --plugin-path "$T/cut"
expect "a truncated plugin (agon run)" 4 "$T/cut/a.so: plugin open failed: truncated: its section headers (at byte $shoff) end past its 1000 bytes; copy the plugin again (an interrupted copy leaves such a file) or rebuild it" -- \
  "$AGON" run f.yaml -o cut.h5 --plugin-path "$T/cut" --progress none

echo
echo "e2e_faults: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
