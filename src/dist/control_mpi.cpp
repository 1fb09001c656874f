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

namespace {
constexpr int kHeaderTag = 1 << 20;
}  // namespace

MpiAttentionExchange::MpiAttentionExchange(MPI_Comm comm) : comm_(comm) {
  INFLLM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  INFLLM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

AttentionExchange::Headers MpiAttentionExchange::exchange_headers(const Headers& out) {
  std::vector<std::int64_t> send_counts(static_cast<std::size_t>(size_), 0);
  std::vector<std::int64_t> recv_counts(static_cast<std::size_t>(size_), 0);
  for (const auto& [c, h] : out) send_counts.at(static_cast<std::size_t>(c)) = std::ssize(h);
  INFLLM_MPI_CHECK(
      MPI_Alltoall(send_counts.data(), 1, MPI_INT64_T, recv_counts.data(), 1, MPI_INT64_T, comm_));
  std::vector<MPI_Request> reqs;
  Headers in;
  for (int d = 0; d < size_; ++d) {
    const auto n = recv_counts[static_cast<std::size_t>(d)];
    if (n == 0) continue;
    auto& buf = in[d];
    buf.resize(static_cast<std::size_t>(n));
    reqs.emplace_back();
    INFLLM_MPI_CHECK(MPI_Irecv(buf.data(), static_cast<int>(n), MPI_INT64_T, d, kHeaderTag, comm_,
                               &reqs.back()));
  }
  for (const auto& [c, h] : out) {
    if (h.empty()) continue;
    reqs.emplace_back();
    INFLLM_MPI_CHECK(MPI_Isend(h.data(), static_cast<int>(h.size()), MPI_INT64_T, c, kHeaderTag,
                               comm_, &reqs.back()));
  }
  INFLLM_MPI_CHECK(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
  return in;
}

std::size_t MpiAttentionExchange::post_recv(std::int32_t peer, int tag, std::span<float> into) {
  recvs_.emplace_back();
  INFLLM_MPI_CHECK(MPI_Irecv(into.data(), static_cast<int>(into.size()), MPI_FLOAT, peer, tag,
                             comm_, &recvs_.back()));
  return recvs_.size() - 1;
}

void MpiAttentionExchange::post_send(std::int32_t peer, int tag, std::span<const float> data) {
  sends_.emplace_back();
  INFLLM_MPI_CHECK(MPI_Isend(data.data(), static_cast<int>(data.size()), MPI_FLOAT, peer, tag,
                             comm_, &sends_.back()));
}

std::size_t MpiAttentionExchange::wait_any(std::span<const std::size_t> tickets) {
  std::vector<MPI_Request> some;
  some.reserve(tickets.size());
  for (std::size_t t : tickets) some.push_back(recvs_.at(t));
  int index = MPI_UNDEFINED;
  INFLLM_MPI_CHECK(
      MPI_Waitany(static_cast<int>(some.size()), some.data(), &index, MPI_STATUS_IGNORE));
  if (index == MPI_UNDEFINED) throw InternalError("attention exchange: no receive to wait for");
  const std::size_t t = tickets[static_cast<std::size_t>(index)];
  recvs_[t] = MPI_REQUEST_NULL;
  return t;
}

void MpiAttentionExchange::wait_all(std::span<const std::size_t> tickets) {
  for (std::size_t t : tickets) INFLLM_MPI_CHECK(MPI_Wait(&recvs_.at(t), MPI_STATUS_IGNORE));
}

void MpiAttentionExchange::wait_sends() {
  INFLLM_MPI_CHECK(
      MPI_Waitall(static_cast<int>(sends_.size()), sends_.data(), MPI_STATUSES_IGNORE));
  for (MPI_Request& r : recvs_) {
    if (r != MPI_REQUEST_NULL)
      throw InternalError("attention exchange: a receive never waited for");
  }
  sends_.clear();
  recvs_.clear();
}

}  // namespace infllm::dist
