// mpi_jobs.hpp: `mpiexec -n N infllm ...` as the engine tests start it (the mpi_launch.sh of this
// build tree: Open MPI's root and oversubscribe settings, a watchdog), and their inputs.
#pragma once

#include <string>

#include "support/run_command.hpp"

namespace infllm::testing {

// The command prefix that runs the built `infllm` on `ranks` ranks.
inline std::string launcher(int ranks) {
  return "INFLLM_TEST_RANKS=" + std::to_string(ranks) + " INFLLM_TEST_MPI_TIMEOUT=200 " +
         std::string(INFLLM_BINARY_DIR) + "/tests/mpi_launch.sh " + infllm_binary();
}

inline CommandResult mpi_infllm(int ranks, const std::string& args) {
  return run_command(launcher(ranks) + " " + args);
}

// A JSONL document of `n` token ids (deterministic, inside the micro model's 512-entry
// vocabulary), generating `max_new` tokens.
inline std::string doc(const std::string& id, int n, int max_new, int salt) {
  std::string t = "{\"id\": \"" + id + "\", \"tokens\": [";
  for (int i = 0; i < n; ++i) {
    if (i > 0) t += ',';
    t += std::to_string(3 + (i * 37 + salt * 101 + i / 7) % 500);
  }
  return t + "], \"max_new_tokens\": " + std::to_string(max_new) + "}\n";
}

}  // namespace infllm::testing
