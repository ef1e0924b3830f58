#!/usr/bin/env bash
# agon against PyTorch: steps per second of the same GAN training step, and
# how close agon gets to the speed of its matrix products alone.
# See docs/performance.md for the workloads and how to read the output.
#
#   bash bench/run.sh
#
# Settings (environment variables):
#   AGON_BUILD_DIR       build directory; default ./build, built with
#                        tools/build.sh (another directory is configured and
#                        built here with the same flags)
#   BENCH_REPEATS        timed runs per side and setting (default 5)
#   BENCH_SECONDS        seconds per timed run (default 10)
#   BENCH_BOUND_SECONDS  seconds per GEMM-bound replay (default 2; best of 3)
#   BENCH_WORKLOADS      default "w1 w2"
#   BENCH_THREADS        default "1 2"
#   BENCH_OUT            raw results, traces and logs (default <build>/bench)
#   BENCH_JOBS           build jobs for a non-default AGON_BUILD_DIR (default nproc)
# A quick smoke run: BENCH_REPEATS=1 BENCH_SECONDS=2 BENCH_BOUND_SECONDS=0.5
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3     # Debian's interpreter: python3-torch, -numpy, -h5py

REPEATS=${BENCH_REPEATS:-5}
RUN_SECONDS=${BENCH_SECONDS:-10}
BOUND_SECONDS=${BENCH_BOUND_SECONDS:-2}
BOUND_REPEATS=3
WORKLOADS=${BENCH_WORKLOADS:-"w1 w2"}
THREADS=${BENCH_THREADS:-"1 2"}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

for w in $WORKLOADS; do
  [ -f "bench/$w.yaml" ] || die "unknown workload '$w' in BENCH_WORKLOADS; there is no bench/$w.yaml"
