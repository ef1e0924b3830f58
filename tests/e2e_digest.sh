#!/usr/bin/env bash
# Portable bits: a short ring8 run and a short image run must give, bit for
# bit, the numbers pinned in tests/digests/*.digest (SHA-256 over the raw
# values of /scalars, /metrics and /final, in blocks of 50 rows), whatever
# OPENBLAS_CORETYPE the environment holds and at 1 or 2 threads.  A machine
# or a change that gives other bits fails here, naming the first block that
# differs.  A change that alters results on purpose runs
# tests/digests/update.sh and commits the new digests with it.
# Also: a planted one-ulp change is caught and placed; native kernels give
# other bits and the log says which kernels ran; a resume checks the
# kernels and plugins it would go on with; a CPU without AVX2 and FMA (as
# glibc's tunables make this one look) gets one line saying what to set.
# usage: e2e_digest.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
AGON=$1
SRC=$2
BUILD=$3
PY=/usr/bin/python3
DIGEST=$BUILD/tests/h5_digest
T=$(pwd)/tmp_e2e_digest
rm -rf "$T" && mkdir -p "$T"
cd "$T"
. "$SRC/tests/e2e_helpers.bash"
. "$SRC/tests/digests/runs.bash"

if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "SKIPPED: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)"
  exit 77
fi
avx512=0
grep -qw avx512f /proc/cpuinfo && avx512=1
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); AVX-512: $avx512; OPENBLAS_CORETYPE in the environment: ${OPENBLAS_CORETYPE-unset}"

# check_digest WHAT RUN LOG: the log's digests equal tests/digests/RUN.digest.
check_digest() {
  if "$DIGEST" "$3" --check "$SRC/tests/digests/$2.digest" >digest.out 2>&1; then ok "$1"
  else bad "$1: $(cat digest.out)"; fi
}

# The runs as a new user gets them, whatever the environment says.
for run in "${DIGEST_RUNS[@]}"; do
  env -u OPENBLAS_CORETYPE bash -c '. "$1/tests/digests/runs.bash"; digest_run "$2" "$3" "$1" "$4"' \
    _ "$SRC" "$run" "$AGON" "$run.h5" >/dev/null 2>run.err || bad "$run run: $(cat run.err)"
  check_digest "$run: the pinned bits, OPENBLAS_CORETYPE unset" "$run" "$run.h5"
done
digest_run ring8 "$AGON" "$SRC" t2.h5 --set train.threads=2 >/dev/null 2>&1
check_digest "ring8 at 2 threads: the same bits" ring8 t2.h5
digest_run image "$AGON" "$SRC" img2.h5 --set train.threads=2 >/dev/null 2>&1
check_digest "image at 2 threads: the same bits" image img2.h5
for core in Haswell Sandybridge SkylakeX; do
  if [ "$core" = SkylakeX ] && [ "$avx512" = 0 ]; then
    echo "SKIPPED: OPENBLAS_CORETYPE=SkylakeX needs AVX-512, which this CPU lacks"
    continue
  fi
  OPENBLAS_CORETYPE=$core digest_run ring8 "$AGON" "$SRC" "c_$core.h5" >/dev/null 2>&1
  check_digest "ring8 with OPENBLAS_CORETYPE=$core: the same bits (portable kernels)" ring8 "c_$core.h5"
done
if [ "$avx512" = 1 ]; then
  OPENBLAS_CORETYPE=SkylakeX digest_run image "$AGON" "$SRC" img_skx.h5 >/dev/null 2>&1
  check_digest "image with OPENBLAS_CORETYPE=SkylakeX: the same bits" image img_skx.h5
fi
if [ "$("$PY" -c "import h5py; f = h5py.File('ring8.h5', 'r'); print(f.attrs['kernels'], f.attrs['blas'].endswith('(core Haswell)'))")" = "portable True" ]; then
  ok "the log records portable kernels and OpenBLAS's Haswell core"
else bad "kernels recorded: $(h5dump -a kernels -a blas ring8.h5 | grep '(0)')"; fi
if "$AGON" show ring8.h5 --no-config | grep -qE '^kernels portable, OpenBLAS .*\(core Haswell\), on .+$'; then
  ok "agon show prints the kernels and the CPU"
else bad "agon show: $("$AGON" show ring8.h5 --no-config | head -4)"; fi

