// debt_ledger.cpp: contracts and the indexes that answer "who owes whom how much" (see header).
#include "core/debt_ledger.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace infllm {

DebtLedger::DebtLedger(std::int32_t ranks)
    : ranks_(ranks),
      by_debtor_(static_cast<std::size_t>(ranks)),
      owes_(static_cast<std::size_t>(ranks)),
      holds_(static_cast<std::size_t>(ranks)),
      owed_total_(static_cast<std::size_t>(ranks), 0),
      held_total_(static_cast<std::size_t>(ranks), 0) {
  if (ranks <= 0) throw InternalError("DebtLedger: ranks must be positive");
}

void DebtLedger::check_rank(RankId rank) const {
  if (rank.value() < 0 || rank.value() >= ranks_) {
    throw InternalError("DebtLedger: rank " + std::to_string(rank.value()) + " out of range");
  }
}

void DebtLedger::add_debt(std::int32_t d, std::int32_t c, std::int64_t n) {
  auto& o = owes_[static_cast<std::size_t>(d)];
  auto& h = holds_[static_cast<std::size_t>(c)];
  if ((o[c] += n) == 0) o.erase(c);
  if ((h[d] += n) == 0) h.erase(d);
  owed_total_[static_cast<std::size_t>(d)] += n;
  held_total_[static_cast<std::size_t>(c)] += n;
  total_ += n;
}

ContractId DebtLedger::open(RankId debtor, RankId creditor, RequestId request,
                            const std::vector<SlotId>& slots, std::int64_t step) {
  check_rank(debtor);
  check_rank(creditor);
  if (debtor == creditor) throw InternalError("DebtLedger::open: debtor is the creditor");
  if (slots.empty()) throw InternalError("DebtLedger::open: a contract without slots");
  // The contract of (request, creditor), if there is one.
  std::int64_t id = -1;
  const auto req = by_request_.find(request);
  if (req != by_request_.end()) {
    for (std::int64_t k : req->second) {
      const Contract& c = contracts_.at(k);
      if (c.debtor != debtor) throw InternalError("DebtLedger::open: a request with two debtors");
      if (c.creditor == creditor) id = k;
    }
  }
  const std::int64_t new_id = id >= 0 ? id : next_id_;
  for (SlotId s : slots) {
    if (!by_slot_.emplace(BlockRef{creditor, s}, new_id).second) {
      // Undo the slots recorded so far, then report.
      for (SlotId u : slots) {
        if (u == s) break;
        by_slot_.erase(BlockRef{creditor, u});
      }
      throw InternalError("DebtLedger::open: slot (r" + std::to_string(creditor.value()) + ",s" +
                          std::to_string(s.value()) + ") is promised twice");
    }
  }
  if (id >= 0 && step < contracts_.at(id).granted_at.back()) {
    for (SlotId u : slots) by_slot_.erase(BlockRef{creditor, u});
    throw InternalError("DebtLedger::open: grants must come in boundary order");
  }
  if (id < 0) {
    id = next_id_++;
    contracts_.emplace(id, Contract{ContractId{id}, debtor, creditor, request, {}, {}});
    by_request_[request].push_back(id);
    by_debtor_[static_cast<std::size_t>(debtor.value())].insert(id);
  }
  Contract& c = contracts_.at(id);
  c.slots.insert(c.slots.end(), slots.begin(), slots.end());
  c.granted_at.insert(c.granted_at.end(), slots.size(), step);
  add_debt(debtor.value(), creditor.value(), static_cast<std::int64_t>(slots.size()));
  return ContractId{id};
}

void DebtLedger::close(std::int64_t id) {
  const Contract& c = contracts_.at(id);
  auto& ids = by_request_[c.request];
  ids.erase(std::find(ids.begin(), ids.end(), id));
  if (ids.empty()) by_request_.erase(c.request);
  by_debtor_[static_cast<std::size_t>(c.debtor.value())].erase(id);
  contracts_.erase(id);
}

void DebtLedger::release_slot(BlockRef slot) {
  const auto it = by_slot_.find(slot);
  if (it == by_slot_.end()) {
    throw InternalError("DebtLedger::release_slot: (r" + std::to_string(slot.rank.value()) + ",s" +
                        std::to_string(slot.slot.value()) + ") is under no contract");
  }
  const std::int64_t id = it->second;
  by_slot_.erase(it);
  Contract& c = contracts_.at(id);
  const auto at = std::find(c.slots.begin(), c.slots.end(), slot.slot) - c.slots.begin();
  c.slots.erase(c.slots.begin() + at);
  c.granted_at.erase(c.granted_at.begin() + at);
  add_debt(c.debtor.value(), c.creditor.value(), -1);
  if (c.slots.empty()) close(id);
}

