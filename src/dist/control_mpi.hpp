// control_mpi.hpp: the control plane's collectives over MPI: every rank's report bytes gathered
// on rank 0 (MPI_Gatherv), one decision per rank scattered back (MPI_Scatterv), and which
// ranks share a node as the launcher placed them; MpiControlPort, the step loop's ControlPort
// over them, and MpiAttentionExchange, push-query's traffic over point-to-point messages
// (core/step_ports.hpp).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <span>
#include <vector>

#include "core/step_ports.hpp"

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

// The boundary as MPI_Gatherv of every rank's InstanceReport (dist/wire.hpp) and MPI_Scatterv
// of the decisions; the fill steps' arrival as an MPI_Ibarrier. Every call is collective over
// `comm`, which the port uses alone.
class MpiControlPort final : public ControlPort {
 public:
  explicit MpiControlPort(MPI_Comm comm);
  std::int32_t rank() const override { return rank_; }
  std::int32_t size() const override { return size_; }
  std::vector<std::int32_t> nodes() override;
  InstanceDecision boundary(InstanceReport&& mine, const Decide& decide) override;
  void check_views(InstanceView&& mine, const CheckViews& check) override;
  void arrive() override;
  bool all_arrived() override;
  void wait_all() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  MPI_Request arrival_ = MPI_REQUEST_NULL;
};

// Headers: MPI_Alltoall of their sizes, then MPI_Isend / MPI_Irecv of the ones that exist;
// per-layer messages: MPI_Isend / MPI_Irecv of floats. `comm` carries this traffic alone.
class MpiAttentionExchange final : public AttentionExchange {
 public:
  explicit MpiAttentionExchange(MPI_Comm comm);
  std::int32_t rank() const override { return rank_; }
  std::int32_t size() const override { return size_; }
  Headers exchange_headers(const Headers& out) override;
  std::size_t post_recv(std::int32_t peer, int tag, std::span<float> into) override;
  void post_send(std::int32_t peer, int tag, std::span<const float> data) override;
  std::size_t wait_any(std::span<const std::size_t> tickets) override;
  void wait_all(std::span<const std::size_t> tickets) override;
  void wait_sends() override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> recvs_, sends_;
};

}  // namespace infllm::dist
