// mpi_session.hpp: MPI initialization for infllm processes (the executable and MPI tests).
//
// Before MPI_Init it chooses Open MPI's one-sided component, because the default one (osc/rdma)
// crashes on this platform's Open MPI 4.1 with passive-target RMA (docs/building.md,
// "One-sided MPI"). A user's own OMPI_MCA_osc always wins.
#pragma once

#include <mpi.h>
#include <sched.h>

#include <span>
#include <string>

namespace infllm::dist {

// The one-sided component infllm asks for with the given MPI library version string
// (MPI_Get_library_version), or "" to leave Open MPI's default. Pure; unit-tested.
std::string osc_components_for(const std::string& library_version);

// How many of a node's ranks run on cores this rank may run on: those whose affinity mask
// (`all`, every rank of the node's, this one's included) shares a CPU with `mine`. Without
// binding that is every rank on the node; bound to NUMA domains or sockets, only the ranks in
// this one. Pure; unit-tested.
int ranks_sharing_cores(const cpu_set_t& mine, std::span<const cpu_set_t> all);

class MpiSession {
 public:
  // Sets OMPI_MCA_osc when the user has not, then MPI_Init_thread(FUNNELED).
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ranks on this node and this rank's index among them (MPI_COMM_TYPE_SHARED).
  int node_size() const { return node_size_; }
  int node_rank() const { return node_rank_; }
  // The ranks of this node that share cores with this one (ranks_sharing_cores of their
  // affinity masks, exchanged at start): what its threads divide the cores it sees among.
  int core_sharers() const { return core_sharers_; }
  // The OMPI_MCA_osc value in force ("" when Open MPI chooses).
  const std::string& osc_components() const { return osc_; }

 private:
  int rank_ = 0;
  int size_ = 1;
  int node_rank_ = 0;
  int node_size_ = 1;
  int core_sharers_ = 1;
  std::string osc_;
};

}  // namespace infllm::dist
