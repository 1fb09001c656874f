// mpi_check.hpp: one checking macro for every MPI call (STYLE.md habit 4).
//
// INFLLM_MPI_CHECK(MPI_Put(...)) prints `rank R host H file:line call: message` and aborts the
// whole job with exit code 3, so one failing rank never leaves the others blocked.
#pragma once

#include <mpi.h>

#include "core/errors.hpp"

namespace infllm::dist {

[[noreturn]] void mpi_fail(int code, const char* call, const char* file, int line);

// Logs `what` with rank and host to stderr and calls MPI_Abort(MPI_COMM_WORLD, code): 3 for an
// internal failure, 5 for an output that could not be written.
[[noreturn]] void abort_job(const char* what, ExitCode code = ExitCode::kInternal);

}  // namespace infllm::dist

#define INFLLM_MPI_CHECK(call)                                             \
  do {                                                                     \
    const int infllm_mpi_rc_ = (call);                                     \
    if (infllm_mpi_rc_ != MPI_SUCCESS) {                                   \
      ::infllm::dist::mpi_fail(infllm_mpi_rc_, #call, __FILE__, __LINE__); \
    }                                                                      \
  } while (0)
