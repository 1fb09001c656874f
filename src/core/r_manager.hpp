// r_manager.hpp: one instance's KV manager: its pool, its requests' block tables, its loans.
//
// The rManager is driven at each step boundary by the contract protocol (kv_messages.hpp):
//
//   make_report()  pushes of the last step landed (their home slots are freed); count the slots
//                  the next step's batch needs; when they exceed the free slots, ask loans for
//                  full local blocks of its own requests (never for a request it does not run:
//                  no chains of loans); offer the remaining free slots, within its lending cap.
//   apply()        releases, move commits, preemptions, grants (lend / push), new moves and
//                  placements, in that order.
//   run_step()     one forward pass: the batch (kv_policy plan_batch) appends tokens, new tails
//                  in local slots only; requests that cannot get a slot wait for the next step.
//
// What it knows: its SlotAllocator (own / lent / free), a BlockTable per request it is home to,
// and for every lent slot the request and debtor whose block it holds.
//
// Invariants (check_invariants()): the allocator's own slots are exactly the home slots its
// tables name (local, pushing sources, reserved move destinations), each once; its lent slots are
// exactly the slots in `held`; borrowed = table entries whose data is (or is going) elsewhere;
// every table has its tail at home.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/block_table.hpp"
#include "core/kv_messages.hpp"
#include "core/kv_policy.hpp"
#include "core/slot_allocator.hpp"

namespace infllm {

struct RManagerConfig {
  RankId rank{0};
  std::int32_t capacity = 0;  // slots in the pool
  std::int32_t block_tokens = 16;
  double max_lend_fraction = 0.5;  // of capacity, lent at most
  BatchLimits batch;
  std::int32_t max_offered = 4096;  // free slot ids per report, at most
};

// A lent slot: whose block it holds.
struct HeldBlock {
  RequestId request;
  RankId debtor;
};

struct RequestProgress {
  RequestSpec spec;
  std::int64_t prefilled = 0;
  std::int64_t generated = 0;
  BlockTable table;
};

// One batch item's growth this step: the tokens it appended at positions
// [first_pos, first_pos + tokens), all in home slots.
struct Growth {
  RequestId request;
  std::int64_t first_pos = 0;
  std::int64_t tokens = 0;
  bool prefill = false;  // prompt tokens (else one decode token)
};

struct StepOutcome {
  std::int64_t items = 0;    // batch items that appended tokens
  std::int64_t tokens = 0;   // processed this step
  std::int32_t waiting = 0;  // batch items that got no slot
  std::int32_t finished = 0;
};

class RManager {
 public:
  // Throws InternalError on a non-positive capacity or block size, or a bad lend fraction.
  explicit RManager(const RManagerConfig& config);

  RankId rank() const { return config_.rank; }
  const RManagerConfig& config() const { return config_; }

  StepReport make_report(std::int64_t step);
  // Throws InternalError on a decision that contradicts this rank's state (misuse).
  void apply(const RankDecision& decision);
  // The simulated step: grow_step(), then every request whose spec says it is complete
  // (prefill done, max_new_tokens processed) finishes.
  StepOutcome run_step();
  // The real engine's step: the batch appends its tokens (new tails in local slots only; items
  // that get no slot wait). Returns what each item appended, in batch order; `outcome` (if not
  // null) gets the counts. Finishing is the caller's: finish_request() after sampling.
  std::vector<Growth> grow_step(StepOutcome* outcome = nullptr);
  // An extra step between two boundaries (the engine fills a wait for slower ranks with it):
  // only requests whose blocks all sit in this pool as plain local blocks (nothing lent out,
  // pushing or moving), batched under `limits`, and only into the room left in the blocks
  // they hold: it takes no slot, so the free slots the last report promised (and the gManager
  // may have lent or counted on for growth) stay free. What it grows is reported at the next
  // boundary.
  std::vector<Growth> grow_home_step(const BatchLimits& limits);
  // The same in two halves, for a step that may be discarded (a fill step cut short when the
  // last rank arrives): what grow_home_step would grow, changing nothing, and then recording
  // it. grow_home_step(l) == commit_growth(plan_home_step(l)).
  std::vector<Growth> plan_home_step(const BatchLimits& limits) const;
  void commit_growth(const std::vector<Growth>& grown);
  // The request ended (EOS, stop string, length): its home slots are freed, its remote slots
  // travel in the next report.
  void finish_request(RequestId request);

  // Signals (SIGUSR1 & co.) set this; it travels in the next report.
  void request_stop() { stop_requested_ = true; }
  bool stopped() const { return stopped_; }

  const SlotAllocator& pool() const { return pool_; }
  PoolStats stats() const { return pool_.stats(); }
  const std::map<RequestId, RequestProgress>& requests() const { return requests_; }
  const std::unordered_map<std::int32_t, HeldBlock>& held() const { return held_; }
  std::int32_t lend_cap() const;
  // Remote slots still named by requests that finished since the last report: the ledger and
  // the creditors keep them until the gManager reads the report.
  const std::vector<BlockRef>& finished_remote() const { return finished_remote_; }

  void check_invariants() const;

 private:
  // What each running request has left; home_only: only those whose blocks are all local.
  std::vector<BatchCandidate> candidates(bool home_only) const;
  std::vector<BatchItem> next_batch() const;
  std::vector<Growth> grow(const std::vector<BatchItem>& batch, StepOutcome* outcome,
                           bool allocate);
  std::int32_t blocks_needed(const std::vector<BatchItem>& batch) const;
  // Frees what the request holds here; `finished`: remember its remote slots until the report.
  void drop_request(RequestId request, bool finished = false);
  RequestProgress& progress(RequestId request);
  std::int32_t entry_at(BlockRef ref) const;

  RManagerConfig config_;
  SlotAllocator pool_;
  std::map<RequestId, RequestProgress> requests_;
  std::unordered_map<std::int32_t, HeldBlock> held_;  // lent slot -> whose block
  // Remote refs (kRemote / kMoving sources) of this rank's tables -> (request, index).
  std::unordered_map<BlockRef, std::pair<RequestId, std::int32_t>> remote_index_;
  std::vector<std::pair<RequestId, std::int32_t>> pushing_;  // pushes of this step
  std::vector<RequestId> finished_;                          // since the last report
  std::vector<BlockRef> finished_remote_;                    // their remote slots
  bool stop_requested_ = false;
  bool stopped_ = false;
};

}  // namespace infllm
