// mpi_check.cpp: see mpi_check.hpp.
#include "dist/mpi_check.hpp"

#include <unistd.h>

#include <cstdio>

#include "core/errors.hpp"

namespace infllm::dist {

namespace {
void rank_and_host(int* rank, char* host, std::size_t host_len) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  *rank = -1;
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, rank);
  if (gethostname(host, host_len) != 0) std::snprintf(host, host_len, "?");
  host[host_len - 1] = '\0';
}
}  // namespace

void mpi_fail(int code, const char* call, const char* file, int line) {
  char message[MPI_MAX_ERROR_STRING] = "unknown MPI error";
  int len = 0;
  MPI_Error_string(code, message, &len);
  int rank = -1;
  char host[256];
  rank_and_host(&rank, host, sizeof(host));
  std::fprintf(stderr, "infllm: rank %d host %s %s:%d %s: %s\n", rank, host, file, line, call,
               message);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, static_cast<int>(ExitCode::kInternal));
  std::_Exit(static_cast<int>(ExitCode::kInternal));
}

void abort_job(const char* what, ExitCode code) {
  int rank = -1;
  char host[256];
  rank_and_host(&rank, host, sizeof(host));
  std::fprintf(stderr, "infllm: rank %d host %s: %s; aborting the job\n", rank, host, what);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, static_cast<int>(code));
  std::_Exit(static_cast<int>(code));
}

}  // namespace infllm::dist
