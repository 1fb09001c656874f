// debt_ledger_test.cpp: contracts, who owes whom, releases, and refusal of double promises.
#include <gtest/gtest.h>

#include "core/debt_ledger.hpp"
#include "core/errors.hpp"

namespace infllm {
namespace {

constexpr RankId kR0{0};
constexpr RankId kR1{1};
constexpr RankId kR2{2};

TEST(DebtLedger, OpenRecordsTheDebtInBothDirections) {
  DebtLedger l(3);
  const ContractId c = l.open(kR0, kR1, RequestId{5}, {SlotId{2}, SlotId{3}}, 1);
  EXPECT_EQ(l.debt(kR0, kR1), 2);
  EXPECT_EQ(l.debt(kR1, kR0), 0);
  EXPECT_EQ(l.owed_by(kR0), 2);
  EXPECT_EQ(l.held_by(kR1), 2);
  EXPECT_EQ(l.creditors_of(kR0).at(1), 2);
  EXPECT_EQ(l.debtors_of(kR1).at(0), 2);
  EXPECT_EQ(l.contract(c).request, RequestId{5});
  EXPECT_EQ(l.contract_at(BlockRef{kR1, SlotId{3}}), c);
  l.check_invariants();
}

TEST(DebtLedger, ASlotIsNeverPromisedTwice) {
  DebtLedger l(3);
  l.open(kR0, kR1, RequestId{5}, {SlotId{2}}, 1);
  EXPECT_THROW(l.open(kR2, kR1, RequestId{6}, {SlotId{4}, SlotId{2}}, 1), InternalError);
  EXPECT_EQ(l.total_blocks(), 1);
  EXPECT_FALSE(l.contract_at(BlockRef{kR1, SlotId{4}}).has_value());  // nothing half-recorded
  l.check_invariants();
}

TEST(DebtLedger, MisuseThrows) {
  DebtLedger l(2);
  EXPECT_THROW(l.open(kR0, kR0, RequestId{1}, {SlotId{0}}, 1), InternalError);
  EXPECT_THROW(l.open(kR0, kR1, RequestId{1}, {}, 1), InternalError);
  EXPECT_THROW(l.open(kR0, kR2, RequestId{1}, {SlotId{0}}, 1), InternalError);
  EXPECT_THROW(l.release_slot(BlockRef{kR1, SlotId{0}}), InternalError);
  EXPECT_THROW(DebtLedger(0), InternalError);
}

TEST(DebtLedger, ReleasingTheLastSlotClosesTheContract) {
  DebtLedger l(2);
  const ContractId c = l.open(kR0, kR1, RequestId{5}, {SlotId{2}, SlotId{3}}, 1);
  l.release_slot(BlockRef{kR1, SlotId{2}});
  EXPECT_EQ(l.debt(kR0, kR1), 1);
  EXPECT_EQ(l.contract_count(), 1u);
  l.release_slot(BlockRef{kR1, SlotId{3}});
  EXPECT_EQ(l.contract_count(), 0u);
  EXPECT_THROW(l.contract(c), InternalError);
  EXPECT_TRUE(l.creditors_of(kR0).empty());
  l.check_invariants();
}

TEST(DebtLedger, ReleasingARequestReturnsEverySlotOfEveryContract) {
  DebtLedger l(3);
  l.open(kR0, kR1, RequestId{5}, {SlotId{2}}, 1);
  l.open(kR0, kR2, RequestId{5}, {SlotId{0}, SlotId{1}}, 2);
  l.open(kR0, kR2, RequestId{6}, {SlotId{7}}, 2);
  const auto freed = l.release_request(RequestId{5});
  EXPECT_EQ(freed.size(), 3u);
  EXPECT_EQ(l.owed_by(kR0), 1);
  EXPECT_EQ(l.debt(kR0, kR2), 1);
  EXPECT_TRUE(l.release_request(RequestId{99}).empty());
  l.check_invariants();
}

}  // namespace
}  // namespace infllm
