// dgfm.cpp: the DGFM planner: recalls and chains, swaps and rotations, evictions (see header).
#include "core/dgfm.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/errors.hpp"

namespace infllm {
namespace {

// The blocks of one request on one creditor that this plan may move.
// The movable blocks of one request on one creditor: one ledger contract (the ledger keeps one
// per pair). Its slots are in grant order, so the ones still being pushed are at the end.
struct Group {
  const Contract* contract = nullptr;
  std::size_t next = 0;
  std::size_t end = 0;  // slots before `end` were granted before this boundary
  std::size_t left() const { return end - next; }
  std::int32_t creditor() const { return contract->creditor.value(); }
};

// One debtor's movable blocks, built on first use. The per-creditor index is built only when a
// swap, rotation or exchange needs it (recalls do not).
struct Debtor {
  bool built = false;
  bool indexed = false;
  std::vector<Group> groups;  // fewest blocks first
  std::size_t cursor = 0;     // groups before it are used up
  std::map<std::int32_t, std::vector<std::size_t>> by_creditor;
  std::map<std::int32_t, std::int64_t> avail;  // creditor -> movable blocks left
  std::int64_t total = 0;
};

struct Taken {
  RequestId request;
  BlockRef from;
};

class Planner {
 public:
  explicit Planner(const DgfmInput& in)
      : in_(in),
        ranks_(in.ledger->ranks()),
        debtors_(static_cast<std::size_t>(ranks_)),
        vacated_(static_cast<std::size_t>(ranks_)),
        queued_(static_cast<std::size_t>(ranks_), 0),
        color_(static_cast<std::size_t>(ranks_), 0),
        next_id_(in.first_id.value()) {}

  DgfmPlan run() {
    recall_phase_all();
    cycle_phase();
    // Exchanges and evictions free a slot on a full debtor; its recalls may then chain on.
    while (budget_left() && (exchange_once() || evict_once())) recall_phase();
    plan_.remote_after = in_.ledger->total_blocks() - plan_.recalls - plan_.cycle_moves;
    return std::move(plan_);
  }

 private:
  bool budget_left() const { return static_cast<std::int64_t>(plan_.moves.size()) < in_.max_moves; }
  std::size_t idx(std::int32_t r) const { return static_cast<std::size_t>(r); }

  Debtor& debtor(std::int32_t d) {
    Debtor& t = debtors_[idx(d)];
    if (t.built) return t;
    t.built = true;
    const auto& ids = in_.ledger->contracts_of_debtor(RankId{d});
    t.groups.reserve(ids.size());
    for (std::int64_t id : ids) {
      const Contract& c = in_.ledger->contract(ContractId{id});
      const auto end = static_cast<std::size_t>(
          std::lower_bound(c.granted_at.begin(), c.granted_at.end(), in_.now) -
          c.granted_at.begin());
      if (end == 0) continue;  // every slot still being pushed
      t.groups.push_back(Group{&c, 0, end});
      t.total += static_cast<std::int64_t>(end);
    }
    std::stable_sort(t.groups.begin(), t.groups.end(),
                     [](const Group& a, const Group& b) { return a.end < b.end; });
    return t;
  }

  Debtor& indexed(std::int32_t d) {
    Debtor& t = debtor(d);
    if (t.indexed) return t;
    t.indexed = true;
    for (std::size_t i = 0; i < t.groups.size(); ++i) {
      const Group& g = t.groups[i];
      if (g.left() == 0) continue;
      t.by_creditor[g.creditor()].push_back(i);
      t.avail[g.creditor()] += static_cast<std::int64_t>(g.left());
    }
    return t;
  }

  Taken take_from(Debtor& t, Group& g) {
    const Taken out{g.contract->request,
                    BlockRef{g.contract->creditor, g.contract->slots[g.next++]}};
    if (t.indexed && --t.avail[g.creditor()] == 0) t.avail.erase(g.creditor());
    --t.total;
    return out;
  }

  // The next block of debtor d, smallest group first.
  std::optional<Taken> pop_any(std::int32_t d) {
    Debtor& t = debtor(d);
    while (t.cursor < t.groups.size() && t.groups[t.cursor].left() == 0) ++t.cursor;
    if (t.cursor == t.groups.size()) return std::nullopt;
    return take_from(t, t.groups[t.cursor]);
  }

  // A block of debtor d held on creditor c.
  std::optional<Taken> pop_at(std::int32_t d, std::int32_t c) {
    Debtor& t = indexed(d);
    const auto it = t.by_creditor.find(c);
    if (it == t.by_creditor.end()) return std::nullopt;
    for (std::size_t gi : it->second) {
      if (t.groups[gi].left() > 0) return take_from(t, t.groups[gi]);
    }
    return std::nullopt;
  }

