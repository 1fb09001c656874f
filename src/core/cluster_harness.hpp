// cluster_harness.hpp: N simulated instances and one gManager in one process, on one thread:
// the contract protocol alone (no data, no executor), for stress tests of the managers. The
// engine's step loop with its data and executor is step_loop.hpp.
//
// Each boundary, every RManager's StepReport goes through an in-memory control channel to the
// GManager, and each RankDecision comes back the same way: the very messages src/dist sends with
// MPI_Gatherv / MPI_Scatterv, copied by value. Then every instance runs its step
// (RManager::run_step: growth and completion by the specs). Tests and `bench core` drive it: submit
// requests, step, check invariants.
//
// check_invariants() checks every component and the cross-rank rule of docs/design.md
// (cluster_check.hpp, the same check the MPI engine runs with --check-invariants).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/g_manager.hpp"
#include "core/kv_messages.hpp"
#include "core/r_manager.hpp"

namespace infllm {

// The harness's control channel: one mailbox per rank each way, copies by value.
class InMemoryControlChannel {
 public:
  explicit InMemoryControlChannel(std::int32_t ranks);
  void send_report(const StepReport& report);
  std::vector<StepReport> gather_reports();  // rank order
  void scatter_decisions(const std::vector<RankDecision>& decisions);
  RankDecision receive_decision(RankId rank);
  std::int64_t messages() const { return messages_; }

 private:
  std::vector<std::optional<StepReport>> reports_;
  std::vector<std::optional<RankDecision>> decisions_;
  std::int64_t messages_ = 0;
};

struct ClusterConfig {
  std::int32_t ranks = 4;
  std::int32_t ranks_per_node = 1;  // ranks r and s share a node when r / n == s / n
  std::int32_t capacity = 64;       // slots per instance
  std::int32_t block_tokens = 16;
  double max_lend_fraction = 0.5;
  KvPolicy policy = KvPolicy::kPooled;
  BatchLimits batch;
  std::int64_t dgfm_max_moves = 64;
  std::int32_t max_placements = 64;
  bool reserve_growth = true;  // GManagerConfig::reserve_growth
};

struct StepTotals {
  std::int64_t items = 0;  // batch items that appended tokens (growth events)
  std::int64_t tokens = 0;
  std::int32_t finished = 0;
  std::int32_t waiting = 0;
};

class ClusterHarness {
 public:
  explicit ClusterHarness(const ClusterConfig& config);

  std::optional<Verdict> submit(const RequestSpec& spec) { return gm_.submit(spec); }
  // One boundary (reports -> decisions -> apply) and one step on every instance.
  StepTotals step();
  std::int64_t steps() const { return step_; }
  // Nothing queued and nothing running.
  bool idle() const { return gm_.queued() == 0 && gm_.running() == 0; }

  GManager& gmanager() { return gm_; }
  const GManager& gmanager() const { return gm_; }
  RManager& rmanager(RankId rank) { return *rms_.at(static_cast<std::size_t>(rank.value())); }
  std::int32_t ranks() const { return static_cast<std::int32_t>(rms_.size()); }
  // Blocks of running requests that live away from their home (ledger total).
  std::int64_t remote_blocks() const { return gm_.ledger().total_blocks(); }

  // Throws InternalError naming the first broken invariant.
  void check_invariants() const;

 private:
  ClusterConfig config_;
  GManager gm_;
  std::vector<std::unique_ptr<RManager>> rms_;
  InMemoryControlChannel channel_;
  std::int64_t step_ = 0;
};

}  // namespace infllm
