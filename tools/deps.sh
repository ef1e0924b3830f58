#!/usr/bin/env bash
# Installs the Debian packages agon needs to build, test and read its logs,
# but only those that are missing.  Runs apt-get as root (or through sudo).
# With --test, also what only the test suite needs: a Slurm cluster for the
# sweep tests and Chromium for the report test.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libyaml-dev libopenblas-dev libhdf5-dev hdf5-tools libcmocka-dev
  zlib1g-dev libpng-dev dataset-fashion-mnist
  python3 python3-h5py python3-numpy python3-yaml
  clang libclang-rt-dev
)
if [ "${1:-}" = --test ]; then
  packages+=(slurmctld slurmd slurm-client munge chromium iproute2)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "agon: missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "agon: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
