// cluster_harness.cpp: the in-process cluster and its cross-rank invariants (see header).
#include "core/cluster_harness.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_set>

#include "core/cluster_check.hpp"
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
  std::vector<InstanceView> views;
  for (std::size_t r = 0; r < rms_.size(); ++r) {
    rms_[r]->check_invariants();
    views.push_back(instance_view(*rms_[r], RankId{static_cast<std::int32_t>(r)}));
  }
  check_cluster(gm_, views);
}

}  // namespace infllm
