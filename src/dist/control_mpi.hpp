// control_mpi.hpp: the control plane's collectives over MPI: every rank's report bytes gathered
// on rank 0 (MPI_Gatherv), one decision per rank scattered back (MPI_Scatterv), and which
// ranks share a node as the launcher placed them.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace infllm::dist {

// Collective. Rank 0 gets every rank's bytes in rank order; the others get nothing.
std::vector<std::vector<std::uint8_t>> gather_bytes(MPI_Comm comm, int rank, int size,
                                                    const std::vector<std::uint8_t>& mine);
// Collective. `parts` (rank 0 only): one byte vector per rank; every rank gets its own.
std::vector<std::uint8_t> scatter_bytes(MPI_Comm comm, int rank, int size,
                                        const std::vector<std::vector<std::uint8_t>>& parts);
// Collective. The node index (0, 1, ... in order of first rank) of every rank of `comm`: ranks
// that share memory share a node. The result on rank 0 only.
std::vector<std::int32_t> node_indices(MPI_Comm comm, int rank, int size);

}  // namespace infllm::dist
