#!/usr/bin/env bash
# setup.sh: install what infllm's build, tests and demo need on Debian 12, as root.
#
#   scripts/setup.sh          the build, the unit and MPI tests, the demo and the benchmarks
#   scripts/setup.sh slurm    also Slurm and munge, for scripts/slurm_local.sh and `slurm` tests
#   scripts/setup.sh fuzz     also clang and libFuzzer, for the fuzz targets (fuzz/run.sh)
#
# Idempotent: packages already present are left alone, and apt-get runs only when something is
# missing. Prints each step. Python helpers (golden data, plots) get their own virtualenv in
# scripts that need them; the build and the test suite need none.
set -euo pipefail

# NOTE: the list is exactly the build's and tests' needs:
#   toolchain     build-essential cmake git pkg-config
#   MPI           openmpi-bin libopenmpi-dev (Open MPI 4.1, RMA windows, PMIx)
#   HDF5          libhdf5-openmpi-dev hdf5-tools (parallel HDF5; h5dump reads outputs in tests)
#   libraries     libboost-program-options-dev libopenblas-dev nlohmann-json3-dev
#   tests/bench   libgtest-dev libgmock-dev libbenchmark-dev
#   scripts       python3 python3-venv python3-pip unzip (model download, golden data)
#   launcher      openssh-client (Open MPI 4 refuses to start mpirun without an rsh agent)
#   slurm         slurm-wlm munge (scripts/slurm_local.sh runs slurmctld, slurmd and munged), only
#                 with `slurm`: the README's commands do not need them, and munge's installer
#                 fails in some chroots and containers that the rest installs into fine
#   fuzz          clang libclang-rt-14-dev (libFuzzer and clang's sanitizers, for the `fuzz`
#                 preset and fuzz/run.sh), only with `fuzz`
packages=(
  build-essential cmake git pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev libopenblas-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv python3-pip unzip
  openssh-client
)
for group in "$@"; do
  case $group in
    slurm) packages+=(slurm-wlm munge) ;;
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "setup: unknown group '$group' (known: slurm, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 2; }
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
