#!/usr/bin/env bash
# demo.sh: the README's main-job command. Does all set-up itself (packages, build, the real
# default model), then runs infllm on 4 MPI ranks.
#
# Stage of the engine: generation (`infllm generate`) arrives with the model and engine issues;
# until it is built, the demo fetches the real model and runs the part of the engine that exists:
# 4 ranks exposing rBlock pools as RMA windows and moving verifiable blocks between them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --parallel "$(nproc)"
bin=build/default/src/app/infllm

if model=$(scripts/fetch_model.sh); then
  echo "demo: model $model ($(du -h "$model" | cut -f1))"
else
  echo "demo: the real model could not be downloaded; continuing without it" >&2
fi

"$bin" --help
if "$bin" generate --model x --input x.jsonl --output x.jsonl 2>&1 | grep -q "not built yet"; then
  echo
  echo "demo: infllm generate is not built yet in this version; running the 4-rank rBlock"
  echo "      transport check (RMA windows, MPI_Put/MPI_Get of verifiable blocks) instead"
  INFLLM_TEST_RANKS=4 build/default/tests/mpi_launch.sh build/default/tests/dist/test_dist_rma_pool
fi
