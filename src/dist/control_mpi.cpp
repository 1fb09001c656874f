// control_mpi.cpp: see control_mpi.hpp.
#include "dist/control_mpi.hpp"

#include <map>
#include <numeric>

#include "dist/mpi_check.hpp"

namespace infllm::dist {

std::vector<std::vector<std::uint8_t>> gather_bytes(MPI_Comm comm, int rank, int size,
                                                    const std::vector<std::uint8_t>& mine) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  INFLLM_MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm));
  std::vector<std::uint8_t> all;
  if (rank == 0) {
    std::exclusive_scan(sizes.begin(), sizes.end(), displs.begin(), 0);
    all.resize(static_cast<std::size_t>(displs.back() + sizes.back()));
  }
  INFLLM_MPI_CHECK(MPI_Gatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), displs.data(),
                               MPI_BYTE, 0, comm));
  std::vector<std::vector<std::uint8_t>> out;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      const auto* p = all.data() + displs[static_cast<std::size_t>(r)];
      out.emplace_back(p, p + sizes[static_cast<std::size_t>(r)]);
    }
  }
  return out;
}

std::vector<std::uint8_t> scatter_bytes(MPI_Comm comm, int rank, int size,
                                        const std::vector<std::vector<std::uint8_t>>& parts) {
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  std::vector<std::uint8_t> all;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      sizes[static_cast<std::size_t>(r)] =
          static_cast<int>(parts[static_cast<std::size_t>(r)].size());
    }
    std::exclusive_scan(sizes.begin(), sizes.end(), displs.begin(), 0);
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  }
  int n = 0;
  INFLLM_MPI_CHECK(MPI_Scatter(sizes.data(), 1, MPI_INT, &n, 1, MPI_INT, 0, comm));
  std::vector<std::uint8_t> mine(static_cast<std::size_t>(n));
  INFLLM_MPI_CHECK(MPI_Scatterv(all.data(), sizes.data(), displs.data(), MPI_BYTE, mine.data(), n,
                                MPI_BYTE, 0, comm));
  return mine;
}

std::vector<std::int32_t> node_indices(MPI_Comm comm, int rank, int size) {
  MPI_Comm node = MPI_COMM_NULL;
  INFLLM_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int leader = rank;  // the lowest rank of this node
  INFLLM_MPI_CHECK(MPI_Bcast(&leader, 1, MPI_INT, 0, node));
  INFLLM_MPI_CHECK(MPI_Comm_free(&node));
  std::vector<int> leaders(static_cast<std::size_t>(size));
  INFLLM_MPI_CHECK(MPI_Gather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, 0, comm));
  std::vector<std::int32_t> out;
  if (rank != 0) return out;
  std::map<int, std::int32_t> index;
  for (int l : leaders) {
    index.emplace(l, static_cast<std::int32_t>(index.size()));
    out.push_back(index.at(l));
  }
  return out;
}

}  // namespace infllm::dist
