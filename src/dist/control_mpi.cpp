// control_mpi.cpp: see control_mpi.hpp.
#include "dist/control_mpi.hpp"

#include <map>
#include <numeric>

#include "core/errors.hpp"
#include "dist/mpi_check.hpp"
#include "dist/wire.hpp"

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

MpiControlPort::MpiControlPort(MPI_Comm comm) : comm_(comm) {
  INFLLM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  INFLLM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

std::vector<std::int32_t> MpiControlPort::nodes() { return node_indices(comm_, rank_, size_); }

InstanceDecision MpiControlPort::boundary(InstanceReport&& mine, const Decide& decide) {
  const auto reports = gather_bytes(comm_, rank_, size_, encode(mine));
  std::vector<std::vector<std::uint8_t>> parts;
  if (rank_ == 0) {
    std::vector<InstanceReport> decoded;
    decoded.reserve(reports.size());
    for (const auto& bytes : reports) decoded.push_back(decode_report(bytes.data(), bytes.size()));
    const std::vector<InstanceDecision> ds = decide(std::move(decoded));
    if (ds.size() != static_cast<std::size_t>(size_)) {
      throw InternalError("control port: one decision per rank expected");
    }
    for (const InstanceDecision& d : ds) parts.push_back(encode(d));
  }
  const auto bytes = scatter_bytes(comm_, rank_, size_, parts);
  return decode_decision(bytes.data(), bytes.size());
}

void MpiControlPort::check_views(InstanceView&& mine, const CheckViews& check) {
  const auto views = gather_bytes(comm_, rank_, size_, encode(mine));
  if (rank_ != 0) return;
  std::vector<InstanceView> decoded;
  for (const auto& bytes : views) decoded.push_back(decode_view(bytes.data(), bytes.size()));
  check(std::move(decoded));
}

void MpiControlPort::arrive() {
  if (arrival_ != MPI_REQUEST_NULL) throw InternalError("control port: two arrivals in one step");
  INFLLM_MPI_CHECK(MPI_Ibarrier(comm_, &arrival_));
}

bool MpiControlPort::all_arrived() {
  int done = 0;
  INFLLM_MPI_CHECK(MPI_Test(&arrival_, &done, MPI_STATUS_IGNORE));
  return done != 0;
}

void MpiControlPort::wait_all() { INFLLM_MPI_CHECK(MPI_Wait(&arrival_, MPI_STATUS_IGNORE)); }

}  // namespace infllm::dist