std::vector<BlockRef> DebtLedger::release_request(RequestId request) {
  std::vector<BlockRef> out;
  const auto it = by_request_.find(request);
  if (it == by_request_.end()) return out;
  const std::vector<std::int64_t> ids = it->second;
  for (std::int64_t id : ids) {
    const Contract& c = contracts_.at(id);
    for (SlotId s : c.slots) {
      out.push_back(BlockRef{c.creditor, s});
      by_slot_.erase(BlockRef{c.creditor, s});
    }
    add_debt(c.debtor.value(), c.creditor.value(), -static_cast<std::int64_t>(c.slots.size()));
    close(id);
  }
  return out;
}

std::int64_t DebtLedger::debt(RankId debtor, RankId creditor) const {
  check_rank(debtor);
  check_rank(creditor);
  const auto& o = owes_[static_cast<std::size_t>(debtor.value())];
  const auto it = o.find(creditor.value());
  return it == o.end() ? 0 : it->second;
}

std::int64_t DebtLedger::owed_by(RankId debtor) const {
  check_rank(debtor);
  return owed_total_[static_cast<std::size_t>(debtor.value())];
}

std::int64_t DebtLedger::held_by(RankId creditor) const {
  check_rank(creditor);
  return held_total_[static_cast<std::size_t>(creditor.value())];
}

const std::map<std::int32_t, std::int64_t>& DebtLedger::creditors_of(RankId debtor) const {
  check_rank(debtor);
  return owes_[static_cast<std::size_t>(debtor.value())];
}

const std::map<std::int32_t, std::int64_t>& DebtLedger::debtors_of(RankId creditor) const {
  check_rank(creditor);
  return holds_[static_cast<std::size_t>(creditor.value())];
}

const std::set<std::int64_t>& DebtLedger::contracts_of_debtor(RankId debtor) const {
  check_rank(debtor);
  return by_debtor_[static_cast<std::size_t>(debtor.value())];
}

std::vector<ContractId> DebtLedger::contracts_of_request(RequestId request) const {
  std::vector<ContractId> out;
  const auto it = by_request_.find(request);
  if (it != by_request_.end()) {
    for (std::int64_t id : it->second) out.emplace_back(id);
  }
  return out;
}

const Contract& DebtLedger::contract(ContractId id) const {
  const auto it = contracts_.find(id.value());
  if (it == contracts_.end()) {
    throw InternalError("DebtLedger: no contract c" + std::to_string(id.value()));
  }
  return it->second;
}

std::optional<ContractId> DebtLedger::contract_at(BlockRef slot) const {
  const auto it = by_slot_.find(slot);
  if (it == by_slot_.end()) return std::nullopt;
  return ContractId{it->second};
}

void DebtLedger::check_invariants() const {
  const auto broken = [](const std::string& what) {
    throw InternalError("DebtLedger invariant: " + what);
  };
  std::vector<std::map<std::int32_t, std::int64_t>> owes(static_cast<std::size_t>(ranks_));
  std::size_t slots = 0;
  std::size_t request_entries = 0;
  std::set<std::pair<std::int64_t, std::int32_t>> pairs;
  for (const auto& [id, c] : contracts_) {
    if (c.debtor == c.creditor) broken("a contract with debtor == creditor");
    if (c.slots.empty()) broken("an open contract without slots");
    if (c.granted_at.size() != c.slots.size()) broken("a slot without its grant boundary");
    if (!std::is_sorted(c.granted_at.begin(), c.granted_at.end())) {
      broken("slots out of grant order");
    }
    if (!pairs.emplace(c.request.value(), c.creditor.value()).second) {
      broken("two contracts for one (request, creditor)");
    }
    for (SlotId s : c.slots) {
      const auto it = by_slot_.find(BlockRef{c.creditor, s});
      if (it == by_slot_.end() || it->second != id) broken("slot index disagrees with a contract");
    }
    slots += c.slots.size();
    owes[static_cast<std::size_t>(c.debtor.value())][c.creditor.value()] +=
        static_cast<std::int64_t>(c.slots.size());
    if (by_debtor_[static_cast<std::size_t>(c.debtor.value())].count(id) == 0) {
      broken("debtor index misses a contract");
    }
  }
  for (const auto& [request, ids] : by_request_) request_entries += ids.size();
  if (slots != by_slot_.size()) broken("a slot is indexed but under no contract");
  if (static_cast<std::int64_t>(slots) != total_) broken("total blocks disagree");
  if (request_entries != contracts_.size()) broken("request index disagrees");
  for (std::int32_t d = 0; d < ranks_; ++d) {
    const auto& o = owes_[static_cast<std::size_t>(d)];
    if (o != owes[static_cast<std::size_t>(d)]) broken("debt matrix disagrees with contracts");
    std::int64_t sum = 0;
    for (const auto& [c, n] : o) {
      sum += n;
      const auto& h = holds_[static_cast<std::size_t>(c)];
      const auto it = h.find(d);
      if (it == h.end() || it->second != n) broken("debt matrix directions disagree");
    }
    if (sum != owed_total_[static_cast<std::size_t>(d)]) broken("owed totals disagree");
  }
}

}  // namespace infllm