  std::int64_t avail_at(std::int32_t d, std::int32_t c) {
    const Debtor& t = indexed(d);
    const auto it = t.avail.find(c);
    return it == t.avail.end() ? 0 : it->second;
  }

  void emit(const Taken& b, RankId home, BlockRef to, bool via_scratch) {
    plan_.moves.push_back(
        BlockMove{MoveId{next_id_++}, b.request, home, b.from, to, via_scratch, ContractId{-1}});
  }

  bool has_dest(std::int32_t r) const {
    return !(*in_.free_slots)[idx(r)].empty() || !vacated_[idx(r)].empty();
  }

  void enqueue(std::int32_t r) {
    if (queued_[idx(r)] || in_.ledger->owed_by(RankId{r}) == 0) return;
    queued_[idx(r)] = 1;
    queue_.push_back(r);
  }

  void recall_phase_all() {
    for (std::int32_t d = 0; d < ranks_; ++d) {
      if (has_dest(d)) enqueue(d);
    }
    recall_phase();
  }

  // Recalls and chains: every rank with a destination takes its blocks home; each recall
  // vacates a slot on the creditor, which may then recall its own.
  void recall_phase() {
    while (!queue_.empty() && budget_left()) {
      const std::int32_t d = queue_.front();
      queue_.pop_front();
      queued_[idx(d)] = 0;
      while (budget_left() && has_dest(d)) {
        const auto b = pop_any(d);
        if (!b) break;
        auto& free = (*in_.free_slots)[idx(d)];
        auto& vac = vacated_[idx(d)];
        // Free slots first: a plain copy needs no scratch area.
        const bool scratch = free.empty();
        auto& from_list = scratch ? vac : free;
        const SlotId dest = from_list.back();
        from_list.pop_back();
        emit(*b, RankId{d}, BlockRef{RankId{d}, dest}, scratch);
        ++plan_.recalls;
        const std::int32_t c = b->from.rank.value();
        vacated_[idx(c)].push_back(b->from.slot);
        enqueue(c);
      }
    }
  }

  // Ranks that hold movable blocks of `r`'s debtors: r -> s when r holds a block s may move.
  std::vector<std::int32_t> out_edges(std::int32_t r) {
    std::vector<std::int32_t> out;
    for (const auto& [s, n] : in_.ledger->debtors_of(RankId{r})) {
      if (avail_at(s, r) > 0) out.push_back(s);
    }
    return out;
  }

  // Finds one cycle by depth-first search; colours persist because edges only disappear.
  std::vector<std::int32_t> find_cycle(std::int32_t root) {
    struct Frame {
      std::int32_t node;
      std::vector<std::int32_t> next;
      std::size_t i = 0;
    };
    std::vector<Frame> stack;
    color_[idx(root)] = 1;
    stack.push_back(Frame{root, out_edges(root), 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.i == f.next.size()) {
        color_[idx(f.node)] = 2;
        stack.pop_back();
        continue;
      }
      const std::int32_t s = f.next[f.i++];
      if (color_[idx(s)] == 1) {
        std::vector<std::int32_t> cycle;
        std::size_t k = stack.size();
        while (stack[k - 1].node != s) --k;
        for (std::size_t j = k - 1; j < stack.size(); ++j) cycle.push_back(stack[j].node);
        for (const Frame& g : stack) color_[idx(g.node)] = 0;  // revisit after the rotation
        return cycle;
      }
      if (color_[idx(s)] == 0) {
        color_[idx(s)] = 1;
        stack.push_back(Frame{s, out_edges(s), 0});
      }
    }
    return {};
  }

  // Swaps (cycles of 2) and rotations: r_i holds a block of r_{i+1}; each goes home into the slot
  // its home vacates in the same plan.
  void cycle_phase() {
    for (std::int32_t root = 0; root < ranks_ && budget_left(); ++root) {
      if (in_.ledger->held_by(RankId{root}) == 0 || in_.ledger->owed_by(RankId{root}) == 0) {
        continue;
      }
      while (color_[idx(root)] == 0 && budget_left()) {
        const std::vector<std::int32_t> cycle = find_cycle(root);
        if (cycle.empty()) break;
        const std::size_t k = cycle.size();
        std::int64_t times = (in_.max_moves - static_cast<std::int64_t>(plan_.moves.size())) /
                             static_cast<std::int64_t>(k);
        for (std::size_t i = 0; i < k; ++i) {
          times = std::min(times, avail_at(cycle[(i + 1) % k], cycle[i]));
        }
        for (std::int64_t t = 0; t < times; ++t) {
          std::vector<Taken> held(k);
          for (std::size_t i = 0; i < k; ++i) held[i] = *pop_at(cycle[(i + 1) % k], cycle[i]);
          for (std::size_t i = 0; i < k; ++i) {
            const std::size_t j =
                (i + 1) % k;  // held[i] belongs to cycle[j], goes to held[j]'s slot
            emit(held[i], RankId{cycle[j]}, held[j].from, true);
            ++plan_.cycle_moves;
          }
        }
        if (times == 0) return;  // budget exhausted
      }
    }
  }