# One ulp anywhere is caught, and placed.
plant() { # plant LOG COPY DATASET INDEX...
  cp "$1" "$2"
  "$PY" - "$2" "$3" "${@:4}" <<'EOF'
import sys, h5py, numpy as np
path, name, idx = sys.argv[1], sys.argv[2], tuple(int(i) for i in sys.argv[3:])
with h5py.File(path, "r+") as f:
    d = f[name]
    v = d[()]
    bits = v.view(np.uint64 if v.dtype == np.float64 else np.uint32)
    bits[idx] ^= bits.dtype.type(1)
    d[...] = v
EOF
}
plant ring8.h5 ulp_scalar.h5 scalars/loss_g 137
"$DIGEST" ulp_scalar.h5 --check "$SRC/tests/digests/ring8.digest" >digest.out 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "; the first: /scalars/loss_g rows 100-149 (from step 101): other bits$" digest.out; then
  ok "a one-ulp change of loss_g at step 138 fails, placed in rows 100-149"
else bad "planted ulp in /scalars: exit $rc: $(cat digest.out)"; fi
plant ring8.h5 ulp_final.h5 final/generator/2.weight 5 7
"$DIGEST" ulp_final.h5 --check "$SRC/tests/digests/ring8.digest" >digest.out 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -q "1 blocks differ.*; the first: /final/generator/2.weight rows 0-127: other bits$" digest.out; then
  ok "a one-ulp change of one final weight fails, naming the tensor"
else bad "planted ulp in /final: exit $rc: $(cat digest.out)"; fi

# Native kernels: OpenBLAS's own choice, here forced to another family
# (Sandybridge: AVX without FMA, which every AVX2 machine runs) to stand
# for a machine whose native kernels are not the portable ones.
OPENBLAS_CORETYPE=Sandybridge digest_run ring8 "$AGON" "$SRC" native.h5 --set train.kernels=native \
  >/dev/null 2>run.err || bad "native run: $(cat run.err)"
if ! "$DIGEST" native.h5 --check "$SRC/tests/digests/ring8.digest" >digest.out 2>&1 &&
   grep -q "the first: /scalars/" digest.out; then ok "native Sandybridge kernels give other bits, and the digest test says where"
else bad "native kernels: $(cat digest.out)"; fi
if "$AGON" show native.h5 --no-config | grep -qE '^kernels native, OpenBLAS .*\(core Sandybridge\), on '; then
  ok "agon show: native kernels, core Sandybridge"
else bad "agon show of a native run: $("$AGON" show native.h5 --no-config | sed -n 3p)"; fi
if AGON_KERNELS=native "$AGON" validate "$SRC/experiments/ring8.yaml" | grep -qx '  kernels: native'; then
  ok "AGON_KERNELS=native sets the default, and the resolved config says so"
else bad "AGON_KERNELS=native: $(AGON_KERNELS=native "$AGON" validate "$SRC/experiments/ring8.yaml" 2>&1 | grep kernels)"; fi
expect "AGON_KERNELS with another value" 3 "AGON_KERNELS: 'fast' is neither portable nor native; set it to one of them or unset it" -- \
  env AGON_KERNELS=fast "$AGON" validate "$SRC/experiments/ring8.yaml"