done
for t in $THREADS; do
  [[ $t =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must list positive integers, got '$t'"
done
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEATS must be a positive integer, got '$REPEATS'"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"; fi
}

# ---- build agon -------------------------------------------------------------
if [ -z "${AGON_BUILD_DIR:-}" ]; then
  bash tools/build.sh >&2
  BUILD=$ROOT/build
else
  BUILD=$(realpath -m "$AGON_BUILD_DIR")
  bash tools/deps.sh >&2
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j "${BENCH_JOBS:-$(nproc)}" >&2
fi
AGON=$BUILD/bin/agon
[ -x "$AGON" ] || die "$AGON was not built"

# ---- PyTorch ------------------------------------------------------------------
if ! "$PY" -c 'import torch, numpy, h5py' 2>/dev/null; then
  note "bench/run.sh: installing python3-torch (Debian's PyTorch, CPU)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends python3-torch python3-numpy python3-h5py
  "$PY" -c 'import torch, numpy, h5py' || die "$PY cannot import torch, numpy and h5py"
fi

OUT=$(realpath -m "${BENCH_OUT:-$BUILD/bench}")
mkdir -p "$OUT"
GEMM_BOUND=$OUT/gemm_bound
cc -O2 -std=c11 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -Iinclude -I"$BUILD/include" \
   bench/gemm_bound.c -o "$GEMM_BOUND" -L"$BUILD/core" -lagon -Wl,-rpath,"$BUILD/core"

RAW=$OUT/raw.tsv            # pass workload threads side setting repeat steps_per_s
BOUNDS=$OUT/bound.tsv       # pass workload threads steps_per_s
FLOPS=$OUT/flops.tsv        # workload calls_per_step flops_per_step
PASSES=$OUT/passes.tsv      # pass label openblas_core
printf 'pass\tworkload\tthreads\tside\tsetting\trepeat\tsteps_per_s\n' >"$RAW"
printf 'pass\tworkload\tthreads\tsteps_per_s\n' >"$BOUNDS"
printf 'workload\tcalls_per_step\tflops_per_step\n' >"$FLOPS"
printf 'pass\tlabel\tcore\n' >"$PASSES"

# Every run is started with `env PASS_ENV... -u <thread variables> ...`, so
# that neither the caller's thread settings nor a stale trace leak in.
CLEAN=(-u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS -u GOTO_NUM_THREADS -u OMP_WAIT_POLICY
       -u GOMP_SPINCOUNT -u AGON_GEMM_TRACE)

# agon_run PASS_ENV_NAME WORKLOAD THREADS STEPS: prints "steps/s core".
agon_run() {
  local -n penv=$1
  local h5=$OUT/agon_$2.h5
  if ! env "${CLEAN[@]}" "${penv[@]}" "$AGON" run "bench/$2.yaml" --set "train.steps=$4" \
        --set "train.threads=$3" -o "$h5" --overwrite --progress none >"$OUT/agon.log" 2>&1; then
    cat "$OUT/agon.log" >&2
    die "agon run bench/$2.yaml failed (log above)"
  fi
  "$PY" - "$h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    if a["status"] != "completed":
        sys.exit(f"{sys.argv[1]}: status {a['status']}: {a['status_message']}")
    core = a["blas"].rsplit("(core ", 1)[-1].rstrip(")")
    print(f"{a['steps_done'] / a['train_seconds']:.3f} {core}")
EOF
}

# torch_run PASS_ENV_NAME WORKLOAD THREADS VARIANT THREADING: prints steps/s.
# THREADING is "1" (OPENBLAS_NUM_THREADS=1), "default" (unset: one OpenBLAS
# thread per core) or "1p" (OPENBLAS_NUM_THREADS=1 and OMP_WAIT_POLICY=PASSIVE:
# PyTorch's OpenMP threads sleep instead of spinning while they wait, which
# matters when another process holds a core).
torch_run() {
  local -n penv=$1
  local ob=()
  case $5 in
    1) ob=(OPENBLAS_NUM_THREADS=1) ;;
    1p) ob=(OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE) ;;
  esac
  local line
  line=$(env "${CLEAN[@]}" "${penv[@]}" "${ob[@]}" "$PY" bench/torch_gan.py --workload "$2" \
           --threads "$3" --variant "$4" --seconds "$RUN_SECONDS" 2>"$OUT/torch.log" \
         | grep '^RESULT ') || { cat "$OUT/torch.log" >&2; die "bench/torch_gan.py --workload $2 failed"; }
  sed -n 's/.* steps_per_s=\([0-9.]*\).*/\1/p' <<<"$line"
}

# bound_run PASS_ENV_NAME WORKLOAD THREADS: prints the bound's steps/s.
bound_run() {
  local -n penv=$1
  local line
  line=$(env "${CLEAN[@]}" "${penv[@]}" "$GEMM_BOUND" "$OUT/$2.trace" "$TRACE_STEPS" \
           --threads "$3" --seconds "$BOUND_SECONDS" | grep '^BOUND ') \
    || die "gemm_bound failed on $OUT/$2.trace"
  sed -n 's/.* steps_per_s=\([0-9.]*\).*/\1/p' <<<"$line"
}

# ---- FLOPs per step: one traced run of a few steps per workload -----------------
TRACE_STEPS=3
for w in $WORKLOADS; do
  trace=$OUT/$w.trace
  rm -f "$trace"
  env "${CLEAN[@]}" AGON_GEMM_TRACE="$trace" "$AGON" run "bench/$w.yaml" \
      --set "train.steps=$TRACE_STEPS" -o "$OUT/agon_$w.h5" --overwrite --progress none \
      >"$OUT/agon.log" 2>&1 || { cat "$OUT/agon.log" >&2; die "traced agon run of $w failed"; }
  [ -s "$trace" ] || die "$trace is empty: this libagon does not know AGON_GEMM_TRACE (core/blas.c)"
  "$GEMM_BOUND" "$trace" "$TRACE_STEPS" --shapes --seconds 1 >"$OUT/$w.shapes.txt"
  sed -n 's/^FLOPS calls_per_step=\([0-9]*\) flops_per_step=\([0-9]*\)$/\1\t\2/p' \
      "$OUT/$w.shapes.txt" | sed "s/^/$w\t/" >>"$FLOPS"
