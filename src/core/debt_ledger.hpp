// debt_ledger.hpp: the authoritative record of every loan of rBlock slots (gManager, rank 0).
//
// A contract records the loan of creditor slots to one request: contract id, debtor (the home of
// the request), creditor (the instance whose slots hold the blocks), the request, and the slots,
// each with the boundary it was granted at. Later grants for the same (request, creditor) extend
// the same contract, so the ledger holds one contract per pair, however many boundaries it took.
// debt(d, c) is the number of blocks instance d has on instance c, over all its contracts. Slots
// leave a contract one by one (a DGFM move commits) or all at once (the request finishes or is
// preempted); an empty contract is closed.
//
// Invariants (check_invariants()): every slot is in at most one contract; the indexes (by slot,
// by request, by debtor, the debt matrix in both directions) agree with the contracts; no
// contract has debtor == creditor or no slots.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

struct Contract {
  ContractId id;
  RankId debtor;
  RankId creditor;
  RequestId request;
  std::vector<SlotId> slots;             // creditor slots
  std::vector<std::int64_t> granted_at;  // (slots) the boundary each was granted at, ascending
};

class DebtLedger {
 public:
  explicit DebtLedger(std::int32_t ranks);

  std::int32_t ranks() const { return ranks_; }

  // Records a grant of `slots` at boundary `step`: a new contract, or more slots in the contract of
  // the same (request, creditor). Throws InternalError on misuse: debtor == creditor, no slots, a
  // rank out of range, a slot already under contract, or a request with another debtor.
  ContractId open(RankId debtor, RankId creditor, RequestId request,
                  const std::vector<SlotId>& slots, std::int64_t step);
  // One slot leaves its contract (its block moved away). Throws if the slot is not under contract.
  void release_slot(BlockRef slot);
  // Closes every contract of `request`; returns the creditor slots they held.
  std::vector<BlockRef> release_request(RequestId request);

  std::int64_t debt(RankId debtor, RankId creditor) const;
  std::int64_t owed_by(RankId debtor) const;    // blocks of debtor on all creditors
  std::int64_t held_by(RankId creditor) const;  // blocks of others that creditor holds
  std::int64_t total_blocks() const { return total_; }
  std::size_t contract_count() const { return contracts_.size(); }
  // debtor -> (creditor -> blocks); creditor -> (debtor -> blocks). Zero entries are erased.
  const std::map<std::int32_t, std::int64_t>& creditors_of(RankId debtor) const;
  const std::map<std::int32_t, std::int64_t>& debtors_of(RankId creditor) const;
  // Contracts where `debtor` is the debtor, by id.
  const std::set<std::int64_t>& contracts_of_debtor(RankId debtor) const;
  std::vector<ContractId> contracts_of_request(RequestId request) const;
  const Contract& contract(ContractId id) const;
  std::optional<ContractId> contract_at(BlockRef slot) const;

  // Throws InternalError naming the first broken invariant.
  void check_invariants() const;

 private:
  void check_rank(RankId rank) const;
  void add_debt(std::int32_t d, std::int32_t c, std::int64_t n);
  void close(std::int64_t id);

  std::int32_t ranks_;
  std::int64_t next_id_ = 0;
  std::int64_t total_ = 0;
  std::unordered_map<std::int64_t, Contract> contracts_;
  std::unordered_map<BlockRef, std::int64_t> by_slot_;
  std::unordered_map<RequestId, std::vector<std::int64_t>> by_request_;  // few per request
  std::vector<std::set<std::int64_t>> by_debtor_;                        // (ranks)
  std::vector<std::map<std::int32_t, std::int64_t>> owes_;               // (ranks) d -> c -> blocks
  std::vector<std::map<std::int32_t, std::int64_t>> holds_;              // (ranks) c -> d -> blocks
  std::vector<std::int64_t> owed_total_;                                 // (ranks)
  std::vector<std::int64_t> held_total_;                                 // (ranks)
};

}  // namespace infllm
