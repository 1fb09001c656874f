// dgfm.hpp: the debt-graph fragmentation manager: plans block moves that bring KV home.
//
// Input: the debt ledger (who holds whose blocks), the free slots each rank promised in its
// report (after the gManager's grants took theirs), lending room, and a budget of moves (the
// byte budget per boundary divided by the block size). Output: moves, each a block going from a
// creditor slot to its home, or (eviction) to a third rank. Moves of one plan are copied during
// the next step and committed together at the boundary after, so a block is never read while it
// is overwritten (two phases: move, then commit).
//
// The debt graph has an edge c -> d when c holds blocks of d. Kinds of move:
//
//   recall   d has a free slot: one of d's blocks comes home.       d <-- c
//   chain    a recall vacates the source slot on c; c uses it      d <-- c <-- e
//            (via its scratch area) to recall its own block.
//   swap     c holds d's block and d holds c's: both go home.       c <==> d
//   rotate   a cycle r0 -> r1 -> ... -> r0 of holders: each block    r0 -> r1
//            goes home into the slot its home vacates.               ^      |
//                                                                    r2 <---+
//   exchange r is full, owes blocks, and holds a block of s that cannot go home, while x holds
//            a block of r: s's block takes the slot r's block leaves on x (x lends as much as
//            before) and r's block comes home into the slot s's block left.
//   evict    as exchange, but s's block goes to a free slot of a rank x with lending room.
//            Exchange and evict lower the remote count by one for two moves.
//
// Priority: within a debtor, (request, creditor) groups with the fewest blocks first, so every
// completed group removes one remote attention exchange per layer and step; recalls before
// swaps and rotations, those before exchanges and evictions (cheaper first). A block moves at
// most once per plan. The remote-block count (ledger total) never increases; on small cases a
// few successive plans reach the least remote count any placement within the lending caps has
// (tests/core/dgfm_test.cpp checks both against exhaustive search).
#pragma once

#include <cstdint>
#include <vector>

#include "core/debt_ledger.hpp"
#include "core/kv_messages.hpp"

namespace infllm {

struct DgfmInput {
  const DebtLedger* ledger = nullptr;
  // (ranks) free slots usable as destinations; the plan consumes the ones it uses.
  std::vector<std::vector<SlotId>>* free_slots = nullptr;
  // (ranks) how many more slots each rank may lend; evictions consume it.
  std::vector<std::int32_t>* lend_room = nullptr;
  std::int64_t max_moves = 0;  // byte budget / block bytes
  std::int64_t now = 0;        // contracts opened at this step are still pushing: skipped
  MoveId first_id{0};
};

struct DgfmPlan {
  std::vector<BlockMove> moves;  // new_contract is left -1: the caller opens eviction contracts
  std::int64_t recalls = 0;      // including chains
  std::int64_t cycle_moves = 0;  // swaps and rotations
  std::int64_t evictions = 0;
  std::int64_t remote_after = 0;  // ledger total minus the blocks the plan brings home
};

// Throws InternalError on misuse (null or mis-sized inputs).
DgfmPlan plan_dgfm(const DgfmInput& input);

}  // namespace infllm
