// cluster_check.hpp: the cross-rank rule of docs/design.md, checked from what each instance
// reports about itself, so that the in-process harness and the MPI engine check it with the
// same code:
//
//   for every pair (d, c): what d owes c on the ledger = what c holds for d = what d's block
//   tables (and its finished requests' remote slots) name on c; every lent slot is under a
//   contract for the request it holds; no slot is named twice; every request an instance runs is
//   running on the gManager; nothing is held that the ledger forgot.
#pragma once

#include <span>
#include <utility>
#include <vector>

#include "core/g_manager.hpp"
#include "core/ids.hpp"
#include "core/r_manager.hpp"

namespace infllm {

// One instance's side of the rule.
struct InstanceView {
  RankId rank;
  std::vector<std::pair<SlotId, HeldBlock>> held;  // slots it lends, and to whom
  std::vector<RequestId> requests;                 // the requests it runs
  // Every slot its tables name (each entry's slot, and the target of a push or move in flight
  // that does not go through scratch), then its finished requests' remote slots.
  std::vector<BlockRef> named;
};

InstanceView instance_view(const RManager& rm, RankId rank);

// Throws InternalError("cluster invariant: ...") naming the first broken part of the rule.
// `views` are in rank order, one per rank of the gManager's cluster.
void check_cluster(const GManager& gm, std::span<const InstanceView> views);

}  // namespace infllm
