// mpi_session.cpp: see mpi_session.hpp.
#include "dist/mpi_session.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <regex>
#include <vector>

#include "dist/mpi_check.hpp"

namespace infllm::dist {

std::string osc_components_for(const std::string& library_version) {
  // NOTE: Open MPI 4.x: osc/rdma segfaults in flush with MPI_Win_allocate + lock_all (upstream
  // open-mpi/ompi #7967, #11349; reproduced here, docs/building.md). osc/sm serves one node,
  // osc/pt2pt any number of nodes. Open MPI 5 has no pt2pt; its default is left alone there.
  static const std::regex kOpenMpi(R"(Open MPI v(\d+)\.)");
  std::smatch m;
  if (!std::regex_search(library_version, m, kOpenMpi)) return "";
  return std::stoi(m[1]) == 4 ? "sm,pt2pt" : "";
}

int ranks_sharing_cores(const cpu_set_t& mine, std::span<const cpu_set_t> all) {
  int n = 0;
  for (const cpu_set_t& other : all) {
    cpu_set_t both;
    CPU_AND(&both, &mine, &other);
    n += CPU_COUNT(&both) > 0 ? 1 : 0;
  }
  return n;
}

MpiSession::MpiSession(int* argc, char*** argv) {
  if (const char* user = std::getenv("OMPI_MCA_osc"); user != nullptr) {
    osc_ = user;
  } else {
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(version, &len);  // allowed before MPI_Init
    osc_ = osc_components_for(version);
    if (!osc_.empty()) setenv("OMPI_MCA_osc", osc_.c_str(), 0);
  }
  int provided = 0;
  INFLLM_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  INFLLM_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  INFLLM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  INFLLM_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node = MPI_COMM_NULL;
  INFLLM_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  INFLLM_MPI_CHECK(MPI_Comm_rank(node, &node_rank_));
  INFLLM_MPI_CHECK(MPI_Comm_size(node, &node_size_));
  // Who shares this rank's cores: the node's affinity masks, all-gathered (a mask that cannot
  // be read counts as every CPU).
  cpu_set_t mine;
  CPU_ZERO(&mine);
  if (sched_getaffinity(0, sizeof(mine), &mine) != 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &mine);
  }
  std::vector<cpu_set_t> all(static_cast<std::size_t>(node_size_));
  INFLLM_MPI_CHECK(
      MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all.data(), sizeof(mine), MPI_BYTE, node));
  core_sharers_ = std::max(1, ranks_sharing_cores(mine, all));
  INFLLM_MPI_CHECK(MPI_Comm_free(&node));
}

MpiSession::~MpiSession() {
  // MPI_Finalize is collective: not while an exception unwinds one rank alone (the caller's
  // handler reports it; mpirun ends a job whose rank exits without finalizing).
  if (std::uncaught_exceptions() > 0) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace infllm::dist
