// cluster_harness.cpp: the in-process cluster and its cross-rank invariants (see header).
#include "core/cluster_harness.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_set>

#include "core/errors.hpp"

namespace infllm {

InMemoryControlChannel::InMemoryControlChannel(std::int32_t ranks)
    : reports_(static_cast<std::size_t>(ranks)), decisions_(static_cast<std::size_t>(ranks)) {}

void InMemoryControlChannel::send_report(const StepReport& report) {
  auto& box = reports_.at(static_cast<std::size_t>(report.rank.value()));
  if (box) throw InternalError("control channel: two reports from one rank in one boundary");
  box = report;
  ++messages_;
}

std::vector<StepReport> InMemoryControlChannel::gather_reports() {
  std::vector<StepReport> out;
  out.reserve(reports_.size());
  for (auto& box : reports_) {
    if (!box) throw InternalError("control channel: a rank did not report");
    out.push_back(std::move(*box));
    box.reset();
  }
  return out;
}

void InMemoryControlChannel::scatter_decisions(const std::vector<RankDecision>& decisions) {
  if (decisions.size() != decisions_.size()) {
    throw InternalError("control channel: one decision per rank expected");
  }
  for (std::size_t r = 0; r < decisions.size(); ++r) decisions_[r] = decisions[r];
  messages_ += static_cast<std::int64_t>(decisions.size());
}

RankDecision InMemoryControlChannel::receive_decision(RankId rank) {
  auto& box = decisions_.at(static_cast<std::size_t>(rank.value()));
  if (!box) throw InternalError("control channel: no decision for this rank");
  RankDecision d = std::move(*box);
  box.reset();
  return d;
}

namespace {
GManagerConfig gmanager_config(const ClusterConfig& c) {
  GManagerConfig g;
  g.shape.capacity.assign(static_cast<std::size_t>(c.ranks), c.capacity);
  g.shape.max_lend_fraction = c.max_lend_fraction;
  for (std::int32_t r = 0; r < c.ranks; ++r) {
    g.node_of_rank.push_back(r / std::max<std::int32_t>(1, c.ranks_per_node));
  }
  g.policy = c.policy;
  g.block_tokens = c.block_tokens;
  g.dgfm_max_moves = c.dgfm_max_moves;
  g.max_placements = c.max_placements;
  g.reserve_growth = c.reserve_growth;
  return g;
}
}  // namespace

ClusterHarness::ClusterHarness(const ClusterConfig& config)
    : config_(config), gm_(gmanager_config(config)), channel_(config.ranks) {
  for (std::int32_t r = 0; r < config.ranks; ++r) {
    RManagerConfig rc;
    rc.rank = RankId{r};
    rc.capacity = config.capacity;
    rc.block_tokens = config.block_tokens;
    rc.max_lend_fraction = config.max_lend_fraction;
    rc.batch = config.batch;
    rms_.push_back(std::make_unique<RManager>(rc));
  }
}

StepTotals ClusterHarness::step() {
  ++step_;
  for (auto& rm : rms_) channel_.send_report(rm->make_report(step_));
  channel_.scatter_decisions(gm_.decide(channel_.gather_reports()));
  for (auto& rm : rms_) rm->apply(channel_.receive_decision(rm->rank()));
  StepTotals t;
  for (auto& rm : rms_) {
    const StepOutcome o = rm->run_step();
    t.items += o.items;
    t.tokens += o.tokens;
    t.finished += o.finished;
    t.waiting += o.waiting;
  }
  return t;
}

void ClusterHarness::check_invariants() const {
  gm_.check_invariants();
  for (const auto& rm : rms_) rm->check_invariants();
  const auto broken = [](const std::string& what) {
    throw InternalError("cluster invariant: " + what);
  };
  const DebtLedger& ledger = gm_.ledger();
  const auto n = static_cast<std::size_t>(ranks());
  // held[c][d]: what c holds for d; points[d][c]: what d's tables name on c.
  std::vector<std::map<std::int32_t, std::int64_t>> held(n);
  std::vector<std::map<std::int32_t, std::int64_t>> points(n);
  for (std::size_t c = 0; c < n; ++c) {
    for (const auto& [slot, h] : rms_[c]->held()) {
      ++held[c][h.debtor.value()];
      const BlockRef ref{RankId{static_cast<std::int32_t>(c)}, SlotId{slot}};
      const auto id = ledger.contract_at(ref);
      if (!id) broken("a lent slot under no contract");
      const Contract& k = ledger.contract(*id);
      if (k.debtor != h.debtor || k.request != h.request) {
        broken("a lent slot holds another request than its contract says");
      }
    }
  }
  std::unordered_set<BlockRef> named;
  for (std::size_t d = 0; d < n; ++d) {
    for (const auto& [id, p] : rms_[d]->requests()) {
      if (gm_.status(id) != RequestStatus::kRunning)
        broken("an instance runs a request not running");
      for (const BlockEntry& e : p.table.entries()) {
        const bool has_target = e.state == BlockState::kPushing || e.state == BlockState::kMoving;
        for (int k = 0; k < 2; ++k) {
          const BlockRef ref = k == 0 ? e.ref : e.target;
          // A scratch target is named by the block leaving it until the commit.
          if (k == 1 && (!has_target || e.via_scratch)) continue;
          if (!named.insert(ref).second) {
            broken("slot (r" + std::to_string(ref.rank.value()) + ",s" +
                   std::to_string(ref.slot.value()) + ") named by two table entries");
          }
          if (ref.rank.value() != static_cast<std::int32_t>(d)) ++points[d][ref.rank.value()];
        }
      }
    }
  }
  for (std::size_t d = 0; d < n; ++d) {
    for (const BlockRef& ref : rms_[d]->finished_remote()) {
      if (!named.insert(ref).second) broken("a slot named by two table entries");
      ++points[d][ref.rank.value()];
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