done

# ---- passes: agon's portable kernels, then its native ones -----------------------
# The environment is as given in both (PyTorch's OpenBLAS picks its own
# kernels from it); AGON_KERNELS sets train.kernels for agon's runs and for
# the GEMM-bound replay, so the two passes price portability.
pass_names=(portable native)
printf 'portable\tagon with train.kernels: portable (OPENBLAS_CORETYPE %s)\t\n' \
  "${OPENBLAS_CORETYPE:-unset}" >>"$PASSES"
printf 'native\tagon with train.kernels: native (OPENBLAS_CORETYPE %s)\t\n' \
  "${OPENBLAS_CORETYPE:-unset}" >>"$PASSES"
ENV_portable=(AGON_KERNELS=portable)
ENV_native=(AGON_KERNELS=native)

LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
n_settings=0
for t in $THREADS; do n_settings=$((n_settings + (t == 1 ? 3 : 7))); done
n_w=$(wc -w <<<"$WORKLOADS")
note "bench/run.sh: ${#pass_names[@]} pass(es) x $n_w workload(s), $REPEATS repeat(s) of" \
     "${RUN_SECONDS} s: about $(( ${#pass_names[@]} * n_w * n_settings * REPEATS * (RUN_SECONDS + 4) / 60 + 1 )) min"

for p in "${pass_names[@]}"; do
  penv_name=ENV_$p
  for w in $WORKLOADS; do
    for t in $THREADS; do
      # Calibration (also the warm-up): how many steps make RUN_SECONDS.
      cal_steps=$([ "$w" = w1 ] && echo 300 || echo 5)
      cal=$(agon_run "$penv_name" "$w" "$t" "$cal_steps")
      read -r rate core <<<"$cal"
      sed -i "s/^$p\t\([^\t]*\)\t$/$p\t\1\t$core/" "$PASSES"
      steps=$("$PY" -c "import math; print(max(3, math.ceil($rate * $RUN_SECONDS * 1.05)))")
      settings=("freeze 1" "plain 1")
      [ "$t" -gt 1 ] && settings+=("freeze default" "plain default" "freeze 1p" "plain 1p")
      for r in $(seq 1 "$REPEATS"); do
        a=$(agon_run "$penv_name" "$w" "$t" "$steps")
        a=${a%% *}
        printf '%s\t%s\t%s\tagon\t-\t%s\t%s\n' "$p" "$w" "$t" "$r" "$a" >>"$RAW"
        msg="[$p $w threads=$t run $r/$REPEATS] agon $a"
        for s in "${settings[@]}"; do
          read -r variant ob <<<"$s"
          v=$(torch_run "$penv_name" "$w" "$t" "$variant" "$ob")
          printf '%s\t%s\t%s\ttorch\t%s/%s\t%s\t%s\n' "$p" "$w" "$t" "$variant" "$ob" "$r" "$v" >>"$RAW"
          msg+="  torch $variant/$ob $v"
        done
        note "$msg"
      done
      for r in $(seq 1 "$BOUND_REPEATS"); do
        printf '%s\t%s\t%s\t%s\n' "$p" "$w" "$t" "$(bound_run "$penv_name" "$w" "$t")" >>"$BOUNDS"
      done
    done
  done
done

"$PY" bench/report.py --out "$OUT" --repeats "$REPEATS" --seconds "$RUN_SECONDS" \
  --load-start "$LOAD_START" \
  | tee "$OUT/report.txt"
note "bench/run.sh: raw results in $OUT (raw.tsv, bound.tsv, flops.tsv, <workload>.shapes.txt)"
