// cluster_check.cpp: see cluster_check.hpp.
#include "core/cluster_check.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_set>

#include "core/errors.hpp"

namespace infllm {

InstanceView instance_view(const RManager& rm, RankId rank) {
  InstanceView v;
  v.rank = rank;
  for (const auto& [slot, h] : rm.held()) v.held.emplace_back(SlotId{slot}, h);
  std::sort(v.held.begin(), v.held.end(),
            [](const auto& a, const auto& b) { return a.first.value() < b.first.value(); });
  for (const auto& [id, p] : rm.requests()) {
    v.requests.push_back(id);
    for (const BlockEntry& e : p.table.entries()) {
      v.named.push_back(e.ref);
      const bool has_target = e.state == BlockState::kPushing || e.state == BlockState::kMoving;
      // A scratch target is named by the block leaving it until the commit.
      if (has_target && !e.via_scratch) v.named.push_back(e.target);
    }
  }
  for (const BlockRef& ref : rm.finished_remote()) v.named.push_back(ref);
  return v;
}

void check_cluster(const GManager& gm, std::span<const InstanceView> views) {
  const auto broken = [](const std::string& what) {
    throw InternalError("cluster invariant: " + what);
  };
  const DebtLedger& ledger = gm.ledger();
  const std::size_t n = views.size();
  // held[c][d]: what c holds for d; points[d][c]: what d's tables name on c.
  std::vector<std::map<std::int32_t, std::int64_t>> held(n);
  std::vector<std::map<std::int32_t, std::int64_t>> points(n);
  for (std::size_t c = 0; c < n; ++c) {
    if (views[c].rank.value() != static_cast<std::int32_t>(c)) broken("views out of rank order");
    for (const auto& [slot, h] : views[c].held) {
      ++held[c][h.debtor.value()];
      const auto id = ledger.contract_at(BlockRef{views[c].rank, slot});
      if (!id) broken("a lent slot under no contract");
      const Contract& k = ledger.contract(*id);
      if (k.debtor != h.debtor || k.request != h.request) {
        broken("a lent slot holds another request than its contract says");
      }
    }
  }
  std::unordered_set<BlockRef> named;
  for (std::size_t d = 0; d < n; ++d) {
    for (RequestId id : views[d].requests) {
      bool running = false;
      try {
        running = gm.status(id) == RequestStatus::kRunning;
      } catch (const InternalError&) {
        // an id the gManager never saw: not running either
      }
      if (!running) broken("an instance runs a request not running");
    }
    for (const BlockRef& ref : views[d].named) {
      if (!named.insert(ref).second) {
        broken("slot (r" + std::to_string(ref.rank.value()) + ",s" +
               std::to_string(ref.slot.value()) + ") named by two table entries");
      }
      if (ref.rank.value() != static_cast<std::int32_t>(d)) ++points[d][ref.rank.value()];
    }
  }
  for (std::size_t d = 0; d < n; ++d) {
    const auto& owes = ledger.creditors_of(RankId{static_cast<std::int32_t>(d)});
    if (owes != points[d]) broken("the ledger disagrees with the debtor's block tables");
    for (const auto& [c, blocks] : owes) {
      const auto& h = held[static_cast<std::size_t>(c)];
      const auto it = h.find(static_cast<std::int32_t>(d));
      if (it == h.end() || it->second != blocks) {
        broken("the ledger disagrees with what the creditor holds");
      }
    }
  }
  std::int64_t held_total = 0;
  for (const auto& h : held) {
    for (const auto& [d, k] : h) held_total += k;
  }
  if (held_total != ledger.total_blocks()) broken("a creditor holds a block the ledger forgot");
}

}  // namespace infllm
