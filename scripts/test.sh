#!/usr/bin/env bash
# test.sh: the README's test command. Installs what is missing (scripts/setup.sh), configures
# and builds the default preset, and runs the `unit` and `mpi` tests (never `slow` ones) with
# ctest, printing its summary. Exits non-zero on any failure. It also fetches CUDA's headers
# where no CUDA toolkit is installed (scripts/fetch_cuda_headers.sh: the CUDA kernels' unit tests
# compile them with g++), and the real default model once (scripts/fetch_model.sh) for the
# golden test that compares its logits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
# CUDA's headers, for the CUDA kernels' unit tests over the CUDA-on-CPU layer (kernels/emulation).
scripts/fetch_cuda_headers.sh >/dev/null
# The real default model makes the SmolLM2 golden-logits test run; without it that test skips.
scripts/fetch_model.sh >/dev/null || echo "test: SmolLM2 could not be fetched; its golden test will skip"
cmake --preset default
cmake --build --preset default --parallel "$(nproc)"
ctest --preset default --label-regex '^(unit|mpi)$' --label-exclude '^slow$' \
  --parallel "$(nproc)" --timeout 600