  // One exchange: a full rank r that owes blocks holds a block of s that cannot go home, and
  // x != s holds a block of r. s's block takes r's place on x and r's block comes home into the
  // slot s's block left: x lends as much as before, r one less, one block fewer is remote.
  bool exchange_once() {
    if (in_.max_moves - static_cast<std::int64_t>(plan_.moves.size()) < 2) return false;
    for (std::int32_t r = 0; r < ranks_; ++r) {
      if (has_dest(r) || in_.ledger->owed_by(RankId{r}) == 0 || debtor(r).total == 0) continue;
      for (const auto& [s, n] : in_.ledger->debtors_of(RankId{r})) {
        if (avail_at(s, r) == 0) continue;
        for (const auto& [x, m] : in_.ledger->creditors_of(RankId{r})) {
          if (x == s || avail_at(r, x) == 0) continue;
          const Taken held = *pop_at(s, r);
          const Taken own = *pop_at(r, x);
          emit(held, RankId{s}, own.from, true);
          emit(own, RankId{r}, held.from, true);
          ++plan_.evictions;
          ++plan_.recalls;
          return true;
        }
      }
    }
    return false;
  }

  // One eviction: a full rank that owes blocks moves a stuck block it holds to a third rank with
  // room, then recalls one of its own into the vacated slot.
  bool evict_once() {
    auto& free = *in_.free_slots;
    auto& room = *in_.lend_room;
    // The three ranks with the most free slots and lending room: enough to avoid r and s.
    std::vector<std::int32_t> hosts;
    for (std::int32_t x = 0; x < ranks_; ++x) {
      if (free[idx(x)].empty() || room[idx(x)] <= 0) continue;
      hosts.push_back(x);
      std::sort(hosts.begin(), hosts.end(), [&](std::int32_t a, std::int32_t b) {
        return free[idx(a)].size() > free[idx(b)].size();
      });
      if (hosts.size() > 3) hosts.pop_back();
    }
    if (hosts.empty()) return false;
    for (std::int32_t r = 0; r < ranks_; ++r) {
      if (has_dest(r) || in_.ledger->owed_by(RankId{r}) == 0 || debtor(r).total == 0) continue;
      for (const auto& entry : in_.ledger->debtors_of(RankId{r})) {
        const std::int32_t s = entry.first;
        if (avail_at(s, r) == 0) continue;
        const auto host = std::find_if(hosts.begin(), hosts.end(),
                                       [&](std::int32_t x) { return x != r && x != s; });
        if (host == hosts.end()) continue;
        const std::int32_t best = *host;
        const Taken b = *pop_at(s, r);
        const SlotId dest = free[idx(best)].back();
        free[idx(best)].pop_back();
        --room[idx(best)];
        emit(b, RankId{s}, BlockRef{RankId{best}, dest}, false);
        ++plan_.evictions;
        vacated_[idx(r)].push_back(b.from.slot);
        enqueue(r);
        return true;
      }
    }
    return false;
  }

  const DgfmInput& in_;
  std::int32_t ranks_;
  std::vector<Debtor> debtors_;
  std::vector<std::vector<SlotId>> vacated_;  // (ranks) slots a planned move vacates
  std::deque<std::int32_t> queue_;
  std::vector<char> queued_;
  std::vector<char> color_;
  std::int64_t next_id_;
  DgfmPlan plan_;
};

}  // namespace

DgfmPlan plan_dgfm(const DgfmInput& input) {
  if (input.ledger == nullptr || input.free_slots == nullptr || input.lend_room == nullptr) {
    throw InternalError("plan_dgfm: missing input");
  }
  const auto n = static_cast<std::size_t>(input.ledger->ranks());
  if (input.free_slots->size() != n || input.lend_room->size() != n) {
    throw InternalError("plan_dgfm: per-rank inputs must have one entry per rank");
  }
  return Planner(input).run();
}

}  // namespace infllm
