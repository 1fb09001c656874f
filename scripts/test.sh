#!/usr/bin/env bash
# test.sh: the README's test command. Installs what is missing (scripts/setup.sh), configures
# and builds the default preset, and runs the `unit` and `mpi` tests (never `slow` ones) with
# ctest, printing its summary. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cmake --preset default
cmake --build --preset default --parallel "$(nproc)"
ctest --preset default --label-regex '^(unit|mpi)$' --label-exclude '^slow$' \
  --parallel "$(nproc)" --timeout 600
