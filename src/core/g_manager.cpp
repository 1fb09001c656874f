// g_manager.cpp: one boundary of the global manager (see header for the order of decisions).
#include "core/g_manager.hpp"

#include <algorithm>
#include <sstream>
#include <string>
#include <unordered_set>

#include "core/dgfm.hpp"
#include "core/errors.hpp"

namespace infllm {

const char* request_status_name(RequestStatus status) {
  switch (status) {
    case RequestStatus::kQueued:
      return "queued";
    case RequestStatus::kRunning:
      return "running";
    case RequestStatus::kDone:
      return "done";
    case RequestStatus::kRejected:
      return "rejected";
    case RequestStatus::kFailed:
      return "failed";
  }
  return "?";
}

namespace {
[[noreturn]] void misuse(const std::string& what) { throw InternalError("GManager: " + what); }

// "r3", "q17": ids as the logs print them.
template <typename Id>
std::string text(Id id) {
  std::ostringstream os;
  os << id;
  return os.str();
}
}  // namespace

GManager::GManager(const GManagerConfig& config)
    : config_(config),
      ledger_(static_cast<std::int32_t>(std::max<std::size_t>(1, config.shape.capacity.size()))),
      at_rank_(config.shape.capacity.size()) {
  if (config.shape.capacity.empty()) misuse("a cluster needs at least one rank");
  if (config.block_tokens <= 0) misuse("non-positive config");
  if (!config.node_of_rank.empty() &&
      (config.node_of_rank.size() != config.shape.capacity.size() ||
       *std::min_element(config.node_of_rank.begin(), config.node_of_rank.end()) < 0)) {
    misuse("node_of_rank needs one node index >= 0 per rank");
  }
  if (!(config.shape.max_lend_fraction >= 0.0 && config.shape.max_lend_fraction <= 1.0)) {
    misuse("max_lend_fraction must be in [0, 1]");
  }
}

std::optional<Verdict> GManager::submit(const RequestSpec& spec) {
  if (spec.prompt_tokens <= 0 || spec.max_new_tokens < 0) misuse("a request needs a prompt");
  if (outcomes_.count(spec.id) != 0) misuse("request " + text(spec.id) + " twice");
  if (queue_.count(spec.age) != 0) misuse("two requests of one age");
  const std::int64_t blocks =
      (spec.prompt_tokens + spec.max_new_tokens + config_.block_tokens - 1) / config_.block_tokens;
  if (!fits_empty_cluster(config_.shape, config_.policy, blocks)) {
    outcomes_[spec.id] = Outcome{RequestStatus::kRejected, EndReason::kKvCapacity};
    ++counters_.rejections;
    return Verdict{spec.id, EndReason::kKvCapacity};
  }
  outcomes_[spec.id] = Outcome{RequestStatus::kQueued, std::nullopt};
  queue_.emplace(spec.age, spec);
  return std::nullopt;
}

RequestStatus GManager::status(RequestId request) const {
  const auto it = outcomes_.find(request);
  if (it == outcomes_.end()) misuse("unknown request " + text(request));
  return it->second.status;
}

std::optional<EndReason> GManager::reason(RequestId request) const {
  const auto it = outcomes_.find(request);
  return it == outcomes_.end() ? std::nullopt : it->second.reason;
}

// Removes a running request and closes its contracts. Slots granted at this boundary were never
// lent (their grants are dropped before sending); the others are released.
void GManager::end_running(RequestId request, RequestStatus status,
                           std::vector<RankDecision>& out) {
  const auto it = running_.find(request);
  if (it == running_.end()) misuse(text(request) + " is not running");
  const Running r = it->second;
  running_.erase(it);
  by_age_.erase({r.spec.age, request});
  at_rank_[static_cast<std::size_t>(r.home.value())].erase({r.spec.age, request});
  for (ContractId id : ledger_.contracts_of_request(request)) {
    const Contract& c = ledger_.contract(id);
    RankDecision& to = out[static_cast<std::size_t>(c.creditor.value())];
    auto& rel = status == RequestStatus::kDone ? to.releases : to.late_releases;
    for (std::size_t k = 0; k < c.slots.size(); ++k) {
      if (c.granted_at[k] != now_) rel.push_back(c.slots[k]);
    }
  }
  ledger_.release_request(request);
  if (status == RequestStatus::kQueued) {
    queue_.emplace(r.spec.age, r.spec);
    outcomes_[request] = Outcome{RequestStatus::kQueued, std::nullopt};
  } else {
    outcomes_[request] = Outcome{status, status == RequestStatus::kFailed
                                             ? std::optional<EndReason>(EndReason::kKvCapacity)
                                             : std::nullopt};
  }
}

void GManager::take_lendable(std::int32_t rank, std::int32_t n) {
  const auto r = static_cast<std::size_t>(rank);
  const auto lendable = [&] {
    return std::min(static_cast<std::int32_t>(free_[r].size()), room_[r]);
  };
  const std::int32_t before = lendable();
  lendable_.erase({before, rank});
  lendable_by_node_[static_cast<std::size_t>(node_of(rank))].erase({before, rank});
  free_[r].resize(free_[r].size() - static_cast<std::size_t>(n));
  room_[r] -= n;
  const std::int32_t after = lendable();
  if (after > 0) {
    lendable_.insert({after, rank});
    lendable_by_node_[static_cast<std::size_t>(node_of(rank))].insert({after, rank});
  }
}

void GManager::grant_needs(const std::vector<StepReport>& reports, std::vector<RankDecision>& out,
                           std::vector<std::int64_t>& unmet) {
  const auto n = static_cast<std::size_t>(ranks());
  lendable_.clear();
  std::int32_t nodes = 0;
  for (std::int32_t r = 0; r < ranks(); ++r) nodes = std::max(nodes, node_of(r) + 1);
  lendable_by_node_.assign(static_cast<std::size_t>(nodes), {});
  for (std::size_t r = 0; r < n; ++r) {
    const std::int32_t l = std::min(static_cast<std::int32_t>(free_[r].size()), room_[r]);
    if (l > 0) {
      lendable_.insert({l, static_cast<std::int32_t>(r)});
      lendable_by_node_[static_cast<std::size_t>(node_of(static_cast<std::int32_t>(r)))].insert(
          {l, static_cast<std::int32_t>(r)});
    }
  }
  // Oldest request first: the oldest running request must always be able to grow.
  struct Need {
    std::int64_t age;
    std::int32_t debtor;
    LoanNeed need;
  };
  std::vector<Need> needs;
  for (const StepReport& rep : reports) {
    unmet[static_cast<std::size_t>(rep.rank.value())] += rep.unpushable_blocks;
    for (const LoanNeed& ln : rep.needs) {
      const auto it = running_.find(ln.request);
      if (it == running_.end() || it->second.home != rep.rank || ln.blocks <= 0) {
        // NOTE: a loan for a request the rank does not run would be a chain of loans.
        misuse(text(rep.rank) + " asks a loan for " + text(ln.request) + ", which it does not run");
      }
      needs.push_back(Need{it->second.spec.age, rep.rank.value(), ln});
    }
  }
  std::sort(needs.begin(), needs.end(), [](const Need& a, const Need& b) { return a.age < b.age; });
  for (const Need& nd : needs) {
    std::int32_t left = nd.need.blocks;
    while (left > 0 && config_.policy == KvPolicy::kPooled) {
      // Most lendable first; same node before other nodes; never the debtor itself.
      std::int32_t creditor = -1;
      for (const auto* set :
           {&lendable_by_node_[static_cast<std::size_t>(node_of(nd.debtor))], &lendable_}) {
        for (auto it = set->rbegin(); it != set->rend(); ++it) {
          if (it->second != nd.debtor) {
            creditor = it->second;
            break;
          }
        }
        if (creditor >= 0) break;
      }
      if (creditor < 0) break;
      const auto c = static_cast<std::size_t>(creditor);
      const std::int32_t k = std::min({left, static_cast<std::int32_t>(free_[c].size()), room_[c]});
      std::vector<SlotId> slots(free_[c].end() - k, free_[c].end());
      take_lendable(creditor, k);  // reserve before granting
      const ContractId id =
          ledger_.open(RankId{nd.debtor}, RankId{creditor}, nd.need.request, slots, now_);
      for (SlotId s : slots) {
        pending_grants_.push_back(
            Grant{id, nd.need.request, RankId{nd.debtor}, BlockRef{RankId{creditor}, s}});
      }
      counters_.grants += k;
      left -= k;
    }
    unmet[static_cast<std::size_t>(nd.debtor)] += left;
  }
  (void)out;
}

void GManager::preempt_for(const std::vector<std::int64_t>& unmet, std::vector<RankDecision>& out) {
  for (std::int32_t r = 0; r < ranks(); ++r) {
    if (unmet[static_cast<std::size_t>(r)] == 0 || by_age_.empty()) continue;
    counters_.unmet_blocks += unmet[static_cast<std::size_t>(r)];
    const RequestId oldest = by_age_.begin()->second;
    const auto& here = at_rank_[static_cast<std::size_t>(r)];
    std::optional<RequestId> victim;
    if (!here.empty() && here.rbegin()->second != oldest) {
      victim = here.rbegin()->second;  // the youngest running here
    } else if (!here.empty() && by_age_.size() > 1) {
      victim = by_age_.rbegin()->second;  // only the oldest runs here: free room elsewhere
    } else if (!here.empty()) {
      // The oldest runs alone and still cannot grow. Releases decided at the last boundary are
      // visible in this boundary's reports, so a second unmet boundary in a row is final.
      if (++alone_unmet_ >= 2) {
        const RankId home = running_.at(oldest).home;
        end_running(oldest, RequestStatus::kFailed, out);
        out[static_cast<std::size_t>(home.value())].fail.push_back(
            Verdict{oldest, EndReason::kKvCapacity});
        ++counters_.failures;
        alone_unmet_ = 0;
      }
      continue;
    }
    if (!victim) continue;
    const RankId home = running_.at(*victim).home;
    end_running(*victim, RequestStatus::kQueued, out);
    out[static_cast<std::size_t>(home.value())].preempt.push_back(*victim);
    ++counters_.preemptions;
  }
}

void GManager::plan_moves(std::vector<RankDecision>& out) {
  if (config_.policy != KvPolicy::kPooled || config_.dgfm_max_moves <= 0) return;
  DgfmInput in;
  in.ledger = &ledger_;
  in.free_slots = &free_;
  in.lend_room = &room_;
  in.max_moves = config_.dgfm_max_moves;
  in.now = now_;
  in.first_id = MoveId{next_move_};
  DgfmPlan plan = plan_dgfm(in);
  next_move_ += static_cast<std::int64_t>(plan.moves.size());
  counters_.moves += static_cast<std::int64_t>(plan.moves.size());
  for (BlockMove& m : plan.moves) {
    // A free destination on a third instance is reserved now; a vacated one at the commit.
    if (m.to.rank != m.home && !m.via_scratch) {
      m.new_contract = ledger_.open(m.home, m.to.rank, m.request, {m.to.slot}, now_);
    }
    for (std::int32_t r : {m.home.value(), m.from.rank.value(), m.to.rank.value()}) {
      auto& v = out[static_cast<std::size_t>(r)].moves;
      if (v.empty() || v.back().id != m.id) v.push_back(m);
    }
  }
  in_flight_ = std::move(plan.moves);
}

void GManager::place(const std::vector<StepReport>& reports, std::vector<RankDecision>& out) {
  std::vector<InstanceLoad> loads;
  loads.reserve(reports.size());
  for (const StepReport& rep : reports) {
    loads.push_back(InstanceLoad{
        rep.rank, rep.expected_work,
        static_cast<std::int32_t>(free_[static_cast<std::size_t>(rep.rank.value())].size())});
  }
  // NOTE: a request is placed only while the promised free slots of the whole cluster, less
  // what the running requests still need to reach their full length (prompt + max_new_tokens),
  // cover its full length. Admitting against the free slots alone let a long prompt be placed
  // while an older one was still growing into the same slots: it was preempted when they met
  // and placed again as soon as anything freed, recomputing thousands of tokens each time (the
  // demo: the longest document preempted 6 times, 36K prefill tokens for 14K of prompts).
  // The lending cap counts too: a rank's free slots beyond what it may still lend serve only
  // its own requests, so the room any one request can reach is everything lendable plus the
  // largest such home-only remainder.
  // With the local policy no slot is lent, so each instance is a cluster of its own: a request
  // fits where that instance's free slots, less its own running requests' remaining growth
  // (reserve), cover it; `loads` carries each instance's room and the headroom is the largest.
  const bool local = config_.policy == KvPolicy::kLocal;
  const auto local_headroom = [&loads] {
    std::int64_t h = 0;
    for (const auto& l : loads) h = std::max<std::int64_t>(h, l.free_blocks);
    return h;
  };
  std::int64_t headroom = 0;
  if (local) {
    if (config_.reserve_growth) {
      for (std::size_t r = 0; r < loads.size(); ++r) {
        const std::int64_t growth =
            (reports[r].expected_work + config_.block_tokens - 1) / config_.block_tokens;
        loads[r].free_blocks =
            static_cast<std::int32_t>(std::max<std::int64_t>(0, loads[r].free_blocks - growth));
      }
    }
    headroom = local_headroom();
  } else if (config_.reserve_growth) {
    std::int32_t home_only = 0;
    for (std::size_t r = 0; r < free_.size(); ++r) {
      const auto f = static_cast<std::int32_t>(free_[r].size());
      const std::int32_t lendable = std::min(f, std::max(0, room_[r]));
      headroom += lendable;
      home_only = std::max(home_only, f - lendable);
    }
    headroom += home_only;
    for (const StepReport& rep : reports) {
      headroom -= (rep.expected_work + config_.block_tokens - 1) / config_.block_tokens;
    }
  } else {
    for (const auto& l : loads) headroom += l.free_blocks;
  }
  std::int32_t placed = 0;
  while (!queue_.empty() && placed < config_.max_placements) {
    const RequestSpec spec = queue_.begin()->second;
    const std::int64_t total = spec.prompt_tokens + spec.max_new_tokens;
    const auto blocks =
        static_cast<std::int32_t>((total + config_.block_tokens - 1) / config_.block_tokens);
    // An idle cluster always takes the oldest request: it fits the empty cluster (admission).
    if (blocks > headroom && !running_.empty()) break;
    const auto rank = choose_instance(loads, std::min(blocks, 2), blocks);
    if (!rank) break;  // no room now; the queue waits for finishing requests
    queue_.erase(queue_.begin());
    InstanceLoad& l = loads[static_cast<std::size_t>(rank->value())];
    l.expected_work += total;
    l.free_blocks -= std::min(l.free_blocks, blocks);
    headroom = local ? local_headroom() : headroom - blocks;
    running_.emplace(spec.id, Running{spec, *rank});
    by_age_.insert({spec.age, spec.id});
    at_rank_[static_cast<std::size_t>(rank->value())].insert({spec.age, spec.id});
    outcomes_[spec.id] = Outcome{RequestStatus::kRunning, std::nullopt};
    out[static_cast<std::size_t>(rank->value())].placements.push_back(Placement{spec});
    ++counters_.placements;
    ++placed;
  }
}

std::vector<RankDecision> GManager::decide(const std::vector<StepReport>& reports) {
  const auto n = static_cast<std::size_t>(ranks());
  if (reports.size() != n) misuse("one report per rank expected");
  ++now_;
  ++counters_.boundaries;
  std::vector<RankDecision> out(n);
  bool stop = false;
  for (std::size_t r = 0; r < n; ++r) {
    if (reports[r].rank.value() != static_cast<std::int32_t>(r)) misuse("reports out of order");
    out[r].rank = RankId{static_cast<std::int32_t>(r)};
    out[r].step = now_;
    stop = stop || reports[r].stop;
  }
  // 1. Finished requests; their moves in flight are cancelled.
  std::unordered_set<RequestId> ended;
  for (const StepReport& rep : reports) {
    for (RequestId q : rep.finished) {
      const auto it = running_.find(q);
      if (it == running_.end() || it->second.home != rep.rank) {
        misuse(text(rep.rank) + " finished " + text(q) + ", which it does not run");
      }
      end_running(q, RequestStatus::kDone, out);
      ended.insert(q);
    }
  }
  // 2. Commit last boundary's moves.
  for (const BlockMove& m : in_flight_) {
    if (ended.count(m.request) == 0) ledger_.release_slot(m.from);
  }
  for (BlockMove& m : in_flight_) {
    if (ended.count(m.request) != 0) continue;
    // A block moved through scratch into a slot another instance vacated is lent there from now.
    if (m.to.rank != m.home && m.via_scratch) {
      m.new_contract = ledger_.open(m.home, m.to.rank, m.request, {m.to.slot}, now_ - 1);
    }
    for (std::int32_t r : {m.home.value(), m.from.rank.value(), m.to.rank.value()}) {
      auto& v = out[static_cast<std::size_t>(r)].commits;
      if (v.empty() || v.back().id != m.id) v.push_back(m);
    }
  }
  in_flight_.clear();
  // 3. Grants from the promised slots.
  free_.assign(n, {});
  room_.assign(n, 0);
  for (std::size_t r = 0; r < n; ++r) {
    free_[r] = reports[r].free_slots;
    room_[r] =
        config_.policy == KvPolicy::kPooled
            ? std::min(reports[r].lend_limit, lend_cap(config_.shape, static_cast<std::int32_t>(r)))
            : 0;
  }
  std::vector<std::int64_t> unmet(n, 0);
  pending_grants_.clear();
  grant_needs(reports, out, unmet);
  // 4. Preemption or failure for what no grant covers.
  const bool pressure = std::any_of(unmet.begin(), unmet.end(), [](auto u) { return u > 0; });
  if (!pressure) alone_unmet_ = 0;
  preempt_for(unmet, out);
  for (const Grant& g : pending_grants_) {
    if (running_.count(g.request) == 0) continue;  // preempted at this boundary
    out[static_cast<std::size_t>(g.slot.rank.value())].grants_out.push_back(g);
    out[static_cast<std::size_t>(g.debtor.value())].grants_in.push_back(g);
  }
  pending_grants_.clear();
  // 5. DGFM over what is still free.
  plan_moves(out);
  // 6. Placement, unless memory is under pressure.
  if (!pressure && !stop) place(reports, out);
  for (auto& d : out) d.stop = stop;
  return out;
}

void GManager::check_invariants() const {
  ledger_.check_invariants();
  const auto broken = [](const std::string& what) {
    throw InternalError("GManager invariant: " + what);
  };
  if (by_age_.size() != running_.size()) broken("age index disagrees with running requests");
  std::size_t at = 0;
  for (const auto& s : at_rank_) at += s.size();
  if (at != running_.size()) broken("per-rank index disagrees with running requests");
  for (const auto& [id, r] : running_) {
    if (at_rank_[static_cast<std::size_t>(r.home.value())].count({r.spec.age, id}) == 0) {
      broken("a running request missing from its rank's index");
    }
  }
  for (std::int32_t d = 0; d < ranks(); ++d) {
    for (std::int64_t id : ledger_.contracts_of_debtor(RankId{d})) {
      const Contract& c = ledger_.contract(ContractId{id});
      const auto it = running_.find(c.request);
      if (it == running_.end() || it->second.home != c.debtor) {
        broken("a contract of a request that does not run at its debtor");
      }
    }
  }
  for (const BlockMove& m : in_flight_) {
    if (running_.count(m.request) == 0) broken("a move in flight for a request not running");
  }
}

}  // namespace infllm
