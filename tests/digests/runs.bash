# The runs whose bits tests/digests/*.digest pin (sourced by
# tests/e2e_digest.sh and tests/digests/update.sh).  Both are short, log
# every step, and end with their metrics, so that the digests cover the
# training trajectory, the metric code (LAPACK's eigen-solver in the
# Fréchet distance included) and the final parameters.
#   digest_run NAME AGON SRC OUT.h5 [agon run arguments...]
digest_run() {
  local name=$1 agon=$2 src=$3 out=$4
  shift 4
  case $name in
    ring8)
      "$agon" run "$src/experiments/ring8.yaml" -o "$out" --overwrite --progress none \
        --set train.steps=400 --set train.kernels=portable "$@" ;;
    image)
      "$agon" run "$src/experiments/fmnist_dcgan.yaml" -o "$out" --overwrite --progress none \
        --set train.steps=300 --set train.kernels=portable --set train.threads=1 \
        --set generator.base_width=8 --set discriminator.base_width=8 \
        --set train.batch_size=32 --set train.latent_dim=32 --set dataset.limit=2000 \
        --set log.every=1 --set log.samples_every=100 --set log.n_samples=16 \
        --set 'metrics=[{plugin: frechet, every: 150, features: raw, n_real: 400, n_fake: 400}]' \
        "$@" ;;
    *) echo "digest_run: no run named $name" >&2; return 2 ;;
  esac
}
DIGEST_RUNS=(ring8 image)
