// g_manager.hpp: the global KV manager on rank 0: ledger, grants, preemption, DGFM, placement.
//
// decide() takes one StepReport per rank and returns one RankDecision per rank. Inside, in order:
//
//   1. finished requests: close their contracts (creditors get releases); cancel their moves
//   2. commit the moves planned at the previous boundary (ledger: the source slot leaves its
//      contract)
//   3. grants, oldest request first: creditor with the most lendable slots on the debtor's node,
//      else on any node; every granted slot is taken from the creditor's promised list before the
//      next grant, so no slot is promised twice; each (request, creditor) chunk is one contract
//   4. what no grant covers is unmet: preempt the youngest request running on the needy rank
//      (never the oldest running request in the cluster); if only the oldest runs there, preempt
//      the youngest elsewhere; if the oldest runs alone and still cannot grow, it fails with
//      kv_capacity. Nobody waits on a grant that cannot come, so no step deadlocks.
//   5. the DGFM plan (pooled policy) over the slots still free
//   6. placements, oldest queued first, only when nothing was unmet (pressure first drains)
//
// Requests are rejected at submit() when they cannot fit the empty cluster (kv_capacity).
// Invariants (check_invariants()): the ledger's; every contract and move belongs to a running
// request; the per-rank running sets agree with the request table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/debt_ledger.hpp"
#include "core/kv_messages.hpp"
#include "core/kv_policy.hpp"

namespace infllm {

struct GManagerConfig {
  ClusterShape shape;  // capacity per rank (its size is the rank count), lend cap
  // Each rank's node (0, 1, ...), as the launcher placed them (by slot, cyclic, any mapping);
  // empty: every rank on a node of its own.
  std::vector<std::int32_t> node_of_rank;
  KvPolicy policy = KvPolicy::kPooled;
  std::int32_t block_tokens = 16;
  std::int64_t dgfm_max_moves = 256;  // per boundary: byte budget / block bytes; 0 disables DGFM
  std::int32_t max_placements = 64;   // per boundary
  // Place a request only where the cluster's free slots cover it after what the running
  // requests still need to reach prompt + max_new_tokens (see place()); false: against the free
  // slots alone, optimistic as vLLM, preempting when growth meets (the protocol tests use it to
  // exercise preemption).
  bool reserve_growth = true;
};

enum class RequestStatus : std::uint8_t { kQueued, kRunning, kDone, kRejected, kFailed };

const char* request_status_name(RequestStatus status);

struct GManagerCounters {
  std::int64_t boundaries = 0;
  std::int64_t grants = 0;  // slots granted
  std::int64_t placements = 0;
  std::int64_t preemptions = 0;
  std::int64_t failures = 0;
  std::int64_t rejections = 0;
  std::int64_t moves = 0;
  std::int64_t unmet_blocks = 0;
  std::int64_t decisions() const {
    return grants + placements + preemptions + failures + rejections + moves;
  }
};

class GManager {
 public:
  // Throws InternalError on an empty cluster or a bad lend fraction.
  explicit GManager(const GManagerConfig& config);

  std::int32_t ranks() const { return static_cast<std::int32_t>(config_.shape.capacity.size()); }

  // Queues a request. Returns the verdict when it is rejected at admission. Throws InternalError
  // on a duplicate id or negative lengths (misuse).
  std::optional<Verdict> submit(const RequestSpec& spec);

  // One boundary. Throws InternalError when reports are missing, out of order or contradict the
  // gManager's state.
  std::vector<RankDecision> decide(const std::vector<StepReport>& reports);

  const DebtLedger& ledger() const { return ledger_; }
  RequestStatus status(RequestId request) const;
  std::optional<EndReason> reason(RequestId request) const;
  const GManagerCounters& counters() const { return counters_; }
  std::size_t queued() const { return queue_.size(); }
  std::size_t running() const { return running_.size(); }
  const std::vector<BlockMove>& moves_in_flight() const { return in_flight_; }

  void check_invariants() const;

 private:
  struct Running {
    RequestSpec spec;
    RankId home;
  };
  struct Outcome {
    RequestStatus status;
    std::optional<EndReason> reason;
  };

  std::int32_t node_of(std::int32_t rank) const {
    return config_.node_of_rank.empty() ? rank
                                        : config_.node_of_rank[static_cast<std::size_t>(rank)];
  }
  void end_running(RequestId request, RequestStatus status, std::vector<RankDecision>& out);
  void grant_needs(const std::vector<StepReport>& reports, std::vector<RankDecision>& out,
                   std::vector<std::int64_t>& unmet);
  void preempt_for(const std::vector<std::int64_t>& unmet, std::vector<RankDecision>& out);
  void plan_moves(std::vector<RankDecision>& out);
  void place(const std::vector<StepReport>& reports, std::vector<RankDecision>& out);
  void take_lendable(std::int32_t rank, std::int32_t n);

  GManagerConfig config_;
  DebtLedger ledger_;
  std::int64_t now_ = 0;
  std::int64_t next_move_ = 0;
  std::map<std::int64_t, RequestSpec> queue_;  // age -> spec
  std::unordered_map<RequestId, Running> running_;
  std::set<std::pair<std::int64_t, RequestId>> by_age_;                // running, oldest first
  std::vector<std::set<std::pair<std::int64_t, RequestId>>> at_rank_;  // (ranks) running there
  std::unordered_map<RequestId, Outcome> outcomes_;
  std::vector<BlockMove> in_flight_;
  std::vector<Grant> pending_grants_;  // this boundary's, sent at the end
  // This boundary's supply: promised slots and lending room per rank, and the creditor order.
  std::vector<std::vector<SlotId>> free_;
  std::vector<std::int32_t> room_;
  std::vector<std::set<std::pair<std::int32_t, std::int32_t>>> lendable_by_node_;
  std::set<std::pair<std::int32_t, std::int32_t>> lendable_;  // (lendable, rank)
  std::int32_t alone_unmet_ = 0;  // boundaries in a row the lone oldest request was unmet
  GManagerCounters counters_;
};

}  // namespace infllm