# Resume checks what it resumes with.
interrupt() { "$PY" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f.attrs['status'] = 'interrupted'" "$1"; }
cp native.h5 nres.h5
interrupt nres.h5
blas() { "$PY" -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs['blas'])" "$1"; }
b_sandy=$(blas native.h5)
b_has=${b_sandy//Sandybridge/Haswell}
expect "a native run resumed where other kernels run is refused" 3 "nres.h5: the run was trained with native kernels, $b_sandy, and would go on with native kernels, $b_has: the two parts would not add up to the bits of one run; resume where the same kernels run, or add --force" -- \
  env OPENBLAS_CORETYPE=Haswell "$AGON" run --resume nres.h5 --progress none
expect "... and goes on with --force" 0 "" -- env OPENBLAS_CORETYPE=Haswell "$AGON" run --resume nres.h5 --progress none --force
if "$AGON" show nres.h5 --no-config | grep -qF "; with --force: blas: $b_has (was $b_sandy)"; then
  ok "agon show: the resume and the kernels it changed to"
else bad "agon show after a forced resume: $("$AGON" show nres.h5 --no-config | grep resumed)"; fi
if [ "$("$PY" -c "import h5py; print(h5py.File('nres.h5', 'r').attrs['blas'])")" = "$b_sandy" ]; then
  ok "the log still says which kernels trained the first steps"
else bad "root blas attribute replaced"; fi
cp ring8.h5 pres.h5
interrupt pres.h5
expect "a portable run resumes under any OPENBLAS_CORETYPE" 0 "" -- \
  env OPENBLAS_CORETYPE=Sandybridge "$AGON" run --resume pres.h5 --progress none
"$PY" - pres.h5 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["status"] = "interrupted"
    f["provenance/resumes/1/plugins/adam"].attrs["sha256"] = "ab" * 32
EOF
adam=$BUILD/plugins/adam.so
adam_sha=$(sha256sum "$adam" | cut -c1-64)
expect "a plugin rebuilt since training is refused, named" 3 "pres.h5: plugin adam ($adam) is not the file the run was trained with: its sha256 is ${adam_sha:0:16}... now and abababababababab... in the log; resume with the plugin it was trained with, or add --force to go on with this one (the log keeps both hashes)" -- \
  "$AGON" run --resume pres.h5 --progress none
expect "... and resumes with --force" 0 "" -- "$AGON" run --resume pres.h5 --progress none --force
if "$AGON" show pres.h5 --no-config | grep -qF "with --force: plugin adam sha256 $adam_sha (was $(printf 'ab%.0s' $(seq 32)))"; then
  ok "agon show: the forced resume and both hashes of adam"
else bad "agon show: $("$AGON" show pres.h5 --no-config | grep resumed)"; fi

# A log from before train.kernels existed: its config lacks the key, and
# it ran on whatever kernels OpenBLAS picked.
cp ring8.h5 legacy.h5
"$PY" - legacy.h5 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    text = f["config"].asstr()[()]
    del f["config"]
    f["config"] = "".join(l + "\n" for l in text.splitlines() if "kernels:" not in l)
    f.attrs["status"] = "interrupted"
    del f.attrs["kernels"]
EOF
expect "a log from before train.kernels is refused, saying why" 3 "legacy.h5: written before agon chose its kernels (it trained with $(blas ring8.h5)); add --force to go on with the portable kernels of train.kernels, or start the run again" -- \
  env -u AGON_KERNELS "$AGON" run --resume legacy.h5 --progress none
expect "... and resumes with --force" 0 "" -- "$AGON" run --resume legacy.h5 --progress none --force

# A writer on another host: refused, or let pass alone by --writer-gone
# (what a Slurm sweep gives), which still stops at a changed plugin.
cp ring8.h5 other.h5
"$PY" - other.h5 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["status"] = "running"
    f.attrs["host"] = "node17"
    f.attrs["pid"] = 4242
EOF
expect "a log written on another host is refused" 2 "other.h5: written by pid 4242 on host node17, which cannot be checked from here; once that run is over, resume with --force" -- \
  "$AGON" run --resume other.h5 --progress none
cp other.h5 other2.h5
"$PY" -c "import h5py, sys; h5py.File(sys.argv[1], 'r+')['provenance/plugins/adam'].attrs['sha256'] = 'ef' * 32" other2.h5
expect "--writer-gone does not let a changed plugin pass" 3 "other2.h5: plugin adam ($adam) is not the file the run was trained with: its sha256 is ${adam_sha:0:16}... now and efefefefefefefef... in the log; resume with the plugin it was trained with, or add --force to go on with this one (the log keeps both hashes)" -- \
  "$AGON" run --resume other2.h5 --progress none --writer-gone
expect "--writer-gone resumes a log of another host's gone writer" 0 "" -- \
  "$AGON" run --resume other.h5 --progress none --writer-gone
expect "--writer-gone needs --resume or --overwrite" 2 "agon: --writer-gone only applies to run --resume and run --overwrite (see agon --help)" -- \
  "$AGON" run "$SRC/experiments/ring8.yaml" --writer-gone

# A CPU without AVX2 and FMA, as glibc's tunables make this one look to
# agon (and to libm's own dispatch).
NOFMA=(env -u AGON_KERNELS GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA)
expect "portable kernels on a CPU without AVX2 and FMA: one line" 3 "$SRC/experiments/ring8.yaml: train.kernels (default portable): portable kernels need a CPU with AVX2 and FMA, and this one lacks AVX2 and FMA; set train.kernels: native (--set train.kernels=native) to use this machine's own kernels, whose results other machines do not reproduce" -- \
  "${NOFMA[@]}" "$AGON" run "$SRC/experiments/ring8.yaml" -o nofma.h5 --set train.steps=5
if [ ! -e nofma.h5 ]; then ok "... and nothing is written"; else bad "a refused run left nofma.h5"; fi
expect "native kernels run there" 0 "" -- \
  "${NOFMA[@]}" "$AGON" run "$SRC/experiments/ring8.yaml" -o nofma.h5 --set train.steps=5 --set train.kernels=native --progress none

echo
echo "e2e_digest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
