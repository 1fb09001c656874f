// r_manager.cpp: the per-instance side of the contract protocol (see header).
#include "core/r_manager.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

#include "core/errors.hpp"

namespace infllm {

namespace {
[[noreturn]] void misuse(RankId rank, const std::string& what) {
  throw InternalError("RManager r" + std::to_string(rank.value()) + ": " + what);
}
}  // namespace

RManager::RManager(const RManagerConfig& config) : config_(config), pool_(config.capacity) {
  if (config.capacity < 2) misuse(config.rank, "a pool needs at least 2 slots (tail + push)");
  if (config.block_tokens <= 0) misuse(config.rank, "block_tokens must be positive");
  if (!(config.max_lend_fraction >= 0.0 && config.max_lend_fraction <= 1.0)) {
    misuse(config.rank, "max_lend_fraction must be in [0, 1]");
  }
}

std::int32_t RManager::lend_cap() const {
  return static_cast<std::int32_t>(std::floor(config_.max_lend_fraction * config_.capacity));
}

RequestProgress& RManager::progress(RequestId request) {
  const auto it = requests_.find(request);
  if (it == requests_.end()) {
    misuse(rank(), "request q" + std::to_string(request.value()) + " does not run here");
  }
  return it->second;
}

std::int32_t RManager::entry_at(BlockRef ref) const {
  const auto it = remote_index_.find(ref);
  if (it == remote_index_.end()) {
    misuse(rank(), "no block of this rank's requests at (r" + std::to_string(ref.rank.value()) +
                       ",s" + std::to_string(ref.slot.value()) + ")");
  }
  return it->second.second;
}

std::vector<BatchCandidate> RManager::candidates(bool home_only) const {
  std::vector<BatchCandidate> out;
  out.reserve(requests_.size());
  for (const auto& [id, p] : requests_) {
    if (home_only && p.table.count(BlockState::kLocal) != p.table.size()) continue;
    out.push_back(BatchCandidate{id, p.spec.age, p.spec.prompt_tokens - p.prefilled,
                                 p.spec.max_new_tokens - p.generated});
  }
  return out;
}

std::vector<BatchItem> RManager::next_batch() const {
  return plan_batch(candidates(/*home_only=*/false), config_.batch);
}

std::int32_t RManager::blocks_needed(const std::vector<BatchItem>& batch) const {
  std::int32_t n = 0;
  for (const auto& item : batch) {
    const BlockTable& t = requests_.at(item.request).table;
    n += std::max(0, t.blocks_for(t.tokens() + item.tokens) - t.size());
  }
  return n;
}

StepReport RManager::make_report(std::int64_t step) {
  // Pushes of the last step have landed: the home copies are free.
  for (const auto& [request, index] : pushing_) {
    const auto it = requests_.find(request);
    if (it == requests_.end()) continue;  // dropped in flight; its slots were freed then
    BlockTable& t = it->second.table;
    pool_.free(t.finish_push(index));
    remote_index_[t.at(index).ref] = {request, index};
  }
  pushing_.clear();

  StepReport r;
  r.rank = rank();
  r.step = step;
  const std::int32_t needed = blocks_needed(next_batch());
  const std::int32_t free = pool_.free_count();
  std::int32_t short_by = std::max(0, needed - free);
  // Loans: push full local blocks out, longest requests first (their oldest blocks are the
  // least likely to be needed soon by anyone but their own attention).
  if (short_by > 0) {
    std::vector<std::pair<std::int32_t, RequestId>> pushable;
    for (const auto& [id, p] : requests_) {
      const std::int32_t n = p.table.count(BlockState::kLocal) - 1;  // never the tail
      if (n > 0) pushable.emplace_back(n, id);
    }
    std::stable_sort(pushable.begin(), pushable.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [n, id] : pushable) {
      if (short_by == 0) break;
      const std::int32_t k = std::min(n, short_by);
      r.needs.push_back(LoanNeed{id, k});
      short_by -= k;
    }
    r.unpushable_blocks = short_by;
  }
  // NOTE: the slots the next batch needs are kept back; only the rest is promised.
  const std::int32_t offer = std::min(config_.max_offered, std::max(0, free - needed));
  r.free_slots = pool_.free_slots(offer);
  r.lend_limit = std::max(0, lend_cap() - pool_.stats().lent);
  r.finished = std::move(finished_);
  finished_.clear();
  finished_remote_.clear();
  for (const auto& [id, p] : requests_) {
    r.expected_work += (p.spec.prompt_tokens - p.prefilled) + (p.spec.max_new_tokens - p.generated);
  }
  r.running = static_cast<std::int32_t>(requests_.size());
  r.stop = stop_requested_;
  return r;
}

void RManager::drop_request(RequestId request, bool finished) {
  RequestProgress& p = progress(request);
  for (const BlockEntry& e : p.table.entries()) {
    if (finished) {
      if (e.ref.rank != rank()) finished_remote_.push_back(e.ref);
      const bool has_target = e.state == BlockState::kPushing || e.state == BlockState::kMoving;
      // A scratch target is still another block's slot until the commit (which is cancelled).
      if (has_target && !e.via_scratch && e.target.rank != rank()) {
        finished_remote_.push_back(e.target);
      }
    }
    switch (e.state) {
      case BlockState::kLocal:
        pool_.free(e.ref.slot);
        break;
      case BlockState::kPushing:
        pool_.free(e.ref.slot);
        pool_.remove_borrowed(1);
        break;
      case BlockState::kRemote:
        remote_index_.erase(e.ref);
        pool_.remove_borrowed(1);
        break;
      case BlockState::kMoving:
        remote_index_.erase(e.ref);
        pool_.remove_borrowed(1);
        // A reserved home destination is ours to free; a scratch one still holds a lent block.
        if (e.target.rank == rank() && !e.via_scratch) pool_.free(e.target.slot);
        break;
    }
  }
  requests_.erase(request);
}

void RManager::apply(const RankDecision& d) {
  if (d.rank != rank()) misuse(rank(), "a decision addressed to another rank");
  for (SlotId s : d.releases) {
    if (held_.erase(s.value()) == 0) misuse(rank(), "release of a slot that is not lent");
    pool_.free(s);
  }
  // Commits: sources first, so a slot vacated here can receive a block through scratch.
  for (const BlockMove& m : d.commits) {
    if (m.from.rank != rank()) continue;
    if (held_.erase(m.from.slot.value()) == 0) misuse(rank(), "commit from a slot not lent");
    pool_.free(m.from.slot);
  }
  for (const BlockMove& m : d.commits) {
    if (m.home != rank()) continue;
    BlockTable& t = progress(m.request).table;
    const std::int32_t i = entry_at(m.from);
    remote_index_.erase(m.from);
    t.commit_move(i);
    if (m.to.rank == rank()) {
      if (m.via_scratch) pool_.take(m.to.slot, SlotUse::kOwn);
      pool_.remove_borrowed(1);
    } else {
      remote_index_[m.to] = {m.request, i};
    }
  }
  for (const BlockMove& m : d.commits) {
    // Through scratch into a slot vacated here, for another instance's request: lent from now.
    if (m.to.rank == rank() && m.home != rank() && m.via_scratch) {
      pool_.take(m.to.slot, SlotUse::kLent);
      held_[m.to.slot.value()] = HeldBlock{m.request, m.home};
    }
  }
  for (SlotId s : d.late_releases) {
    if (held_.erase(s.value()) == 0) misuse(rank(), "release of a slot that is not lent");
    pool_.free(s);
  }
  for (RequestId q : d.preempt) drop_request(q);
  for (const Verdict& v : d.fail) drop_request(v.request);
  for (const Grant& g : d.grants_out) {
    if (g.slot.rank != rank() || g.debtor == rank()) misuse(rank(), "a grant_out not for here");
    pool_.take(g.slot.slot, SlotUse::kLent);
    held_[g.slot.slot.value()] = HeldBlock{g.request, g.debtor};
  }
  for (const Grant& g : d.grants_in) {
    // NOTE: loans are only ever for requests this rank runs: no chains of loans.
    BlockTable& t = progress(g.request).table;
    const std::int32_t i = t.first_pushable();
    if (i < 0) misuse(rank(), "a grant for a request with no full local block");
    t.start_push(i, g.slot);
    pushing_.emplace_back(g.request, i);
    pool_.add_borrowed(1);
  }
  for (const BlockMove& m : d.moves) {
    if (m.home == rank()) {
      BlockTable& t = progress(m.request).table;
      t.start_move(entry_at(m.from), m.to, m.via_scratch);
      if (m.to.rank == rank() && !m.via_scratch) pool_.take(m.to.slot, SlotUse::kOwn);
    } else if (m.to.rank == rank() && !m.via_scratch) {
      // An eviction lands here: the slot is lent to the block's home from now on.
      pool_.take(m.to.slot, SlotUse::kLent);
      held_[m.to.slot.value()] = HeldBlock{m.request, m.home};
    }
    if (m.from.rank == rank() && held_.count(m.from.slot.value()) == 0) {
      misuse(rank(), "a move from a slot that holds no loan");
    }
  }
  for (const Placement& p : d.placements) {
    if (requests_.count(p.spec.id) != 0) misuse(rank(), "a request placed twice");
    requests_.emplace(
        p.spec.id,
        RequestProgress{p.spec, 0, 0, BlockTable(p.spec.id, rank(), config_.block_tokens)});
  }
  stopped_ = stopped_ || d.stop;
}

std::vector<Growth> RManager::grow_step(StepOutcome* outcome) {
  return grow(next_batch(), outcome, /*allocate=*/true);
}

std::vector<Growth> RManager::grow_home_step(const BatchLimits& limits) {
  std::vector<Growth> grown = plan_home_step(limits);
  commit_growth(grown);
  return grown;
}

std::vector<Growth> RManager::plan_home_step(const BatchLimits& limits) const {
  // grow() without slot allocation: each item grows into the room its blocks have left.
  std::vector<Growth> grown;
  for (const BatchItem& item : plan_batch(candidates(/*home_only=*/true), limits)) {
    const RequestProgress& p = requests_.at(item.request);
    const std::int64_t n = std::min(item.tokens, p.table.capacity_tokens() - p.table.tokens());
    if (n <= 0) continue;
    grown.push_back(Growth{item.request, p.table.tokens(), n, p.prefilled < p.spec.prompt_tokens});
  }
  return grown;
}

void RManager::commit_growth(const std::vector<Growth>& grown) {
  for (const Growth& g : grown) {
    RequestProgress& p = progress(g.request);
    if (p.table.tokens() != g.first_pos) misuse(rank(), "growth committed out of order");
    p.table.add_tokens(g.tokens);
    (g.prefill ? p.prefilled : p.generated) += g.tokens;
  }
}

std::vector<Growth> RManager::grow(const std::vector<BatchItem>& batch, StepOutcome* outcome,
                                   bool allocate) {
  StepOutcome out;
  std::vector<Growth> grown;
  for (const BatchItem& item : batch) {
    RequestProgress& p = requests_.at(item.request);
    BlockTable& t = p.table;
    const std::int64_t first_pos = t.tokens();
    // New KV is always written at home: each new tail block takes a local slot; a prefill chunk
    // is cut short where the slots run out.
    std::int64_t n = 0;
    while (n < item.tokens) {
      if (t.tokens() == t.capacity_tokens()) {
        if (!allocate) break;
        const auto slot = pool_.allocate(SlotUse::kOwn);
        if (!slot) break;
        t.append(*slot);
      }
      const std::int64_t add = std::min(item.tokens - n, t.capacity_tokens() - t.tokens());
      t.add_tokens(add);
      n += add;
    }
    if (n < item.tokens) ++out.waiting;
    if (n == 0) continue;
    const bool prefill = p.prefilled < p.spec.prompt_tokens;
    (prefill ? p.prefilled : p.generated) += n;
    out.tokens += n;
    ++out.items;
    grown.push_back(Growth{item.request, first_pos, n, prefill});
  }
  if (outcome != nullptr) *outcome = out;
  return grown;
}

void RManager::finish_request(RequestId request) {
  finished_.push_back(request);
  drop_request(request, /*finished=*/true);
}

StepOutcome RManager::run_step() {
  StepOutcome out;
  for (const Growth& g : grow_step(&out)) {
    const RequestProgress& p = requests_.at(g.request);
    if (p.prefilled == p.spec.prompt_tokens && p.generated == p.spec.max_new_tokens) {
      finish_request(g.request);
      ++out.finished;
    }
  }
  return out;
}

void RManager::check_invariants() const {
  pool_.check_invariants();
  const auto broken = [this](const std::string& what) {
    throw InternalError("RManager r" + std::to_string(rank().value()) + " invariant: " + what);
  };
  std::unordered_set<std::int32_t> own;
  std::int64_t borrowed = 0;
  std::size_t remote = 0;
  for (const auto& [id, p] : requests_) {
    p.table.check_invariants();
    if (p.table.home() != rank()) broken("a table whose home is elsewhere");
    if (p.table.tokens() != p.prefilled + p.generated) broken("tokens disagree with progress");
    for (const BlockEntry& e : p.table.entries()) {
      if (e.ref.rank == rank() && !own.insert(e.ref.slot.value()).second) {
        broken("a home slot named twice");
      }
      if (e.state == BlockState::kMoving && e.target.rank == rank() && !e.via_scratch &&
          !own.insert(e.target.slot.value()).second) {
        broken("a reserved destination named twice");
      }
      if (e.state != BlockState::kLocal) ++borrowed;
      if (e.state == BlockState::kRemote || e.state == BlockState::kMoving) ++remote;
    }
  }
  for (std::int32_t s : own) {
    if (pool_.use(SlotId{s}) != SlotUse::kOwn) broken("a table names a slot that is not own");
  }
  if (static_cast<std::int32_t>(own.size()) != pool_.stats().own) {
    broken("own slots not named by any table (leak)");
  }
  for (const auto& [s, h] : held_) {
    if (pool_.use(SlotId{s}) != SlotUse::kLent) broken("a held slot is not lent");
    if (h.debtor == rank()) broken("a slot lent to itself");
  }
  if (static_cast<std::int32_t>(held_.size()) != pool_.stats().lent) broken("lent != held");
  if (borrowed != pool_.stats().borrowed) broken("borrowed disagrees with the tables");
  if (remote != remote_index_.size()) broken("remote index disagrees with the tables");
  if (pool_.stats().lent > lend_cap()) broken("lent beyond the lending cap");
}

}  // namespace infllm
