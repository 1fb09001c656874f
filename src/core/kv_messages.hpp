// kv_messages.hpp: the messages of the DistKV contract protocol, one round per step boundary.
//
//   every rank --StepReport--> gManager (rank 0) --RankDecision--> every rank
//
// They are plain structs of integers, strong ids and vectors of such, so src/dist can send them
// with MPI_Gatherv / MPI_Scatterv field by field, and the in-process harness passes them by value.
// The rManager produces reports and applies decisions; the gManager consumes reports and produces
// decisions. docs/design.md ("DistKV core: the protocol") says who sends what when.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

struct MoveTag {
  static constexpr const char* kPrefix = "m";
};
// One DGFM block move, from its plan to its commit.
using MoveId = StrongId<MoveTag, std::int64_t>;

// Why a request ended without being done.
enum class EndReason : std::uint8_t {
  kKvCapacity,  // cannot fit the empty cluster (rejected) or cannot grow alone (failed)
};

const char* end_reason_name(EndReason reason);

// What a new request needs; the gManager queues it until it places it.
struct RequestSpec {
  RequestId id;
  std::int64_t prompt_tokens = 0;
  std::int64_t max_new_tokens = 0;
  std::int64_t age = 0;  // arrival order: smaller = older; kept across preemptions
};

// Home -> gManager: request `request` will push `blocks` of its full local blocks to remote
// slots in the next step, to make room at home for the tails of next step.
struct LoanNeed {
  RequestId request;
  std::int32_t blocks = 0;
};

struct StepReport {
  RankId rank;
  std::int64_t step = 0;
  // Free slots this rank will not touch before the next boundary (net of the slots it keeps for
  // its own next-step tails). The gManager may grant them to others or use them as DGFM
  // destinations for this rank's own blocks.
  std::vector<SlotId> free_slots;
  // How many of free_slots may be lent (the max-lend-fraction cap, minus what is lent now).
  std::int32_t lend_limit = 0;
  std::vector<LoanNeed> needs;
  // Next-step blocks that no loan can cover (no full local block left to push out).
  std::int32_t unpushable_blocks = 0;
  std::vector<RequestId> finished;  // done since the last boundary; home slots already freed
  std::int64_t expected_work = 0;   // tokens still to process by the requests running here
  std::int32_t running = 0;
  bool stop = false;  // a signal arrived at this rank
};

// One loaned slot. Sent to the debtor (push a block of `request` there next step) and to the
// creditor (the slot is now lent to `debtor`).
struct Grant {
  ContractId contract;
  RequestId request;
  RankId debtor;
  BlockRef slot;
};

// A DGFM move: the block of `request` at `from` goes to `to` during the next step and is
// committed at the boundary after. via_scratch: `to` is a slot that another move of the same
// plan vacates, so the data passes through the destination's scratch area.
struct BlockMove {
  MoveId id;
  RequestId request;
  RankId home;
  BlockRef from;
  BlockRef to;
  bool via_scratch = false;
  ContractId new_contract{-1};  // when `to` is not the home: the contract that covers `to`
};

struct Placement {
  RequestSpec spec;
};

struct Verdict {
  RequestId request;
  EndReason reason = EndReason::kKvCapacity;
};

// gManager -> one rank. A rank applies the fields in the order they are declared.
struct RankDecision {
  RankId rank;
  std::int64_t step = 0;
  std::vector<SlotId> releases;    // creditor: lent slots of finished requests, free again
  std::vector<BlockMove> commits;  // moves planned last boundary that this rank takes part in
  // creditor: lent slots of requests preempted or failed at this boundary, free again. After the
  // commits, because a commit may have just moved such a request's block into one of them.
  std::vector<SlotId> late_releases;
  std::vector<RequestId> preempt;     // home: drop the request (it will be recomputed later)
  std::vector<Verdict> fail;          // home: drop the request, it ends as failed
  std::vector<Grant> grants_out;      // creditor: slots now lent
  std::vector<Grant> grants_in;       // debtor: push one full block of the request to each slot
  std::vector<BlockMove> moves;       // new DGFM moves this rank takes part in (home/source/dest)
  std::vector<Placement> placements;  // home: new requests to start
  bool stop = false;
};

}  // namespace infllm
